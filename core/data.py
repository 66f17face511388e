"""Sliding-window training examples for next-token prediction (the book's section 2.6).

A language model learns to predict the next token at every position, so one training example is a window of
``max_length`` token ids (the input) paired with the same window moved one token to the right (the target).
The window then slides ``stride`` tokens along the text to make the next example.

Windows are built in one vectorised step with ``Tensor.unfold`` (no Python loop per window); inputs and
targets are strided *views* of the token ids, so even ``stride=1`` over a million tokens costs no memory.

Shape legend: N windows, L ``max_length``, B ``batch_size``.

Example:
    >>> inputs, targets = sliding_windows(list(range(10)), max_length=4, stride=4)
    >>> inputs.tolist(), targets.tolist()
    ([[0, 1, 2, 3], [4, 5, 6, 7]], [[1, 2, 3, 4], [5, 6, 7, 8]])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from core.errors import LabError, check_int

TextOrIds = str | Sequence[int] | torch.Tensor


def _check_sizes(max_length: Any, stride: Any) -> tuple[int, int]:
    length = check_int(max_length, "max_length", low=1, fix="it is the number of tokens the model sees at once")
    step = check_int(stride, "stride", low=1, fix="it is how far each window moves forward, e.g. 1 or 128")
    return length, step


def window_count(n_tokens: int, max_length: int, stride: int) -> int:
    """Number of training windows a text of ``n_tokens`` gives.

    Windows start at 0, stride, 2·stride, … while ``start + max_length + 1 <= n_tokens`` (the target needs one
    token more than the input). This equals ``len(range(0, n_tokens - max_length, stride))``, the book's loop.

    Example:
        >>> window_count(10, max_length=4, stride=4)
        2
    """
    n = check_int(n_tokens, "n_tokens", low=0, fix="count the tokens of the text first")
    length, step = _check_sizes(max_length, stride)
    return max(0, (n - length - 1) // step + 1)


def as_token_ids(ids: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """Check token ids and return them as a 1-D int64 tensor (no copy when they already are one).

    Raises:
        LabError: if ``ids`` is not a flat sequence of non-negative whole numbers.

    Example:
        >>> as_token_ids((40, 367)).dtype
        torch.int64
    """
    if isinstance(ids, str | bytes):
        raise LabError("Token ids must be whole numbers, not text; encode the text with a tokenizer first.")
    if isinstance(ids, torch.Tensor):
        tensor = ids
    else:
        try:
            tensor = torch.as_tensor(ids)
        except (TypeError, ValueError, RuntimeError):
            raise LabError(
                f"Token ids must be a list of whole numbers, got {type(ids).__name__}; "
                "pass a list like [40, 367, 2885]."
            ) from None
    if tensor.ndim != 1:
        raise LabError(
            f"Token ids must be one flat sequence, got shape {tuple(tensor.shape)}; "
            "flatten them or pass one text at a time."
        )
    if tensor.numel() == 0:
        return tensor.to(torch.int64)  # an empty list becomes a float tensor; its dtype means nothing
    if tensor.dtype == torch.bool or tensor.is_floating_point() or tensor.is_complex():
        raise LabError(f"Token ids must be whole numbers, got {tensor.dtype}; convert them to integers.")
    if bool((tensor < 0).any()):
        raise LabError("Token ids must not be negative; each id is a row in the tokenizer's vocabulary.")
    return tensor.to(torch.int64)


def _resolve_tokenizer(tokenizer: Any) -> Any:
    if tokenizer is None or isinstance(tokenizer, str):
        from core.tokenizers import get_tokenizer  # lazy: loading BPE ranks is only needed when text arrives

        return get_tokenizer(tokenizer or "gpt2")
    if not callable(getattr(tokenizer, "encode", None)):
        raise LabError(
            f"The tokenizer must have an encode(text) method, got {type(tokenizer).__name__}; "
            "pass a name like 'gpt2' instead."
        )
    return tokenizer


def to_token_ids(text_or_ids: TextOrIds, tokenizer: Any = None) -> torch.Tensor:
    """Encode text (or check ready-made ids) into a 1-D int64 tensor of token ids.

    Args:
        text_or_ids: a text, a list of ids or a 1-D integer tensor.
        tokenizer: an object with ``.encode``, a tokenizer name, or ``None`` for GPT-2; used only for text.

    Returns:
        Token ids, shape (n_tokens,). ``<|endoftext|>`` in the text becomes the special token, as in the book.

    Example:
        >>> to_token_ids([40, 367, 2885]).tolist()
        [40, 367, 2885]
    """
    if not isinstance(text_or_ids, str):
        return as_token_ids(text_or_ids)
    if not text_or_ids.strip():
        raise LabError("The text is empty; paste or choose some text to build training windows from.")
    tok = _resolve_tokenizer(tokenizer)
    try:
        ids = tok.encode(text_or_ids, allowed_special={"<|endoftext|>"})
    except TypeError:  # simple tokenizers have no special-token switch; they treat <|endoftext|> themselves
        ids = tok.encode(text_or_ids)
    return as_token_ids(ids)


def sliding_windows(
    ids: torch.Tensor | Sequence[int], max_length: int, stride: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut token ids into overlapping (input, target) windows, the target shifted one token right.

    Args:
        ids: token ids, shape (n_tokens,).
        max_length: tokens per input window (the context length L).
        stride: how far each window moves; ``stride == max_length`` gives windows that do not overlap.

    Returns:
        ``(inputs, targets)``, both (N, L) int64 with ``targets[:, :-1] == inputs[:, 1:]``. Both are views
        into ``ids`` (no copy), so treat them as read-only: call ``.clone()`` before editing one in place.

    Example:
        >>> x, y = sliding_windows([1, 2, 3, 4, 5], max_length=3, stride=1)
        >>> x.tolist(), y.tolist()
        ([[1, 2, 3], [2, 3, 4]], [[2, 3, 4], [3, 4, 5]])
    """
    length, step = _check_sizes(max_length, stride)
    tokens = as_token_ids(ids)
    if window_count(tokens.numel(), length, step) == 0:
        empty = tokens.new_empty((0, length))
        return empty, empty.clone()
    # One window of L + 1 tokens holds both the input (first L) and the target (last L).
    windows = tokens.unfold(0, length + 1, step)  # (N, L + 1): strides only, the data is not copied
    return windows[:, :-1], windows[:, 1:]  # (N, L), (N, L)


