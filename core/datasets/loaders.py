"""Load registry datasets as plain Python data, and split them the way the book does.

- corpora → ``str``;
- classification sets → ``pandas.DataFrame`` with the columns ``text`` and ``label`` (strings);
- instruction sets → ``list[dict]`` with ``instruction``, ``input`` and ``output`` (strings).

Downloaded files are re-verified (checksum) every time they are loaded; see :func:`verify_cached`.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from core.datasets.fetch import verify_cached
from core.datasets.registry import CORPUS_DIR, DATASETS, DatasetInfo, Kind, get_info
from core.datasets.uploads import parse_instruction_upload, parse_text_upload
from core.errors import LabError, shown


def _info_of_kind(name: str, kind: Kind) -> DatasetInfo:
    info = get_info(name)
    if info.kind != kind:
        names = ", ".join(sorted(n for n, i in DATASETS.items() if i.kind == kind))
        raise LabError(f"{shown(name)} is a {info.kind} dataset, not a {kind} one; choose one of {names}.")
    return info


def load_corpus(name_or_path: str | os.PathLike) -> str:
    """A text corpus: a registry name (``"builtin-corpus"``, ``"the-verdict"``) or the path of a UTF-8 .txt file.

    The built-in corpus joins its files (sorted by name) with one blank line between them.

    Example:
        >>> len(load_corpus("the-verdict"))  # doctest: +SKIP
        20479
    """
    if not _is_text_path(name_or_path):
        raise LabError(
            f"load_corpus needs a corpus name or the path of a text file, got a {type(name_or_path).__name__}; "
            "pass a string such as 'the-verdict' or 'notes/my-corpus.txt'."
        )
    if isinstance(name_or_path, str) and name_or_path in DATASETS:
        info = _info_of_kind(name_or_path, "corpus")
        if info.source == "builtin":
            files = sorted(CORPUS_DIR.glob("*.txt"))
            if not files:
                raise LabError(f"The built-in corpus is missing from {CORPUS_DIR}; reinstall the project.")
            return "\n\n".join(f.read_bytes().decode("utf-8").strip() for f in files)
        # Bytes → str without newline translation, so the text is exactly what the book reads (20,479 chars).
        return verify_cached(name_or_path).read_bytes().decode("utf-8")
    try:  # expanduser: RuntimeError for an unknown ~user; stat: OSError for a name too long, ValueError for NUL
        path = Path(name_or_path).expanduser()
        is_file = path.is_file()
    except (OSError, RuntimeError, ValueError):
        is_file = False
    if not is_file:
        names = ", ".join(sorted(n for n, i in DATASETS.items() if i.kind == "corpus"))
        raise LabError(f"{shown(os.fspath(name_or_path))} is neither a corpus name ({names}) nor an existing text "
                       "file; check the spelling or the path.")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise LabError(f"Could not read {path} ({err.strerror or err}); check that the file is readable.") from None
    return parse_text_upload(data, path.name, max_bytes=None)


def _is_text_path(value: object) -> bool:
    """A ``str`` or a path-like object whose path is text (``bytes`` paths are refused, as are numbers, None …)."""
    if isinstance(value, str):
        return True
    if not isinstance(value, os.PathLike):
        return False
    try:
        return isinstance(os.fspath(value), str)
    except TypeError:  # a __fspath__ that returns something else
        return False


def load_classification(name: str) -> pd.DataFrame:
    """A labelled message set as a DataFrame with string columns ``text`` and ``label``.

    ``"sms-spam"`` is read exactly as the book reads it (``sep="\\t", header=None``, pandas' default quoting),
    which merges a few lines at stray quote characters: 5,572 rows, 4,825 ham and 747 spam. The built-in file
    is read with quoting off, so every line is one message.
    """
    info = _info_of_kind(name, "classification")
    path = verify_cached(name)
    if info.source == "builtin":
        df = pd.read_csv(path, sep="\t", header=None, names=["label", "text"], dtype=str,
                         quoting=csv.QUOTE_NONE, keep_default_na=False)
    else:
        df = pd.read_csv(path, sep="\t", header=None, names=["label", "text"], dtype=str)
    return df[["text", "label"]].reset_index(drop=True)


def _check_frame(df: pd.DataFrame) -> None:
    if not isinstance(df, pd.DataFrame) or not {"text", "label"} <= set(df.columns):
        raise LabError("Expected a table with the columns 'text' and 'label'; load it with load_classification "
                       "or parse_table_upload.")


def balance(df: pd.DataFrame, seed: int = 123) -> pd.DataFrame:
    """Undersample every label to the size of the rarest one (the book's ``create_balanced_dataset``).

    Labels are taken in sorted order and the larger ones sampled with ``random_state=seed``; for ham/spam this
    is exactly the book's ``pd.concat([ham.sample(n_spam, random_state=123), spam])`` → 747 + 747 rows.
    """
    _check_frame(df)
    counts = df["label"].value_counts()
    if len(counts) < 2:
        raise LabError("Balancing needs at least two different labels; check the label column.")
    n = int(counts.min())
    parts = []
    for label in sorted(counts.index):
        rows = df[df["label"] == label]
        parts.append(rows if len(rows) == n else rows.sample(n, random_state=seed))
    return pd.concat(parts)


def _check_fractions(*fracs: float) -> None:
    if any(not 0 <= f <= 1 for f in fracs) or sum(fracs) > 1 or fracs[0] == 0:
        raise LabError(f"Split fractions {fracs} must lie between 0 and 1, add up to at most 1 and give the "
                       "training set a share; e.g. 0.7 and 0.1.")


def split(df: pd.DataFrame, train_frac: float = 0.7, val_frac: float = 0.1,
          seed: int = 123) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Shuffle, then cut into train / validation / test (the book's ``random_split``; test gets the rest).

    The book shuffles with ``df.sample(frac=1, random_state=123)`` and cuts at ``int(n * 0.7)`` and
    ``int(n * 0.1)`` more: the balanced SMS set (1,494 rows) becomes 1,045 / 149 / 300.
    """
    _check_frame(df)
    _check_fractions(train_frac, val_frac)
    shuffled = df.sample(frac=1, random_state=seed).reset_index(drop=True)
    train_end = int(len(shuffled) * train_frac)
    val_end = train_end + int(len(shuffled) * val_frac)
    parts = shuffled.iloc[:train_end], shuffled.iloc[train_end:val_end], shuffled.iloc[val_end:]
    return tuple(p.reset_index(drop=True) for p in parts)  # type: ignore[return-value]


def label_mapping(labels: pd.DataFrame | Sequence[str]) -> dict[str, int]:
    """Map each distinct label to 0…n-1 in sorted order ("ham" → 0, "spam" → 1, as in the book).

    Labels that are all whole numbers sort numerically ("2" before "10").
    """
    values = labels["label"] if isinstance(labels, pd.DataFrame) else labels
    distinct = sorted({str(v) for v in values})
    if distinct and all(re.fullmatch(r"-?\d+", v) for v in distinct):
        distinct.sort(key=int)
    return {label: i for i, label in enumerate(distinct)}


def load_instructions(name: str) -> list[dict[str, str]]:
    """Instruction records ``{"instruction", "input", "output"}`` (``input`` may be ``""``)."""
    _info_of_kind(name, "instruction")
    path = verify_cached(name)
    records, _ = parse_instruction_upload(path.read_bytes(), path.name, max_bytes=None)
    return records


def split_instructions(data: Sequence[dict], train_frac: float = 0.85,
                       test_frac: float = 0.1) -> tuple[list[dict], list[dict], list[dict]]:
    """Cut records in order into (train, val, test) as the book does: train first, then test, val the rest.

    With 1,100 records: ``int(1100 * 0.85)`` = 935 train, ``int(1100 * 0.1)`` = 110 test, 55 validation.
    """
    _check_fractions(train_frac, test_frac)
    data = list(data)
    train_n, test_n = int(len(data) * train_frac), int(len(data) * test_frac)
    return data[:train_n], data[train_n + test_n:], data[train_n:train_n + test_n]
