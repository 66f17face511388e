"""Validate files a user uploads (text, csv/tsv tables, json/jsonl instructions) into plain Python data.

Every check fails with a :class:`LabError` whose message says what is wrong and what to do, so the UI can show
it as is. Nothing in an upload is ever executed or evaluated: tables are read with the ``csv`` module and kept
as strings (a cell such as ``=SUM(A1:A9)`` stays that literal text), JSON with ``json.loads``.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from core.datasets.upload_zip import is_zip, unzip_upload
from core.errors import LabError, parse_json_safely, shown

MAX_TEXT_BYTES = 5 * 1024 * 1024
MAX_TABLE_BYTES = 20 * 1024 * 1024
MAX_TABLE_ROWS = 100_000
MAX_INSTRUCTION_BYTES = 20 * 1024 * 1024
MAX_RECORDS = 100_000
MAX_LABELS = 20
MAX_COLUMNS = 50  # a text and a label column, plus room for a spreadsheet's ids, dates and notes

TEXT_NAMES = ("text", "message", "sms", "sentence", "review", "content", "body", "comment", "tweet")
LABEL_NAMES = ("label", "labels", "class", "category", "target", "sentiment", "y")
_MISSING = {"nan", "none", "null", "n/a", "na"}  # what spreadsheets and pandas write for an empty cell
_MAGIC = {b"%PDF": "a PDF document", b"PK\x03\x04": "a zip archive or Office document",
          b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image"}


def _size(n: int) -> str:
    """1,000 bytes / 2.5 KB / 5 MB."""
    for unit, scale in (("MB", 2**20), ("KB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n:,} bytes"


def _decode(data: bytes, filename: str, max_bytes: int | None) -> str:
    """Bytes → text: size cap, binary sniffing, UTF-8 (a BOM is allowed), line endings normalised to \\n."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise LabError(f"Expected the bytes of {filename}, got a {type(data).__name__}; pass the file's content.")
    data = bytes(data)
    if max_bytes is not None and len(data) > max_bytes:
        raise LabError(f"{filename} is {_size(len(data))}, more than the {_size(max_bytes)} limit; upload a smaller "
                       "file or a part of it.")
    if not data:
        raise LabError(f"{filename} is empty; upload a file that contains some text.")
    if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        raise LabError(f"{filename} is saved as UTF-16; open it in a text editor and save it as UTF-8.")
    for magic, what in _MAGIC.items():
        if data.startswith(magic):
            raise LabError(f"{filename} looks like {what}, not plain text; export or save it as a text file.")
    if b"\x00" in data:
        raise LabError(f"{filename} looks like a binary file (it contains NUL bytes); upload a plain text file.")
    bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        text = data[bom:].decode("utf-8")
    except UnicodeDecodeError as err:
        raise LabError(f"{filename} is not valid UTF-8 (the first bad byte is at offset {err.start + bom}); open "
                       "it in a text editor and save it as UTF-8.") from None
    if not text.strip():
        raise LabError(f"{filename} contains only blank space; upload a file that contains some text.")
    # Windows (\r\n) and old Mac (\r) line ends become \n, so the same text always gives the same tokens.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def parse_text_upload(data: bytes, filename: str, max_bytes: int | None = MAX_TEXT_BYTES) -> str:
    """An uploaded text file as a string.

    Args:
        data: the file's bytes; must be UTF-8 (a leading BOM is dropped).
        filename: used in error messages.
        max_bytes: size limit (``None``: no limit).

    Raises:
        LabError: too big, empty or blank, binary, UTF-16, or not valid UTF-8 (with the byte offset).
    """
    return _decode(data, filename, max_bytes)


