"""Instruction fine-tuning, the book's chapter 7: teach a GPT to follow Alpaca-style prompts.

Each record ``{instruction, input, output}`` becomes one text (the Alpaca template), the model is trained
on it with the ordinary next-token loss, and padding (plus, optionally, the prompt) is kept out of the loss
by setting those targets to ``-100``, the index ``F.cross_entropy`` ignores.

Shape legend: B batch, T tokens (longest sequence in the batch), V vocabulary.

Example:
    >>> print(format_example({"instruction": "Say hi.", "input": "", "output": "Hi!"}))
    Below is an instruction that describes a task. Write a response that appropriately completes the request.
    <BLANKLINE>
    ### Instruction:
    Say hi.
    <BLANKLINE>
    ### Response:
    Hi!
"""

from __future__ import annotations

import json
import re
import string
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from core.classify import encode_text, finite_loss
from core.errors import LabError
from core.train_step import train_step

PAD_TOKEN_ID = 50256  # <|endoftext|>: marks the end of a response and pads the batch
IGNORE_INDEX = -100  # F.cross_entropy skips targets with this value
PROMPT_INTRO = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request."
)
RESPONSE_HEADER = "\n\n### Response:\n"


# ---------------------------------------------------------------------------------------------- the template
def _field(entry: Mapping[str, Any], key: str, index: int | None, required: bool) -> str:
    where = f"Record {index}" if index is not None else "The record"
    if not isinstance(entry, Mapping):
        raise LabError(f"{where} is not a dict with 'instruction', 'input' and 'output'; fix the data.")
    value = entry.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise LabError(f"{where} has no {key!r} text; every record needs a non-empty {key!r}.")
    return value


def format_input(entry: Mapping[str, Any], index: int | None = None) -> str:
    """The Alpaca prompt exactly as the book writes it: intro, instruction and (if not empty) input.

    Args:
        entry: a dict with ``instruction`` and optionally ``input``.
        index: the record's position, used only in error messages.
    """
    text = PROMPT_INTRO + "\n\n### Instruction:\n" + _field(entry, "instruction", index, required=True)
    extra = _field(entry, "input", index, required=False)
    return text + ("\n\n### Input:\n" + extra if extra else "")


def format_example(entry: Mapping[str, Any], index: int | None = None) -> str:
    """The full training text: :func:`format_input` + ``"\\n\\n### Response:\\n"`` + output."""
    return format_input(entry, index) + RESPONSE_HEADER + _field(entry, "output", index, required=True)


# ------------------------------------------------------------------------------------------ dataset, collate
class InstructionDataset(Dataset):
    """Pre-tokenised instruction examples (the book's ``InstructionDataset``).

    Args:
        data: records with ``instruction``, ``input`` (may be empty) and ``output``.
        tokenizer: anything with ``encode(text)``, e.g. ``core.tokenizers.get_tokenizer("gpt2")``.
        max_length: the most tokens one example may have, normally the model's context length. Longer
            examples are truncated (their end is cut) and counted in ``n_truncated``; never silently.

    Each item is ``{"input_ids": list[int], "prompt_length": int}``; ``prompt_length`` counts the tokens of
    :func:`format_input` (what the model is given when it answers), used by ``mask_prompt``.
    """

    def __init__(
        self, data: Sequence[Mapping[str, Any]], tokenizer: Any, max_length: int | None = None
    ) -> None:
        if not isinstance(data, Sequence) or isinstance(data, str) or not data:
            raise LabError("Instruction data must be a non-empty list of instruction/input/output records.")
        if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int)
                                       or max_length < 2):
            raise LabError(f"max_length must be a whole number of at least 2, got {max_length!r}.")
        self.data, self.tokenizer, self.max_length = list(data), tokenizer, max_length
        self.encoded_texts: list[list[int]] = []
        self.prompt_lengths: list[int] = []
        self.n_truncated = 0
        for i, entry in enumerate(self.data):
            full = encode_text(tokenizer, format_example(entry, i))
            prompt = encode_text(tokenizer, format_input(entry, i))
            # BPE could in principle merge across the prompt/response border; count only the shared prefix.
            n_prompt = next((k for k, (a, b) in enumerate(zip(prompt, full)) if a != b), len(prompt))
            if max_length is not None and len(full) > max_length:
                self.n_truncated += 1
                full = full[:max_length]
            self.encoded_texts.append(full)
            self.prompt_lengths.append(min(n_prompt, len(full)))
        self.notes = [] if not self.n_truncated else [
            f"{self.n_truncated} of {len(self.data)} examples were longer than {max_length} tokens and were "
            "truncated (their responses lose their end)."
        ]

    def __len__(self) -> int:
        return len(self.encoded_texts)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"input_ids": self.encoded_texts[i], "prompt_length": self.prompt_lengths[i]}


