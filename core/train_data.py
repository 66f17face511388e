"""Batches and losses of pretraining (the book's chapter 5): the train/validation split, the batch of each step
as a pure function of (step, seed), and the cross-entropy of a batch or a whole loader.

Shape legend: B batch, L context length, V vocabulary size, N number of windows.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import torch

from core.data import as_token_ids
from core.errors import LabError
from core.fused_head import next_token_loss
from core.train_config import SPLITS
from core.train_plan import split_sizes

# -------------------------------------------------------------------------------------------------- data
ENDOFTEXT = "<|endoftext|>"


@dataclass(frozen=True)
class TokenSplit:
    """A corpus as training and validation token ids (1-D each), and how it was cut (one of :data:`SPLITS`)."""

    train: torch.Tensor
    val: torch.Tensor
    how: str = "tokens"

    def __len__(self) -> int:
        return int(self.train.numel() + self.val.numel())

    @property
    def sizes(self) -> tuple[int, int]:
        return int(self.train.numel()), int(self.val.numel())


def split_token_ids(ids: torch.Tensor, val_ratio: float) -> tuple[torch.Tensor, torch.Tensor]:
    """First ``1 - val_ratio`` of the tokens for training, the rest for validation (the lab's default split).

    Splitting *before* cutting windows keeps every validation token out of every training window. The book cuts
    the *text* at 90 % of its characters instead and tokenizes both halves (The Verdict: 4,612 / 534 tokens, where
    this gives 4,630 / 515): :func:`split_corpus` with ``how="characters"`` does it the book's way.

    Example:
        >>> [t.tolist() for t in split_token_ids(torch.arange(10), 0.2)]
        [[0, 1, 2, 3, 4, 5, 6, 7], [8, 9]]
    """
    cut, _ = split_sizes(int(ids.numel()), val_ratio)
    return ids[:cut], ids[cut:]


def split_corpus(text: str, tokenizer: Any, val_ratio: float, how: str = "tokens") -> TokenSplit:
    """A corpus text as training and validation ids, cut by ``how``:

    - ``"tokens"`` (the lab's default): tokenize the whole text, hold out the last ``val_ratio`` of the ids;
    - ``"characters"`` (the book's §5.1): cut the text at ``1 - val_ratio`` of its characters
      (:func:`core.book.split_text`) and tokenize the two halves apart, so a word at the cut may split in two.

    ``<|endoftext|>`` is allowed as its special id in both.

    Example:
        >>> from core.tokenizers import get_tokenizer
        >>> split_corpus("a b c d e f g h i j", get_tokenizer("gpt2"), 0.2, "characters").sizes
        (8, 2)
    """
    if how not in SPLITS:
        raise LabError(f"split must be one of {', '.join(SPLITS)}, got {how!r}; 'characters' is the book's.")

    def encode(part: str) -> torch.Tensor:
        return torch.tensor(tokenizer.encode(part, allowed_special={ENDOFTEXT}), dtype=torch.long)

    if how == "tokens":
        return TokenSplit(*split_token_ids(encode(text), val_ratio), how="tokens")
    cut = int((1.0 - val_ratio) * len(text))
    return TokenSplit(encode(text[:cut]), encode(text[cut:]), how="characters")


def train_val_ids(token_ids: Any, settings: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """What a run trains and validates on: a :class:`TokenSplit` as it is (cut the way ``settings.split``
    says), or plain ids split by tokens."""
    if isinstance(token_ids, TokenSplit):
        if token_ids.how != settings.split:
            raise LabError(f"The corpus was split by {token_ids.how} but the settings say split={settings.split!r}; "
                           "split it with split_corpus(text, tokenizer, val_ratio, settings.split).")
        return as_token_ids(token_ids.train), as_token_ids(token_ids.val)
    if settings.split != "tokens":
        raise LabError("split='characters' cuts the text, not its ids: pass "
                       "core.train_data.split_corpus(text, tokenizer, val_ratio, 'characters') as the token ids.")
    return split_token_ids(as_token_ids(token_ids), settings.val_ratio)


def batch_indices(step_index: int, n_windows: int, batch_size: int, seed: int) -> torch.Tensor:
    """Window indices of the batch at 0-based ``step_index``, a pure function of its arguments.

    Each epoch visits the windows in the order of ``torch.randperm`` drawn from a generator seeded with
    ``(seed, epoch)``; the windows left over after the last full batch of an epoch are skipped (drop_last).

    Example:
        >>> batch_indices(0, 10, 4, seed=1).shape
        torch.Size([4])
    """
    per_epoch = n_windows // batch_size
    epoch, i = divmod(step_index, per_epoch)
    gen = torch.Generator().manual_seed(_epoch_seed(seed, epoch))
    return torch.randperm(n_windows, generator=gen)[i * batch_size : (i + 1) * batch_size]


def _epoch_seed(seed: int, epoch: int) -> int:
    # Mix the two numbers so (seed, epoch) and (seed + 1, epoch - 1) give unrelated permutations.
    digest = hashlib.sha256(f"{seed}/{epoch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def calc_loss_batch(
    input_batch: torch.Tensor, target_batch: torch.Tensor, model: torch.nn.Module, device: torch.device | str
) -> torch.Tensor:
    """Mean next-token cross-entropy of one batch (the book's ``calc_loss_batch``).

    Args:
        input_batch, target_batch: (B, L) token ids; targets are the inputs shifted by one.
        model: the GPT (or its DDP wrapper).
        device: where the model lives.

    The project's GPT is scored by :func:`core.fused_head.next_token_loss` (the head and the cross-entropy a block
    of rows at a time, same numbers); any other model, the book's own included, from its full logits.
    """
    input_batch, target_batch = input_batch.to(device), target_batch.to(device)
    return next_token_loss(model, input_batch, target_batch)


def calc_loss_loader(data_loader: Any, model: torch.nn.Module, device: torch.device | str | None = None,
                     num_batches: int | None = None) -> float:
    """The book's ``calc_loss_loader``: the mean :func:`calc_loss_batch` over the first ``num_batches`` batches
    of ``data_loader`` (all of them by default; never more than it has); NaN for an empty loader.

    The trainer evaluates the same way on its window tensors (:func:`calc_loss_windows`), without a loader.
    """
    device = device if device is not None else next(model.parameters()).device
    return mean_batch_loss(data_loader, num_batches, lambda x, y: calc_loss_batch(x, y, model, device))


def mean_batch_loss(data_loader: Any, num_batches: int | None, batch_loss: Any) -> float:
    """The mean of ``batch_loss(input_batch, target_batch)`` over the first ``num_batches`` batches (all by
    default, never more than the loader has), without gradients; NaN for an empty loader."""
    n = len(data_loader) if num_batches is None else min(int(num_batches), len(data_loader))
    if n == 0:
        return float("nan")
    total = 0.0
    with torch.no_grad():
        for i, (input_batch, target_batch) in enumerate(data_loader):
            if i >= n:
                break
            total += float(batch_loss(input_batch, target_batch))
    return total / n


def calc_loss_windows(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    batch_size: int,
    max_batches: int | None = None,
    device: torch.device | str | None = None,
) -> float:
    """Average loss over the batches of (inputs, targets), in order (:func:`calc_loss_loader` on window tensors).

    Args:
        model: the GPT, evaluated as is (call ``model.eval()`` first to switch dropout off).
        inputs, targets: (N, L) windows.
        batch_size: windows per batch; the last batch may be smaller (no drop_last for evaluation).
        max_batches: use only the first this many batches (``None`` = all).
        device: defaults to the model's device.

    Returns:
        The mean of the per-batch losses, or NaN if there are no windows.
    """
    total, count = _loss_sum(model, inputs, targets, batch_size, max_batches, device, 0, 1)
    return total / count if count else float("nan")


def _loss_sum(model, inputs, targets, batch_size, max_batches, device, rank, world) -> tuple[float, int]:
    """Sum and number of the batch losses this rank computes (batches rank, rank + world, …)."""
    device = device if device is not None else next(model.parameters()).device
    n_batches = math.ceil(inputs.shape[0] / batch_size)
    if max_batches is not None:
        n_batches = min(n_batches, max_batches)
    total, count = 0.0, 0
    with torch.no_grad():
        for b in range(rank, n_batches, world):
            sl = slice(b * batch_size, (b + 1) * batch_size)
            total += calc_loss_batch(inputs[sl], targets[sl], model, device).item()
            count += 1
    return total, count