def _not_enough_tokens(n_tokens: int, length: int, source: str) -> LabError:
    plural = "" if n_tokens == 1 else "s"
    return LabError(
        f"The {source} has {n_tokens} token{plural} but one training window needs "
        f"max_length + 1 = {length + 1} tokens; use a longer text or a smaller context length."
    )


class GPTDataset(Dataset):
    """All sliding windows of one text, as a PyTorch dataset of ``(input_ids, target_ids)`` pairs.

    The book's ``GPTDatasetV1(txt, tokenizer, max_length, stride)``, vectorised.

    Args:
        text_or_ids: a text, a list of ids or a 1-D integer tensor.
        tokenizer: an object with ``.encode``, a tokenizer name, or ``None`` for GPT-2; used only for text.
        max_length: tokens per input window (L).
        stride: how far each window moves.

    Example:
        >>> ds = GPTDataset(list(range(10)), max_length=4, stride=4)
        >>> len(ds), ds[1][0].tolist(), ds[1][1].tolist()
        (2, [4, 5, 6, 7], [5, 6, 7, 8])
    """

    def __init__(
        self, text_or_ids: TextOrIds, tokenizer: Any = None, max_length: int = 256, stride: int = 128
    ) -> None:
        length, step = _check_sizes(max_length, stride)
        self.token_ids = to_token_ids(text_or_ids, tokenizer)  # (n_tokens,)
        if window_count(self.token_ids.numel(), length, step) == 0:
            source = "text" if isinstance(text_or_ids, str) else "input"
            raise _not_enough_tokens(self.token_ids.numel(), length, source)
        self.max_length, self.stride = length, step
        self.input_ids, self.target_ids = sliding_windows(self.token_ids, length, step)  # (N, L) each

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.input_ids[idx], self.target_ids[idx]  # (L,), (L,)


