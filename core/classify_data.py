"""Classification data, the book's section 6.3: labelled texts as padded token ids and their loaders.

Labels may be ints 0…K-1 or class names; names sort so that ``ham`` = 0 and ``spam`` = 1 as in the book.
Shape legend: B batch, T tokens.

Example:
    >>> import pandas as pd
    >>> from core.tokenizers import get_tokenizer
    >>> data = pd.DataFrame({"text": ["Win a prize now", "See you at lunch"], "label": ["spam", "ham"]})
    >>> ds = ClassificationDataset(data, get_tokenizer("gpt2"))
    >>> ds.label_names, ds.labels, ds.max_length
    (['ham', 'spam'], [1, 0], 4)
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any, Literal

import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from core.errors import LabError, check_choice, check_int

PAD_TOKEN_ID = 50256  # GPT-2's <|endoftext|>, which the book uses as padding
Padding = Literal["longest-in-dataset", "per-batch"]


def encode_text(tokenizer: Any, text: str) -> list[int]:
    """Encode, allowing ``<|endoftext|>`` where the tokenizer supports it (a literal one never crashes)."""
    try:
        return list(tokenizer.encode(text, allowed_special={"<|endoftext|>"}))
    except TypeError:  # tokenizers without special-token options
        return list(tokenizer.encode(text))


# --------------------------------------------------------------------------------------------------- dataset
class ClassificationDataset(Dataset):
    """Labelled texts as padded token ids (the book's ``SpamDataset``).

    Args:
        data: a DataFrame with columns ``text`` and ``label`` (ints 0…K-1 or class names).
        tokenizer: anything with ``encode(text)``; GPT-2's from ``core.tokenizers.get_tokenizer("gpt2")``.
        max_length: tokens per example; default the longest encoded text. Never more than ``context_length``:
            longer texts are truncated and counted in ``n_truncated`` (see ``notes``).
        pad_token_id: padding id (the book: 50256, ``<|endoftext|>``).
        context_length: the model's context length, the hard cap for ``max_length``.
        padding: ``"longest-in-dataset"`` pads every example to ``max_length`` (the book);
            ``"per-batch"`` pads only to the longest example in each batch (use :attr:`collate_fn`).
        labels: class names in index order; default the sorted distinct labels (``ham``=0, ``spam``=1 as in
            the book). Pass the training set's ``label_names`` to the validation and test sets.

    Each item is ``(input_ids (T,), label (), length ())`` where ``length`` counts the real (unpadded) tokens.
    """

    def __init__(
        self,
        data: pd.DataFrame,
        tokenizer: Any,
        max_length: int | None = None,
        pad_token_id: int = PAD_TOKEN_ID,
        context_length: int = 1024,
        padding: Padding = "longest-in-dataset",
        labels: Sequence[str] | None = None,
    ) -> None:
        check_choice(padding, "padding", ("longest-in-dataset", "per-batch"))
        self.texts = _check_texts(data)
        self.label_names, self.labels = _map_labels(data["label"].tolist(), labels)
        self.tokenizer, self.pad_token_id, self.padding = tokenizer, pad_token_id, padding
        self.notes: list[str] = []
        encoded = [encode_text(tokenizer, t) for t in self.texts]
        for i, ids in enumerate(encoded):
            if not ids:
                raise LabError(f"Row {i} encodes to no tokens; remove it or give it some text.")
        longest = max(len(ids) for ids in encoded)
        if max_length is None:
            max_length = longest
        else:
            max_length = check_int(max_length, "max_length", low=1)
        if max_length > context_length:
            self.notes.append(
                f"max_length {max_length} is more than the model's context length {context_length}; "
                f"using {context_length}."
            )
            max_length = context_length
        self.max_length = max_length
        self.n_truncated = sum(len(ids) > max_length for ids in encoded)
        if self.n_truncated:
            self.notes.append(f"{self.n_truncated} of {len(encoded)} texts were longer than {max_length} "
                              "tokens and were truncated.")
        self.encoded = [ids[:max_length] for ids in encoded]
        self.lengths = [len(ids) for ids in self.encoded]

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ids = self.encoded[i]
        if self.padding == "longest-in-dataset":
            ids = ids + [self.pad_token_id] * (self.max_length - len(ids))
        return torch.tensor(ids), torch.tensor(self.labels[i]), torch.tensor(self.lengths[i])

    @property
    def collate_fn(self) -> Callable[[list], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """A collate function that pads each batch to its longest example with ``pad_token_id``."""
        pad = self.pad_token_id
        return lambda batch: classification_collate(batch, pad)


def classification_collate(batch: list, pad_token_id: int = PAD_TOKEN_ID) -> tuple[torch.Tensor, ...]:
    """Stack ``(ids, label, length)`` items into ``(input_ids (B, T), labels (B,), lengths (B,))``.

    Ids are padded to the batch's longest with ``pad_token_id`` (dynamic padding: fewer wasted positions
    than the book's padding to the longest text of the whole dataset).
    """
    width = max(len(ids) for ids, _, _ in batch)
    ids = torch.full((len(batch), width), pad_token_id, dtype=torch.long)
    for row, (seq, _, _) in enumerate(batch):
        ids[row, : len(seq)] = seq
    return ids, torch.stack([b[1] for b in batch]), torch.stack([b[2] for b in batch])


def make_loader(
    dataset: ClassificationDataset, batch_size: int = 8, shuffle: bool = False, drop_last: bool = False,
    seed: int | None = 123,
) -> DataLoader:
    """A DataLoader with the dataset's collate function (book: batch 8, shuffle + drop_last to train)."""
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                      collate_fn=dataset.collate_fn, generator=gen, num_workers=0)


def _check_texts(data: pd.DataFrame) -> list[str]:
    if not isinstance(data, pd.DataFrame) or not {"text", "label"} <= set(data.columns):
        raise LabError("Classification data must be a table with the columns 'text' and 'label'.")
    if len(data) == 0:
        raise LabError("The classification data has no rows; load or upload some labelled texts.")
    texts = data["text"].tolist()
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            raise LabError(f"Row {i} has an empty text; remove it or fill it in.")
    return texts


def _map_labels(raw: list, names: Sequence[str] | None) -> tuple[list[str], list[int]]:
    distinct = sorted({str(v) if not _is_int(v) else int(v) for v in raw}, key=str)
    if names is None:
        if len(distinct) < 2:
            raise LabError(f"The data has only one label ({distinct[0]!r}); a classifier needs examples of "
                           "at least two classes.")
        if all(_is_int(v) for v in distinct):
            n = max(distinct) + 1
            names = [str(k) for k in range(n)]
        else:
            names = [str(v) for v in distinct]
    names = [str(n) for n in names]
    index = {n: k for k, n in enumerate(names)}
    out = []
    for i, v in enumerate(raw):
        if _is_int(v) and 0 <= int(v) < len(names):
            out.append(int(v))
        elif str(v) in index:
            out.append(index[str(v)])
        else:
            raise LabError(f"Row {i} has the label {v!r}, which is not one of {names}; fix it or the labels.")
    return names, out


def _is_int(v: Any) -> bool:
    """True for Python and NumPy integers (pandas gives the latter), False for bools, floats and strings."""
    if isinstance(v, bool):
        return False
    try:
        operator.index(v)
    except TypeError:
        return False
    return True
