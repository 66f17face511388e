"""Instruction fine-tuning, the book's chapter 7: teach a GPT to follow Alpaca-style prompts.

Each record ``{instruction, input, output}`` becomes one text (the Alpaca template), the model is trained
on it with the ordinary next-token loss, and padding (plus, optionally, the prompt) is kept out of the loss
by setting those targets to ``-100``, the index ``F.cross_entropy`` ignores.

Shape legend: B batch, T tokens (longest sequence in the batch), V vocabulary.

The data half (template, dataset, collate) is :mod:`core.instruct_data`, the scores :mod:`core.instruct_score`;
their names are importable from here too.

Example:
    >>> from core.tokenizers import get_tokenizer
    >>> tok = get_tokenizer("gpt2")
    >>> ds = InstructionDataset([{"instruction": "Say hi.", "input": "", "output": "Hi!"}], tok)
    >>> inputs, targets = custom_collate_fn([ds[0]], mask_prompt=True)
    >>> tok.decode([t for t in targets[0].tolist() if t != IGNORE_INDEX])  # what the loss counts
    'Hi!<|endoftext|>'
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from core.classify_data import encode_text
from core.finetune_loop import LoopProgress, LoopResult, batches_in_eval_mode, run_epochs
from core.fused_head import fused_head, linear_cross_entropy
from core.instruct_data import (  # noqa: F401  (importable from here, where the book's chapter 7 names live)
    IGNORE_INDEX,
    PAD_TOKEN_ID,
    PROMPT_INTRO,
    RESPONSE_HEADER,
    InstructionDataset,
    custom_collate_fn,
    format_example,
    format_input,
    format_prompt,
    loss_mask_view,
    make_instruction_loader,
)
from core.instruct_score import (  # noqa: F401
    exact_match,
    export_responses_json,
    normalize_answer,
    score_responses,
    similarity_score,
    token_f1,
)
from core.model import GPTModel


# -------------------------------------------------------------------------------------------------- training
def calc_loss_batch(input_batch: torch.Tensor, target_batch: torch.Tensor, model: nn.Module, device=None):
    """Mean cross-entropy over the targets that count (not ``-100``).

    Only the positions that count go through the output head: with a masked prompt (or a lot of padding) that
    is a small part of the batch, and the head over GPT-2's 50,257 tokens is most of a small model's work (the
    project's GPT goes through :func:`core.fused_head.linear_cross_entropy`). The
    loss is the same as the book's ``cross_entropy(logits.flatten(0, 1), targets.flatten())``.
    A batch whose targets are all ignored gives 0 rather than the NaN of 0 / 0.
    """
    device = device or model.tok_emb.weight.device
    targets = target_batch.to(device)  # (B, T)
    keep = targets != IGNORE_INDEX  # (B, T)
    inner = getattr(model, "module", model)  # DistributedDataParallel keeps the model in .module
    if not isinstance(inner, GPTModel):  # another model (the book's own): score every position from its logits
        logits = model(input_batch.to(device)).flatten(0, 1)  # (B·T, V)
        total = F.cross_entropy(logits, targets.flatten(), ignore_index=IGNORE_INDEX, reduction="sum")
        return total / keep.sum().clamp(min=1)
    hidden = model(input_batch.to(device), return_hidden=True)[keep]  # (N, C): only the N counted positions
    head = fused_head(model)
    if head is not None:
        return linear_cross_entropy(hidden, head.weight, targets[keep])
    total = F.cross_entropy(inner.out_head(hidden), targets[keep], reduction="sum")  # a LoRA-wrapped head
    return total / keep.sum().clamp(min=1)


@torch.no_grad()
def calc_loss_loader(data_loader: DataLoader, model: nn.Module, device=None, num_batches: int | None = None):
    """Mean batch loss over the first ``num_batches`` batches (all by default)."""
    losses = [float(calc_loss_batch(inputs, targets, model, device))
              for inputs, targets in batches_in_eval_mode(data_loader, model, num_batches)]
    return sum(losses) / len(losses) if losses else float("nan")


@dataclass
class InstructResult(LoopResult):
    """What :func:`train_instruct` returns: records, steps, stopped, elapsed_s and the tokens seen."""

    tokens_seen: int = 0


def train_instruct(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    epochs: int = 2,
    max_steps: int | None = None,
    lr: float = 5e-5,
    weight_decay: float = 0.1,
    eval_every: int = 5,
    eval_batches: int | None = 5,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    stop_event: threading.Event | None = None,
    seed: int | None = 123,
) -> InstructResult:
    """The book's ``train_model_simple`` on instruction batches: AdamW (lr 5e-5, weight decay 0.1).

    Trains for ``epochs`` passes or until ``max_steps`` updates, whichever comes first. Every ``eval_every``
    steps (and at step 1 and the end) it appends ``dict(step, epoch, tokens_seen, train_loss, val_loss,
    elapsed_s)`` to the records and passes it to ``on_record``. ``stop_event`` ends training after the current
    step. Raises LabError if the loss becomes NaN or infinite.
    """
    result = InstructResult()

    def record(progress: LoopProgress, epoch: int) -> None:
        device = model.tok_emb.weight.device
        entry = {
            "step": progress.steps, "epoch": epoch, "tokens_seen": progress.seen,
            "train_loss": calc_loss_loader(train_loader, model, device, eval_batches),
            "val_loss": calc_loss_loader(val_loader, model, device, eval_batches),
            "elapsed_s": progress.elapsed(),
        }
        result.records.append(entry)
        if on_record is not None:
            on_record(entry)

    progress = run_epochs(
        model, train_loader, batch_fn=lambda batch, device: (*batch, calc_loss_batch, batch[0].numel()),
        on_eval=record, epochs=epochs, max_steps=max_steps, lr=lr,
        weight_decay=weight_decay, eval_every=eval_every, seed=seed, stop_event=stop_event,
        no_params_hint="unfreeze it or apply LoRA first.",
    )
    if progress.steps and result.records[-1]["step"] != progress.steps:
        record(progress, progress.epoch)  # the curves end where training ended
    result.steps, result.tokens_seen, result.stopped = progress.steps, progress.seen, progress.stopped
    result.elapsed_s = progress.elapsed()
    return result


# ------------------------------------------------------------------------------------------------ generation
def clean_answer(text: str) -> str:
    """The answer in a generated continuation: a ``"### Response:"`` header the model wrote anyway is dropped,
    and the answer ends where the model starts another template section (``###``); whitespace is stripped.

    Example:
        >>> clean_answer("### Response:\\nParis.\\n\\n### Instruction:\\nName")
        'Paris.'
    """
    text = text.strip()
    if text.startswith("### Response:"):
        text = text[len("### Response:"):]
    return text.split("###", 1)[0].strip()


def generate_responses(
    model: nn.Module,
    tokenizer: Any,
    entries: Sequence[Mapping[str, Any]],
    max_new_tokens: int = 64,
    eos_id: int | None = PAD_TOKEN_ID,
) -> list[str]:
    """Greedy answers to each entry's prompt, as in the book's section 7.7.

    The prompt is :func:`format_prompt` (the Alpaca prompt and the ``"### Response:"`` header, cut to its last
    tokens if longer than the context); generation stops at ``eos_id``; the answer is the new text as
    :func:`clean_answer` leaves it.
    """
    from core.generate import generate  # imported here: generation is optional for training-only use

    context = model.pos_emb.weight.shape[0]
    device = model.tok_emb.weight.device
    was_training = model.training
    model.eval()
    answers = []
    for i, entry in enumerate(entries):
        prompt = encode_text(tokenizer, format_prompt(entry, i))[-max(1, context - 1):]
        idx = torch.tensor([prompt], device=device)
        out = generate(model, idx, max_new_tokens, context_size=context, temperature=0.0, eos_id=eos_id)
        new = out[0, len(prompt):].tolist()
        if eos_id is not None and eos_id in new:  # whether or not generate() keeps the stop token
            new = new[: new.index(eos_id)]
        answers.append(clean_answer(tokenizer.decode(new)))
    model.train(was_training)
    return answers