def create_dataloader(
    text_or_ids: TextOrIds,
    tokenizer: Any = None,
    batch_size: int = 4,
    max_length: int = 256,
    stride: int = 128,
    shuffle: bool = True,
    drop_last: bool = True,
    num_workers: int = 0,
    seed: int | None = None,
) -> DataLoader:
    """A DataLoader of (inputs, targets) batches, each (B, L), as the book's ``create_dataloader_v1``.

    Args:
        text_or_ids: a text, a list of ids or a 1-D integer tensor.
        tokenizer: an object with ``.encode``, a tokenizer name, or ``None`` for GPT-2; used only for text.
        batch_size: windows per batch (B).
        max_length: tokens per window (L).
        stride: how far each window moves.
        shuffle: visit the windows in a random order each epoch.
        drop_last: skip a last, smaller batch (keeps every training step the same size).
        num_workers: background processes that assemble batches; 0 builds them in this process.
        seed: makes the shuffled order reproducible (a private ``torch.Generator``; global RNG untouched).

    Example:
        >>> loader = create_dataloader(list(range(100)), batch_size=2, max_length=4, stride=4, shuffle=False)
        >>> x, y = next(iter(loader))
        >>> x.tolist(), y.tolist()
        ([[0, 1, 2, 3], [4, 5, 6, 7]], [[1, 2, 3, 4], [5, 6, 7, 8]])
    """
    batch = check_int(batch_size, "batch_size", low=1, fix="it is how many windows go into one training step")
    workers = check_int(num_workers, "num_workers", low=0, fix="use 0 to build batches in this process")
    if seed is not None:
        seed = check_int(seed, "seed", low=0, fix="any whole number such as 123 gives a reproducible order")
    dataset = GPTDataset(text_or_ids, tokenizer, max_length, stride)
    if drop_last and len(dataset) < batch:
        raise LabError(
            f"The text gives only {len(dataset)} training window{'' if len(dataset) == 1 else 's'} but "
            f"batch_size is {batch}, so drop_last=True would yield no batches at all; lower batch_size to "
            f"{len(dataset)} or set drop_last=False."
        )
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return DataLoader(
        dataset,
        batch_size=batch,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=workers,
        generator=generator,
    )


def create_dataloader_v1(
    txt: TextOrIds, batch_size: int = 4, max_length: int = 256, stride: int = 128, shuffle: bool = True,
    drop_last: bool = True, num_workers: int = 0, *, tokenizer: Any = None, seed: int | None = None,
) -> DataLoader:
    """The book's name and argument order for :func:`create_dataloader` (GPT-2 tokenizer unless given).

    The book's batch order: call ``torch.manual_seed(123)`` and leave ``seed`` out, so the shuffle draws from
    torch's global generator as the book's loader does. With ``seed`` the order comes from a private generator
    (the same every time, whatever ran before), and the lab's trainer uses its own per-epoch order
    (:func:`core.train_data.batch_indices`): both differ from the book's.
    """
    return create_dataloader(
        txt, tokenizer, batch_size, max_length, stride, shuffle, drop_last, num_workers, seed
    )


def describe_windows(n_tokens: int, max_length: int, stride: int) -> dict[str, int]:
    """Plain numbers about how windows tile a text, for the sampling page.

    Returns:
        ``n_windows``; ``window_tokens`` (L + 1: the input plus one extra target token); ``overlap`` (input
        tokens two neighbouring windows share, ``max(0, L - stride)``); ``gap`` (tokens between two windows
        that are neither input nor target, ``max(0, stride - L - 1)``); ``tokens_covered`` (distinct tokens in
        some window, as input or target); ``tokens_unused_at_end`` (tokens after the last window). With N > 0,
        ``tokens_covered + (N - 1) * gap + tokens_unused_at_end == n_tokens``.

    Example:
        >>> describe_windows(10, max_length=4, stride=4)["tokens_unused_at_end"]
        1
    """
    n = window_count(n_tokens, max_length, stride)
    length, step = int(max_length), int(stride)
    gap = max(0, step - length - 1)
    # Windows sit stride apart and each spans L + 1 tokens: neighbours touch or overlap unless there is a gap.
    span_end = (n - 1) * step + length + 1 if n else 0
    covered = span_end - (n - 1) * gap if n else 0
    return {
        "n_windows": n,
        "window_tokens": length + 1,
        "overlap": max(0, length - step),
        "gap": gap,
        "tokens_covered": covered,
        "tokens_unused_at_end": int(n_tokens) - span_end,
    }


GPTDatasetV1 = GPTDataset