def custom_collate_fn(
    batch: Sequence[Sequence[int] | torch.Tensor | Mapping[str, Any]],
    pad_token_id: int = PAD_TOKEN_ID,
    ignore_index: int = IGNORE_INDEX,
    allowed_max_length: int | None = None,
    mask_prompt: bool = False,
    prompt_lengths: Sequence[int] | None = None,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a batch into ``(inputs, targets)``, both (B, T), as the book's ``custom_collate_fn``.

    Each sequence gets one ``<|endoftext|>`` appended (so the model learns to stop), is padded to the batch's
    longest with ``pad_token_id``, and is split into inputs = seq[:-1] and targets = seq[1:]. In the
    targets every padding position except the first end-of-text becomes ``ignore_index``; with
    ``mask_prompt`` the targets that predict prompt tokens do too (target j predicts token j + 1, so
    ``targets[:prompt_len - 1]``).

    Args:
        batch: token-id lists (or tensors), or :class:`InstructionDataset` items (dicts with ``input_ids`` and
            ``prompt_length``).
        allowed_max_length: cut inputs and targets to this many positions (the book: 1024).
        prompt_lengths: prompt tokens per sequence; overrides the items' ``prompt_length``.

    The padding is found by position, not by value, so a literal ``<|endoftext|>`` inside a text still counts.

    Example:
        >>> inputs, targets = custom_collate_fn([[0, 1, 2, 3, 4], [5, 6]])
        >>> targets.tolist()
        [[1, 2, 3, 4, 50256], [6, 50256, -100, -100, -100]]
    """
    seqs, lens = [], []
    for item in batch:
        if isinstance(item, Mapping):
            seqs.append([int(t) for t in item["input_ids"]])
            lens.append(int(item.get("prompt_length", 0)))
        else:
            seqs.append([int(t) for t in (item.tolist() if isinstance(item, torch.Tensor) else item)])
            lens.append(0)
    if not seqs:
        raise LabError("The batch is empty; give the collate function at least one sequence.")
    if prompt_lengths is not None:
        if len(prompt_lengths) != len(seqs):
            raise LabError(f"Got {len(prompt_lengths)} prompt lengths for {len(seqs)} sequences; "
                           "give one per sequence.")
        lens = [int(n) for n in prompt_lengths]
    width = max(len(s) for s in seqs) + 1  # +1 for the appended <|endoftext|>
    padded = torch.full((len(seqs), width), pad_token_id, dtype=torch.long)
    for row, s in enumerate(seqs):
        padded[row, : len(s)] = torch.tensor(s, dtype=torch.long)
    inputs, targets = padded[:, :-1].clone(), padded[:, 1:].clone()  # (B, T) each, T = width - 1
    for row, s in enumerate(seqs):
        targets[row, len(s) :] = ignore_index  # target len(s) - 1 is the end-of-text we keep
        if mask_prompt and lens[row] > 1:
            targets[row, : lens[row] - 1] = ignore_index
    if allowed_max_length is not None:
        inputs, targets = inputs[:, :allowed_max_length], targets[:, :allowed_max_length]
    return inputs.to(device), targets.to(device)


def make_instruction_loader(
    dataset: InstructionDataset,
    batch_size: int = 8,
    shuffle: bool = False,
    drop_last: bool = False,
    mask_prompt: bool = False,
    allowed_max_length: int | None = None,
    pad_token_id: int = PAD_TOKEN_ID,
    device: str | torch.device = "cpu",
    seed: int | None = 123,
) -> DataLoader:
    """A DataLoader over ``dataset`` with :func:`custom_collate_fn` (the book: batch 8, shuffled training)."""
    collate = partial(custom_collate_fn, pad_token_id=pad_token_id, allowed_max_length=allowed_max_length,
                      mask_prompt=mask_prompt, device=device)
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                      collate_fn=collate, generator=gen, num_workers=0)


def loss_mask_view(
    inputs: torch.Tensor, targets: torch.Tensor, tokenizer: Any = None, ignore_index: int = IGNORE_INDEX,
) -> list[list[dict[str, Any]]]:
    """Per row, per position: the input token, the target token and whether it counts in the loss.

    Args:
        inputs, targets: (B, T) from :func:`custom_collate_fn`.
        tokenizer: if given, each cell also has ``token`` and ``target`` text (``None`` for ignored targets).
    """
    rows = []
    for ids, tgt in zip(inputs.tolist(), targets.tolist()):
        row = []
        for a, b in zip(ids, tgt):
            cell: dict[str, Any] = {"token_id": a, "target_id": b, "counts": b != ignore_index}
            if tokenizer is not None:
                cell["token"] = tokenizer.decode([a])
                cell["target"] = tokenizer.decode([b]) if b != ignore_index else None
            row.append(cell)
        rows.append(row)
    return rows


# -------------------------------------------------------------------------------------------------- training
def calc_loss_batch(input_batch: torch.Tensor, target_batch: torch.Tensor, model: nn.Module, device=None):
    """Mean cross-entropy over the targets that count (not ``-100``).

    Only the positions that count go through the output head: with a masked prompt (or a lot of padding) that
    is a small part of the batch, and the head over GPT-2's 50,257 tokens is most of a small model's work. The
    loss is the same as the book's ``cross_entropy(logits.flatten(0, 1), targets.flatten())``.
    A batch whose targets are all ignored gives 0 rather than the NaN of 0 / 0.
    """
    device = device or model.tok_emb.weight.device
    targets = target_batch.to(device)  # (B, T)
    keep = targets != IGNORE_INDEX  # (B, T)
    head = getattr(model, "out_head", None)
    try:
        hidden = model(input_batch.to(device), return_hidden=True) if head is not None else None  # (B, T, C)
    except TypeError:  # a model without the return_hidden option: score every position
        hidden = None
    if hidden is not None:
        logits, wanted = head(hidden[keep]), targets[keep]  # (N, V), (N,) for the N counted positions
    else:
        logits, wanted = model(input_batch.to(device)).flatten(0, 1), targets.flatten()  # (B·T, V), (B·T,)
    total = F.cross_entropy(logits, wanted, ignore_index=IGNORE_INDEX, reduction="sum")
    return total / keep.sum().clamp(min=1)


@torch.no_grad()
def calc_loss_loader(data_loader: DataLoader, model: nn.Module, device=None, num_batches: int | None = None):
    """Mean batch loss over the first ``num_batches`` batches (all by default)."""
    was_training = model.training
    model.eval()
    losses = []
    for i, (inputs, targets) in enumerate(data_loader):
        if num_batches is not None and i >= num_batches:
            break
        losses.append(float(calc_loss_batch(inputs, targets, model, device)))
    model.train(was_training)
    return sum(losses) / len(losses) if losses else float("nan")


@dataclass
class InstructResult:
    """What :func:`train_instruct` returns; ``records`` are plain dicts ready for a DataFrame."""

    records: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    tokens_seen: int = 0
    stopped: bool = False
    elapsed_s: float = 0.0


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
    if epochs < 1 or eval_every < 1 or (max_steps is not None and max_steps < 1):
        raise LabError("epochs, eval_every and max_steps must be at least 1.")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise LabError("The model has no trainable parameters; unfreeze it or apply LoRA first.")
    if seed is not None:
        torch.manual_seed(seed)  # as the book: dropout and shuffling repeat from run to run
    device = model.tok_emb.weight.device
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    result, start = InstructResult(), time.perf_counter()

    def emit(epoch: int) -> None:
        record = {
            "step": result.steps, "epoch": epoch, "tokens_seen": result.tokens_seen,
            "train_loss": calc_loss_loader(train_loader, model, device, eval_batches),
            "val_loss": calc_loss_loader(val_loader, model, device, eval_batches),
            "elapsed_s": time.perf_counter() - start,
        }
        result.records.append(record)
        if on_record is not None:
            on_record(record)

    epoch, done = 0, False
    for epoch in range(1, epochs + 1):
        model.train()
        for inputs, targets in train_loader:
            if stop_event is not None and stop_event.is_set():
                result.stopped = done = True
                break
            train_step(
                model, optimizer, inputs, targets, loss_fn=calc_loss_batch, device=device,
                guard=partial(finite_loss, result.steps + 1),
            )  # fmt: skip
            result.steps += 1
            result.tokens_seen += inputs.numel()
            if result.steps == 1 or result.steps % eval_every == 0:
                emit(epoch)
            if max_steps is not None and result.steps >= max_steps:
                done = True
                break
        if result.steps == 0 and not result.stopped:
            raise LabError("The training loader yielded no batches; use a smaller batch or drop_last=False.")
        if done:
            break
    if result.steps and (not result.records or result.records[-1]["step"] != result.steps):
        emit(epoch)  # the curves end where training ended
    model.eval()
    result.elapsed_s = time.perf_counter() - start
    return result


# ------------------------------------------------------------------------------------------------ generation
def generate_responses(
    model: nn.Module,
    tokenizer: Any,
    entries: Sequence[Mapping[str, Any]],
    max_new_tokens: int = 64,
    eos_id: int | None = PAD_TOKEN_ID,
) -> list[str]:
    """Greedy answers to each entry's prompt, as in the book's section 7.7.

    The prompt is :func:`format_input` (cut to its last tokens if longer than the context); generation stops
    at ``eos_id``; the answer is the new text with the ``"### Response:"`` header removed and whitespace
    stripped.
    """
    from core.generate import generate  # imported here: generation is optional for training-only use

    context = model.pos_emb.weight.shape[0]
    device = model.tok_emb.weight.device
    was_training = model.training
    model.eval()
    answers = []
    for i, entry in enumerate(entries):
        prompt = encode_text(tokenizer, format_input(entry, i))[-max(1, context - 1):]
        idx = torch.tensor([prompt], device=device)
        out = generate(model, idx, max_new_tokens, context_size=context, temperature=0.0, eos_id=eos_id)
        new = out[0, len(prompt):].tolist()
        if eos_id is not None and eos_id in new:  # whether or not generate() keeps the stop token
            new = new[: new.index(eos_id)]
        answers.append(tokenizer.decode(new).replace("### Response:", "").strip())
    model.train(was_training)
    return answers


# ---------------------------------------------------------------------------------------------------- scores
def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lowercase, drop punctuation and the articles a/an/the, squeeze whitespace."""
    text = "".join(ch for ch in str(text).lower() if ch not in string.punctuation)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(pred: str, ref: str) -> float:
    """1.0 if the answers are equal after :func:`normalize_answer`, else 0.0."""
    return float(normalize_answer(pred) == normalize_answer(ref))


def token_f1(pred: str, ref: str) -> float:
    """SQuAD's token F1: harmonic mean of precision and recall of shared (normalised) words, in [0, 1].

    Example:
        >>> round(token_f1("The cat sat", "a cat sat down"), 3)
        0.8
    """
    p, r = normalize_answer(pred).split(), normalize_answer(ref).split()
    if not p or not r:
        return float(p == r)
    same = sum((Counter(p) & Counter(r)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(r)
    return 2 * precision * recall / (precision + recall)


def similarity_score(pred: str, ref: str, n: int = 3) -> float:
    """A HEURISTIC similarity in [0, 1]: F1 of character n-grams of the normalised texts.

    The book scores responses with an LLM judge (Llama 3 via Ollama); without one this rewards answers that
    share wording and spelling with the reference. It does not understand meaning: treat it as a rough guide.
    """
    a, b = normalize_answer(pred).replace(" ", "_"), normalize_answer(ref).replace(" ", "_")
    if len(a) < n or len(b) < n:
        return float(a == b)
    ga = Counter(a[i : i + n] for i in range(len(a) - n + 1))
    gb = Counter(b[i : i + n] for i in range(len(b) - n + 1))
    same = sum((ga & gb).values())
    if same == 0:
        return 0.0
    precision, recall = same / sum(ga.values()), same / sum(gb.values())
    return 2 * precision * recall / (precision + recall)


def score_responses(preds: Sequence[str], refs: Sequence[str]) -> dict[str, float]:
    """Mean ``exact_match``, ``token_f1`` and (heuristic) ``similarity`` over pairs, and their count ``n``."""
    if len(preds) != len(refs):
        raise LabError(f"Got {len(preds)} responses for {len(refs)} references; give one per example.")
    n = len(preds)
    if n == 0:
        return {"exact_match": float("nan"), "token_f1": float("nan"), "similarity": float("nan"), "n": 0}
    return {
        "exact_match": sum(map(exact_match, preds, refs)) / n,
        "token_f1": sum(map(token_f1, preds, refs)) / n,
        "similarity": sum(map(similarity_score, preds, refs)) / n,
        "n": n,
    }


def export_responses_json(entries: Sequence[Mapping[str, Any]], responses: Sequence[str]) -> str:
    """The test records with a ``"model_response"`` key added, as JSON text (the book's file format)."""
    if len(entries) != len(responses):
        raise LabError(f"Got {len(responses)} responses for {len(entries)} entries; give one response each.")
    records = [{**dict(e), "model_response": r} for e, r in zip(entries, responses)]
    return json.dumps(records, indent=4, ensure_ascii=False)