# ------------------------------------------------------------------------------------------------- tables
def _delimiter(text: str, filename: str) -> str:
    """Tab for .tsv/.tab; otherwise the one of TAB , ; | that splits the first lines into the same number of cells
    (tab first on a tie: prose holds commas, not tabs), else whichever occurs most in the first line."""
    if Path(filename).suffix.lower() in (".tsv", ".tab"):
        return "\t"
    lines = [ln for ln in text[:200_000].split("\n")[:20] if ln.strip()]
    for d in ("\t", ",", ";", "|"):
        counts = {ln.count(d) for ln in lines}
        if len(counts) == 1 and counts != {0}:
            return d
    header = lines[0] if lines else ""
    counts = {d: header.count(d) for d in ("\t", ",", ";", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _read_rows(text: str, filename: str, delim: str, max_rows: int) -> list[tuple[int, list[str]]]:
    """``(first line number, cells)`` for every row, header included; the csv module handles quoted fields."""
    reader = csv.reader(io.StringIO(text), delimiter=delim)
    rows: list[tuple[int, list[str], int]] = []
    try:
        for cells in reader:
            if len(cells) > MAX_COLUMNS:  # refuse at the first such row: never build a 200,000-column table
                raise LabError(f"Line {reader.line_num} of {filename} has {len(cells):,} cells, more than the "
                               f"{MAX_COLUMNS} columns a table may have here; keep the text and label columns.")
            # A quoted cell may span lines: report where the row starts, not where the reader stopped.
            rows.append((rows[-1][2] + 1 if rows else 1, cells, reader.line_num))
            if len(rows) > max_rows + 1:
                raise LabError(f"{filename} has more than {max_rows:,} rows; upload a smaller sample of it.")
    except csv.Error as err:
        raise LabError(f"Line {reader.line_num} of {filename} could not be read ({err}); check its quote "
                       "characters or save the file again from your spreadsheet as CSV.") from None
    return [(start, cells) for start, cells, _ in rows]


def _headerless_pair(rows: list[tuple[int, list[str]]]) -> list[str] | None:
    """``["label", "text"]`` (in the file's order) for a two-column file without a header, like the UCI
    ``SMSSpamCollection`` the book reads (``ham<TAB>Go until jurong point…``); None when the first row is a header.

    The first row is data when its short cell repeats further down the same column (a label such as ``ham``),
    which a column name never does, and the other cell holds words.
    """
    if len(rows) < 3 or len(rows[0][1]) != 2:
        return None
    first = [c.strip() for c in rows[0][1]]
    later = [[c.strip() for c in cells] for _, cells in rows[1:200] if len(cells) == 2]
    for k in (0, 1):
        column = {cells[k] for cells in later}
        if first[k] and first[k] in column and len(column) <= MAX_LABELS and re.search(r"[^\W\d_]", first[1 - k]):
            return ["label", "text"] if k == 0 else ["text", "label"]
    return None


def _check_header(header: list[str], filename: str) -> list[str]:
    names = [h.strip() for h in header]
    counts = Counter(names)  # one pass: a repeated-name check per column would be quadratic
    for i, name in enumerate(names):
        if not name:
            raise LabError(f"Column {i + 1} of {filename} has no name in the first row; the first row must be "
                           "a header such as text,label.")
        if len(name) > 100 or counts[name] > 1:
            why = "repeats a name" if counts[name] > 1 else "has a very long cell"
            raise LabError(f"The first row of {filename} {why}, so it looks like data rather than column names; "
                           "add a header row such as text,label.")
    return names


def _has_words(values: pd.Series) -> bool:
    return bool(values.str.contains(r"[^\W\d_]", regex=True).any())  # at least one letter somewhere


def _pick_columns(df: pd.DataFrame, filename: str, text_col: str | None,
                  label_col: str | None) -> tuple[str, str, list[str]]:
    """Resolve (text, label) columns: given names, else header names we know, else content heuristics."""
    cols, guessed = list(df.columns), []
    for given in (text_col, label_col):
        if given is not None and given not in cols:
            listed = ", ".join(shown(c, limit=30).strip("'\"") for c in cols[:10]) + (" …" if len(cols) > 10 else "")
            raise LabError(f"{filename} has no column {shown(given)}; its columns are {listed}.")
    if text_col is not None and text_col == label_col:
        raise LabError(f"Column {shown(text_col)} cannot be both the text and the label; choose two different columns.")
    if len(cols) < 2:
        raise LabError(f"{filename} has only one column ({shown(cols[0])}); a classification table needs a text "
                       "column and a label column.")

    def named(known: tuple[str, ...], other: str | None) -> str | None:
        return next((c for c in cols if c.lower() in known and c != other), None)

    if text_col is None and (text_col := named(TEXT_NAMES, label_col)) is not None:
        guessed.append("text")
    if label_col is None and (label_col := named(LABEL_NAMES, text_col)) is not None:
        guessed.append("label")
    if text_col is None:  # the column with the longest strings on average, if it holds words at all
        wordy = [c for c in cols if c != label_col and _has_words(df[c])]
        if not wordy:
            raise LabError(f"{filename} has no text column (no column holds words); add one, e.g. named 'text'.")
        text_col = max(wordy, key=lambda c: df[c].str.len().mean())
        guessed.append("text")
    if not _has_words(df[text_col]):
        raise LabError(f"Column {shown(text_col)} of {filename} holds no words, so it cannot be the text column; "
                       "choose another.")
    if label_col is None:
        others = [c for c in cols if c != text_col]
        few = [c for c in others if 2 <= df[c].str.strip().replace("", None).nunique() <= MAX_LABELS]
        if few:
            label_col = few[0]
        elif len(others) == 1:
            label_col = others[0]  # the only candidate: its own checks below say what is wrong with it
        else:
            raise LabError(f"{filename} has no label column (none has 2 to {MAX_LABELS} distinct values); add "
                           "one named 'label', or choose it.")
        guessed.append("label")
    return text_col, label_col, guessed


def _same_number(label: str) -> str:
    """Whole-number labels in one spelling, so ``1``, ``01`` and ``+1`` are one class, not three."""
    return str(int(label)) if len(label) <= 18 and re.fullmatch(r"[+-]?\d+", label) else label


def _check_labels(labels: pd.Series, lines: list[int], filename: str, label_col: str) -> None:
    for value, line in zip(labels, lines):
        if value == "" or value.lower() in _MISSING:
            raise LabError(f"Line {line} of {filename} has text but no label ({shown(value or 'empty')} in "
                           f"{shown(label_col)}); fill in the label or delete the row.")
    distinct = sorted(set(labels))
    if len(distinct) < 2:
        raise LabError(f"Every row of {filename} has the label {shown(distinct[0])}; a classifier needs examples of "
                       "at least two labels.")
    numeric = [v for v in distinct if re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", v)]
    if numeric and len(numeric) < len(distinct):
        word = next(v for v in distinct if v not in numeric)
        raise LabError(f"Column {shown(label_col)} of {filename} mixes numbers and words (e.g. {shown(numeric[0])} and "
                       f"{shown(word)}); use one kind of label throughout.")
    decimal = [v for v in numeric if not re.fullmatch(r"[+-]?\d+", v)]
    if decimal:
        raise LabError(f"Column {shown(label_col)} of {filename} holds decimal numbers (e.g. {shown(decimal[0])}); "
                       "labels must be categories, so use names or whole numbers such as 0 and 1.")
    if len(distinct) > MAX_LABELS:
        raise LabError(f"Column {shown(label_col)} of {filename} has {len(distinct)} different labels, more than "
                       f"{MAX_LABELS}; check that it is really the label column.")


def table_columns(data: bytes, filename: str) -> list[str]:
    """The column names :func:`parse_table_upload` will see (for the column pickers), read from the first lines
    only: the header, or ``["label", "text"]`` for a header-less two-column file; ``[]`` when unreadable."""
    try:
        if is_zip(data):
            data, filename = unzip_upload(data, filename, MAX_TABLE_BYTES)
        head = bytes(data[:65536]).decode("utf-8-sig", errors="replace")
        head = "\n".join(head.split("\n")[:200])
        rows = _read_rows(head, filename, _delimiter(head, filename), 200)
    except LabError:
        return []
    if not rows:
        return []
    return _headerless_pair(rows) or [c.strip() for c in rows[0][1] if c.strip()]


def parse_table_upload(data: bytes, filename: str, text_col: str | None = None, label_col: str | None = None,
                       max_rows: int = MAX_TABLE_ROWS,
                       max_bytes: int | None = MAX_TABLE_BYTES) -> tuple[pd.DataFrame, dict[str, Any]]:
    """An uploaded CSV/TSV classification table as a DataFrame with string columns ``text`` and ``label``.

    A zip archive is opened first (:func:`core.datasets.upload_zip.unzip_upload`: the UCI archive's
    ``SMSSpamCollection``, or the archive's only data file). The first row must be a header, except in a
    two-column file whose first row is plainly data (the UCI
    ``SMSSpamCollection``: label, TAB, text, no header). The delimiter is a tab for .tsv, otherwise sniffed from
    the first line.
    Without ``text_col``/``label_col``, known header names (text, message… / label, class…) are used, else the
    text column is the one with the longest strings and the label column one with 2–20 distinct values. Rows
    with an empty text are dropped and counted. Cells are never evaluated: ``=1+1``, ``+44…``, ``-5``, ``@me``
    stay exactly that text.

    Returns:
        ``(df, info)``; ``info`` has ``rows``, ``dropped_empty``, ``text_col``, ``label_col``, ``guessed``
        (which of the two were guessed), ``delimiter`` and ``label_counts``.

    Raises:
        LabError: unreadable file, no header, no text or label column, a missing/decimal/mixed label, a single
            label, more than ``max_rows`` rows, or ragged rows.
    """
    if is_zip(data):  # e.g. the UCI smsspamcollection.zip, as the book downloads it
        data, filename = unzip_upload(data, filename, max_bytes)
    text = _decode(data, filename, max_bytes)
    delim = _delimiter(text, filename)
    rows = _read_rows(text, filename, delim, max_rows)
    headerless = _headerless_pair(rows)
    header = headerless or _check_header(rows[0][1], filename)
    body, lines, dropped = [], [], 0
    for line, cells in rows[0 if headerless else 1:]:
        if not any(c.strip() for c in cells):
            dropped += 1  # blank line or a row of empty cells
            continue
        # Extra cells are tolerated only when empty (spreadsheets often add a trailing delimiter).
        if len(cells) < len(header) or any(c.strip() for c in cells[len(header):]):
            raise LabError(f"Line {line} of {filename} has {len(cells)} cell(s) but the header has "
                           f"{len(header)}; put texts that contain the delimiter in double quotes.")
        body.append(cells[:len(header)])
        lines.append(line)
    df = pd.DataFrame(body, columns=header, dtype=str)
    if df.empty:
        raise LabError(f"{filename} has a header but no data rows; add some labelled examples.")
    text_col, label_col, guessed = _pick_columns(df, filename, text_col, label_col)
    keep = df[text_col].str.strip() != ""
    dropped += int((~keep).sum())
    out = pd.DataFrame({"text": df.loc[keep, text_col].str.strip(), "label": df.loc[keep, label_col].str.strip()})
    out = out.reset_index(drop=True)
    if out.empty:
        raise LabError(f"Every row of {filename} has an empty {shown(text_col)} column; fill in some texts.")
    out["label"] = out["label"].map(_same_number)
    _check_labels(out["label"], [ln for ln, k in zip(lines, keep) if k], filename, label_col)
    info = {"rows": len(out), "dropped_empty": dropped, "text_col": text_col, "label_col": label_col,
            "guessed": guessed, "delimiter": delim, "label_counts": out["label"].value_counts().to_dict()}
    return out, info


# ------------------------------------------------------------------------------------------ instructions
_JSON_FIX = "fix it in a text editor or export the file again"


def _kind(value: Any) -> str:
    """JSON's name for a value's type, as a learner would say it."""
    names = {bool: "true/false value", int: "number", float: "number", str: "string", list: "list",
             dict: "object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _check_record(rec: Any, where: str) -> dict[str, str]:
    if not isinstance(rec, dict):
        raise LabError(f"{where} is a {_kind(rec)}, not an object; each record must look like "
                       '{"instruction": "...", "input": "...", "output": "..."}.')
    out = {}
    for key in ("instruction", "input", "output"):
        value = rec.get(key, "" if key == "input" else None)
        if value is None:
            raise LabError(f"{where} has no {shown(key)} field; every record needs 'instruction' and 'output'.")
        if not isinstance(value, str):
            raise LabError(f"{where} has a {_kind(value)} in {shown(key)}; every field must be plain text "
                           "(a string), not a number, list or object.")
        if key != "input" and not value.strip():
            raise LabError(f"{where} has an empty {shown(key)}; fill it in or remove the record.")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # JSON's "\ud800" escape: half of a character, no text can hold it
            raise LabError(f"{where} has a broken character (an unpaired \\ud800-\\udfff escape) in {shown(key)}; "
                           "fix that escape or export the file again.") from None
        out[key] = value
    return out


def parse_instruction_upload(data: bytes, filename: str, max_bytes: int | None = MAX_INSTRUCTION_BYTES,
                             max_records: int = MAX_RECORDS) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """Uploaded instruction data: a .json list of records or a .jsonl file with one record per line.

    Each record needs the strings ``instruction`` and ``output``; ``input`` is optional (``""`` if missing);
    other keys are ignored and listed in ``info``. Files other than .json/.jsonl are read as a JSON list when
    they start with ``[``, else as JSON lines.

    Returns:
        ``(records, info)`` with records ``{"instruction", "input", "output"}`` and ``info`` holding
        ``records``, ``format`` ("json" or "jsonl"), ``with_input`` and ``ignored_keys``.

    Raises:
        LabError: invalid JSON (with line and column), not a list, a record that is not an object or lacks a
            field (with its index), a non-string field, an empty file or list, nesting too deep, size limits.
    """
    text = _decode(data, filename, max_bytes)
    suffix = Path(filename).suffix.lower()
    jsonl = suffix == ".jsonl" or (suffix != ".json" and not text.lstrip().startswith("["))
    # parse_json_safely turns every json.loads failure into one sentence: syntax (with line and column), nesting
    # 100,000 deep (RecursionError), a number of more than 4,300 digits (a plain ValueError).
    if jsonl:
        items, wheres = [], []
        for n, line in enumerate(text.split("\n"), 1):
            if line.strip():
                items.append(parse_json_safely(line, f"Line {n} of {filename}", _JSON_FIX))
                wheres.append(f"The record on line {n} of {filename}")
    else:
        items = parse_json_safely(text, filename, _JSON_FIX)
        if not isinstance(items, list):
            raise LabError(f"{filename} holds a single {_kind(items)} instead of a list of records; "
                           'the file should look like [{"instruction": "...", "output": "..."}, ...].')
        wheres = [f"Record {i} of {filename} (counting from 0)" for i in range(len(items))]
    if not items:
        raise LabError(f"{filename} contains no records; add at least one instruction/output pair.")
    if len(items) > max_records:
        raise LabError(f"{filename} has {len(items):,} records, more than {max_records:,}; upload a smaller part.")
    records = [_check_record(rec, where) for rec, where in zip(items, wheres)]
    extra = sorted({k for rec in items for k in rec} - {"instruction", "input", "output"})
    info = {"records": len(records), "format": "jsonl" if jsonl else "json",
            "with_input": sum(1 for r in records if r["input"].strip()), "ignored_keys": extra}
    return records, info
