"""Classification fine-tuning, the book's chapter 6: turn a GPT into a spam/ham (or any n-class) classifier.

The recipe: swap the vocabulary-sized output head for a small ``nn.Linear(emb_dim, n_classes)``, freeze
most of the network, and read the class from the output at ONE token position. The book uses the last
position because causal attention lets only the last token see the whole message.

Shape legend: B batch, T tokens, C ``emb_dim``, K number of classes.

Example:
    >>> from core.config import GPTConfig
    >>> from core.model import GPTModel
    >>> model = prepare_classifier(GPTModel(GPTConfig.preset("tiny")), n_classes=2, mode="last-block")
    >>> model.out_head
    Linear(in_features=64, out_features=2, bias=True)
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from core.classify_data import (  # noqa: F401  (the data half, importable from here as the book's names are)
    PAD_TOKEN_ID,
    ClassificationDataset,
    Padding,
    classification_collate,
    encode_text,
    make_loader,
)
from core.errors import LabError, check_choice, check_int
from core.finetune_loop import LoopProgress, LoopResult, batches_in_eval_mode, finite_loss, run_epochs  # noqa: F401
from core.lora import apply_lora

Mode = Literal["last-block", "all", "lora", "head-only"]
Position = Literal["last", "first", "last-real"]
MODES: tuple[str, ...] = ("last-block", "all", "lora", "head-only")
POSITIONS: tuple[str, ...] = ("last", "first", "last-real")


# ----------------------------------------------------------------------------------------------------- model
def prepare_classifier(
    model: nn.Module, n_classes: int, mode: Mode = "last-block", lora_rank: int = 8, lora_alpha: float = 16,
    seed: int = 123,
) -> nn.Module:
    """Give ``model`` a K-class head and choose what trains, in place (returns the same model).

    Args:
        model: a ``GPTModel`` (pretrained weights are what make this work well).
        n_classes: K, e.g. 2 for spam/ham.
        mode: ``"last-block"`` (the book: last transformer block + final norm + head train),
            ``"all"`` (everything trains), ``"head-only"`` (only the new head), or ``"lora"`` (LoRA on every
            linear layer of the transformer blocks, plus the new head).
        lora_rank, lora_alpha: LoRA settings for ``mode="lora"``.
        seed: seed for the new head's initialisation (the same numbers as the book's
            ``torch.manual_seed(123)``); the global RNG is left alone.

    In ``"lora"`` mode the fresh head trains fully (K·(C+1) numbers). The book's appendix E instead wraps the
    head with LoRA too; :func:`core.lora.apply_lora` with ``targets="all-linear"`` reproduces that count.
    """
    check_choice(mode, "fine-tuning mode", MODES)
    check_int(n_classes, "n_classes", low=2, fix="a classifier needs at least 2 classes")
    emb_dim = model.final_norm.scale.shape[0]
    w = model.tok_emb.weight
    model.out_head = _seeded_linear(emb_dim, n_classes, seed).to(device=w.device, dtype=w.dtype)
    model.requires_grad_(mode == "all")
    if mode == "last-block":
        model.trf_blocks[-1].requires_grad_(True)
        model.final_norm.requires_grad_(True)
    elif mode == "lora":
        apply_lora(model, lora_rank, lora_alpha, targets="trf_blocks.*", freeze_base=True)
    model.out_head.requires_grad_(True)
    return model


def _seeded_linear(n_in: int, n_out: int, seed: int) -> nn.Linear:
    """``nn.Linear(n_in, n_out)`` with exactly the numbers of ``torch.manual_seed(seed); nn.Linear(...)`` (the
    book), drawn from a private generator so the global RNG (maybe in use by another thread) is untouched."""
    layer = nn.Linear(n_in, n_out, device="meta").to_empty(device="cpu")  # no global RNG draw
    gen = torch.Generator().manual_seed(seed)
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=gen)  # nn.Linear's own recipe, in order
    bound = 1 / math.sqrt(n_in)
    nn.init.uniform_(layer.bias, -bound, bound, generator=gen)
    return layer


def trainable_summary(model: nn.Module) -> dict[str, Any]:
    """What trains, per top-level part (``tok_emb``, ``trf_blocks.0`` … ``out_head``).

    Returns:
        ``total``, ``trainable``, ``frozen``, ``trainable_pct`` and ``parts``: a list of dicts
        ``(name, trainable, total)`` in model order.
    """
    parts: dict[str, list[int]] = {}
    for name, p in model.named_parameters():
        bits = name.split(".")
        key = ".".join(bits[:2]) if bits[0] == "trf_blocks" else bits[0]
        entry = parts.setdefault(key, [0, 0])
        entry[0] += p.numel() if p.requires_grad else 0
        entry[1] += p.numel()
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        "total": total, "trainable": trainable, "frozen": total - trainable,
        "trainable_pct": 100.0 * trainable / max(total, 1),
        "parts": [{"name": k, "trainable": v[0], "total": v[1]} for k, v in parts.items()],
    }


def classify_logits(
    model: nn.Module,
    input_ids: torch.Tensor,
    lengths: torch.Tensor | None = None,
    position: Position = "last",
) -> torch.Tensor:
    """Class logits (B, K) read at one token position of each sequence.

    Args:
        input_ids: (B, T) token ids, padded on the right.
        lengths: (B,) real tokens per row; needed for ``"last-real"`` (default: all T are real).
        position: ``"last"`` (the book: index -1, which may be padding), ``"first"`` (an ablation: the first
            token sees only itself), or ``"last-real"`` (the last non-padding token, which has seen exactly
            the message).
    """
    check_choice(position, "token position", POSITIONS)
    hidden = model(input_ids, return_hidden=True)  # (B, T, C)
    b, t, _ = hidden.shape
    if position == "last":
        picked = hidden[:, -1]
    elif position == "first":
        picked = hidden[:, 0]
    else:
        lengths = torch.full((b,), t) if lengths is None else lengths.to(hidden.device)
        picked = hidden[torch.arange(b, device=hidden.device), lengths.clamp(1, t) - 1]  # (B, C)
    head = model.module.out_head if hasattr(model, "module") else model.out_head  # a DDP wrapper holds .module
    return head(picked)  # (B, K): only B positions go through the head, not all B·T


def _unpack(batch: Sequence[torch.Tensor], device: torch.device) -> tuple[torch.Tensor, ...]:
    ids, labels = batch[0].to(device), batch[1].to(device)
    lengths = batch[2].to(device) if len(batch) > 2 else None
    return ids, labels, lengths


def calc_loss_batch(input_batch, target_batch, model, device=None, lengths=None, position: Position = "last"):
    """Cross-entropy of one batch (the book's ``calc_loss_batch`` for classification)."""
    device = device or model.tok_emb.weight.device
    logits = classify_logits(model, input_batch.to(device), lengths, position)
    return F.cross_entropy(logits, target_batch.to(device))


@torch.no_grad()
def calc_accuracy_loader(
    data_loader: DataLoader, model: nn.Module, device=None, num_batches: int | None = None,
    position: Position = "last",
) -> float:
    """Fraction of correct predictions over the first ``num_batches`` batches (all by default)."""
    device = device or model.tok_emb.weight.device
    correct = seen = 0
    for batch in batches_in_eval_mode(data_loader, model, num_batches):
        ids, labels, lengths = _unpack(batch, device)
        pred = classify_logits(model, ids, lengths, position).argmax(dim=-1)
        correct += int((pred == labels).sum())
        seen += len(labels)
    return correct / seen if seen else float("nan")


@torch.no_grad()
def calc_loss_loader(
    data_loader: DataLoader, model: nn.Module, device=None, num_batches: int | None = None,
    position: Position = "last",
) -> float:
    """Mean batch loss over the first ``num_batches`` batches (all by default)."""
    device = device or model.tok_emb.weight.device
    losses = []
    for batch in batches_in_eval_mode(data_loader, model, num_batches):
        ids, labels, lengths = _unpack(batch, device)
        losses.append(float(calc_loss_batch(ids, labels, model, device, lengths, position)))
    return sum(losses) / len(losses) if losses else float("nan")


@torch.no_grad()
def calc_loss_and_accuracy_loader(
    data_loader: DataLoader, model: nn.Module, device=None, num_batches: int | None = None,
    position: Position = "last",
) -> tuple[float, float]:
    """:func:`calc_loss_loader` and :func:`calc_accuracy_loader` from one forward pass over the same batches."""
    device = device or model.tok_emb.weight.device
    losses, correct, seen = [], 0, 0
    for batch in batches_in_eval_mode(data_loader, model, num_batches):
        ids, labels, lengths = _unpack(batch, device)
        logits = classify_logits(model, ids, lengths, position)
        losses.append(float(F.cross_entropy(logits, labels)))
        correct += int((logits.argmax(dim=-1) == labels).sum())
        seen += len(labels)
    nan = float("nan")
    return (sum(losses) / len(losses) if losses else nan), (correct / seen if seen else nan)


# -------------------------------------------------------------------------------------------------- training
@dataclass
class ClassifierResult(LoopResult):
    """What :func:`train_classifier` returns: records, steps, stopped, elapsed_s and the examples seen."""

    examples_seen: int = 0

    @property
    def final(self) -> dict[str, Any]:
        """The last record that has accuracies (end of the last epoch)."""
        with_acc = [r for r in self.records if r["train_acc"] is not None]
        return with_acc[-1] if with_acc else {}


def train_classifier(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    epochs: int = 5,
    lr: float = 5e-5,
    weight_decay: float = 0.1,
    eval_every: int = 50,
    eval_batches: int | None = 5,
    position: Position = "last",
    on_record: Callable[[dict[str, Any]], None] | None = None,
    stop_event: threading.Event | None = None,
    seed: int | None = 123,
    max_steps: int | None = None,
) -> ClassifierResult:
    """The book's ``train_classifier_simple``: AdamW over the trainable parameters, losses every
    ``eval_every`` steps, accuracies at the end of each epoch — and, beyond the book, accuracies at every
    evaluation too, read off the same forward pass as its losses (so the curves have a point per evaluation).

    Each record is ``dict(kind, step, epoch, examples_seen, train_loss, val_loss, train_acc, val_acc,
    elapsed_s)``; ``kind`` is ``"eval"`` (every ``eval_every`` steps) or ``"epoch"`` (the book's end-of-epoch
    evaluation, separate passes for losses and accuracies as the book makes them). Setting ``stop_event``
    ends training after the current step; the result says ``stopped``. Raises LabError if the loss becomes NaN
    or infinite.
    """
    result = ClassifierResult()

    def record(progress: LoopProgress, epoch: int, kind: str) -> None:
        device = model.tok_emb.weight.device
        kw = dict(model=model, device=device, num_batches=eval_batches, position=position)
        if kind == "epoch":  # in the book's order: both losses, then both accuracies
            tl, vl = calc_loss_loader(train_loader, **kw), calc_loss_loader(val_loader, **kw)
            ta, va = calc_accuracy_loader(train_loader, **kw), calc_accuracy_loader(val_loader, **kw)
        else:
            (tl, ta), (vl, va) = (calc_loss_and_accuracy_loader(d, **kw) for d in (train_loader, val_loader))
        entry = {"kind": kind, "step": progress.steps, "epoch": epoch, "examples_seen": progress.seen,
                 "train_loss": tl, "val_loss": vl, "train_acc": ta, "val_acc": va, "elapsed_s": progress.elapsed()}
        result.records.append(entry)
        if on_record is not None:
            on_record(entry)

    def batch_fn(batch: Sequence[torch.Tensor], device: torch.device) -> tuple:
        ids, labels, lengths = _unpack(batch, device)
        return ids, labels, partial(_loss_fn, lengths=lengths, position=position), ids.shape[0]

    progress = run_epochs(
        model, train_loader, batch_fn=batch_fn, on_eval=partial(record, kind="eval"),
        on_epoch=partial(record, kind="epoch"),  # also after a stop, so the curves end where training ended
        epochs=epochs, max_steps=max_steps, lr=lr, weight_decay=weight_decay, eval_every=eval_every, seed=seed,
        stop_event=stop_event, no_params_hint="call prepare_classifier(...) first.",
    )
    result.steps, result.examples_seen, result.stopped = progress.steps, progress.seen, progress.stopped
    result.elapsed_s = progress.elapsed()
    return result


def _loss_fn(ids: torch.Tensor, labels: torch.Tensor, model: nn.Module, device: Any, *, lengths: Any,
             position: Position) -> torch.Tensor:
    return calc_loss_batch(ids, labels, model, device, lengths, position)


# ------------------------------------------------------------------------------------------ evaluate/predict
@torch.no_grad()
def evaluate(
    model: nn.Module, loader: DataLoader, labels: Sequence[str], position: Position = "last",
) -> dict[str, Any]:
    """Accuracy, mean loss, a confusion matrix and every prediction.

    Returns:
        ``accuracy``, ``loss`` (mean per example), ``confusion`` (K×K list, rows = true class, columns =
        predicted) and ``per_example``: dicts ``(text, label, pred, probs)`` with class names; ``text`` is
        what the model saw (decoded, truncation included) when the loader's dataset has a tokenizer.
    """
    device = model.tok_emb.weight.device
    was_training = model.training
    model.eval()
    k = len(labels)
    confusion = [[0] * k for _ in range(k)]
    tokenizer = getattr(loader.dataset, "tokenizer", None)
    per_example, loss_sum = [], 0.0
    for batch in loader:
        ids, target, lengths = _unpack(batch, device)
        logits = classify_logits(model, ids, lengths, position)  # (B, K)
        if logits.shape[-1] != k:
            raise LabError(f"The model predicts {logits.shape[-1]} classes but {k} label names were given.")
        loss_sum += float(F.cross_entropy(logits, target, reduction="sum"))
        probs = torch.softmax(logits, dim=-1)
        for row in range(len(target)):
            t, p = int(target[row]), int(probs[row].argmax())
            confusion[t][p] += 1
            n_real = int(lengths[row]) if lengths is not None else ids.shape[1]
            text = tokenizer.decode(ids[row, :n_real].tolist()) if tokenizer is not None else None
            per_example.append({"text": text, "label": labels[t], "pred": labels[p],
                                "probs": [round(float(x), 6) for x in probs[row]]})
    model.train(was_training)
    n = len(per_example)
    if n == 0:
        raise LabError("The evaluation loader yielded no examples; check the split or set drop_last=False.")
    correct = sum(confusion[i][i] for i in range(k))
    return {"accuracy": correct / n, "loss": loss_sum / n, "confusion": confusion, "per_example": per_example}


@torch.no_grad()
def predict(
    model: nn.Module,
    tokenizer: Any,
    text: str,
    max_length: int | None = None,
    labels: Sequence[str] = ("ham", "spam"),
    position: Position = "last",
    pad_token_id: int = PAD_TOKEN_ID,
) -> dict[str, Any]:
    """Classify one message (the book's ``classify_review``).

    The text is truncated to ``max_length`` (capped at the context length) and, as in the book, padded to
    ``max_length`` so the last position looks like it did in training.

    Returns:
        ``label`` (name), ``index``, ``probs`` ({name: probability}), ``n_tokens`` and ``truncated``.
    """
    if not isinstance(text, str) or not text.strip():
        raise LabError("The message is empty; type some text to classify.")
    context = model.pos_emb.weight.shape[0]
    limit = min(max_length or context, context)
    ids = encode_text(tokenizer, text)
    truncated = len(ids) > limit
    ids = ids[:limit]
    n_real = len(ids)
    if max_length is not None:
        ids = ids + [pad_token_id] * (limit - n_real)
    was_training = model.training
    model.eval()
    device = model.tok_emb.weight.device
    logits = classify_logits(model, torch.tensor([ids], device=device), torch.tensor([n_real]), position)
    model.train(was_training)
    probs = torch.softmax(logits[0], dim=-1).tolist()
    if len(probs) != len(labels):
        raise LabError(f"The model predicts {len(probs)} classes but {len(labels)} label names were given.")
    index = max(range(len(probs)), key=probs.__getitem__)
    return {"label": labels[index], "index": index, "probs": dict(zip(labels, probs)), "n_tokens": n_real,
            "truncated": truncated}
