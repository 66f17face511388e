"""``python -m core data list | fetch | add | show``: the dataset registry from a terminal.

- ``data list [--kind KIND]``: every registry entry, whether it is on this machine, and where it lives;
- ``data fetch NAME [--url URL]``: download it (sha256 or structure checked, see :func:`core.datasets.download`);
- ``data add NAME PATH``: put a copy you already have (e.g. fetched on another machine, or the UCI zip) into the
  data folder, checked exactly as a download is (:func:`core.datasets.fetch.add_local_copy`);
- ``data show NAME [--rows N]``: a short preview, so a teacher can check a file before class.

The data folder is ``$LLMLAB_DATA_DIR`` (default ``~/.cache/llm-scratch-lab``), the one the app reads.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path
from typing import Any

from core.datasets.registry import DATASETS, DatasetInfo, data_dir, is_available, list_datasets, path_of
from core.errors import LabError, check_int, shown

KINDS = ("corpus", "classification", "instruction")
PREVIEW_CHARS = 100  # a preview line is cut to this many characters


def register(sub: Any) -> None:
    d = sub.add_parser("data", help="list, download, add and preview the datasets")
    dsub = d.add_subparsers(dest="data_command", required=True, metavar="list|fetch|add|show")

    ls = dsub.add_parser("list", help="every dataset, whether it is here and where it lives")
    ls.add_argument("--kind", choices=KINDS)
    ls.set_defaults(func=cmd_list)

    f = dsub.add_parser("fetch", help="download a dataset into the data folder (checked)")
    f.add_argument("name", help="registry name, e.g. the-verdict (see 'data list')")
    f.add_argument("--url", help="download from here instead (a mirror); the same checks apply")
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    f.set_defaults(func=cmd_fetch)

    a = dsub.add_parser("add", help="copy a file you already have into the data folder (checked)")
    a.add_argument("name", help="registry name, e.g. sms-spam")
    a.add_argument("path", type=Path, help="the file (for sms-spam also the UCI zip sms+spam+collection.zip)")
    a.set_defaults(func=cmd_add)

    s = dsub.add_parser("show", help="a short preview: size, token or label counts, the first lines")
    s.add_argument("name", help="registry name")
    s.add_argument("--rows", type=int, help="lines, rows or records to show (default 5, 5, 1)")
    s.set_defaults(func=cmd_show)


def _info(name: str) -> DatasetInfo:
    """The registry entry, or one sentence naming the closest names and all the others."""
    if name in DATASETS:
        return DATASETS[name]
    close = difflib.get_close_matches(name, DATASETS, n=2, cutoff=0.6)
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    raise LabError(f"There is no dataset called {shown(name)}{hint}; choose one of {', '.join(sorted(DATASETS))} "
                   "(see 'python -m core data list').")


def _missing(info: DatasetInfo) -> LabError:
    return LabError(f"{info.name} is not on this machine yet (it goes to {path_of(info.name)}); run 'python -m core "
                    f"data fetch {info.name}', or 'python -m core data add {info.name} PATH' with a local copy.")


# ------------------------------------------------------------------------------------------------------ list
def table(rows: list[tuple[str, ...]]) -> list[str]:
    """Rows as lines of left-aligned columns two spaces apart (the last column is not padded)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)) + "  " + r[-1] for r in rows]


def cmd_list(args: argparse.Namespace) -> int:
    rows = [("name", "kind", "title", "source", "here", "size", "path")]
    for info in list_datasets(args.kind):
        source = "built-in" if info.source == "builtin" else "download"
        rows.append((info.name, info.kind, info.title, source, "yes" if is_available(info.name) else "no",
                     info.size, str(path_of(info.name))))  # fmt: skip
    print("\n".join(line.rstrip() for line in table(rows)))
    print(f"\ndata folder: {data_dir()} (set LLMLAB_DATA_DIR to use another); get a download with 'data fetch "
          "NAME', or 'data add NAME PATH' offline.")
    return 0


# ----------------------------------------------------------------------------------------------------- fetch
class ByteProgress:
    """A :data:`core.fileio.Progress` callback drawing a tqdm bar of bytes, only when ``stream`` is a terminal."""

    def __init__(self, desc: str, enabled: bool = True, stream: Any = None):
        self.desc, self.stream = desc, stream or sys.stderr
        self.enabled = enabled and bool(getattr(self.stream, "isatty", lambda: False)())
        self.bar: Any = None

    def __call__(self, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.desc, unit="B", unit_scale=True, unit_divisor=1024,
                            file=self.stream, dynamic_ncols=True, leave=True)  # fmt: skip
        if total is not None and self.bar.total != total:
            self.bar.total = total
        if done < self.bar.n:  # the server ignored the resume and sends the whole file again
            self.bar.reset(total=total)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_fetch(args: argparse.Namespace) -> int:
    from core.datasets.fetch import DatasetUnreachable, download, sha256_of, verify_cached

    info = _info(args.name)
    if info.source == "builtin":
        print(f"{info.name} ships with the lab; nothing to download ({path_of(info.name)}).")
        return 0
    if is_available(info.name):
        try:
            path = verify_cached(info.name)
        except LabError:
            pass  # damaged or changed: download() fetches it again
        else:
            print(f"{info.title} is already here, checked: {path}\nsha256 {sha256_of(path)}")
            return 0
    bar = ByteProgress(info.filename, enabled=not args.quiet)
    try:
        path = download(info.name, progress=bar, url=args.url)
    except DatasetUnreachable as err:
        what = f"the zip and run 'python -m core data add {info.name} sms+spam+collection.zip'" \
            if info.archive_member else f"it and run 'python -m core data add {info.name} {info.filename}'"
        raise LabError(f"Could not reach {err.host} (no internet connection?); on a machine with internet "
                       f"download {err.url}, bring {what} here instead.") from None
    finally:
        bar.close()
    print(f"{info.title}: {path}\nsha256 {sha256_of(path)}")
    return 0


# ------------------------------------------------------------------------------------------------------- add
def cmd_add(args: argparse.Namespace) -> int:
    from core.datasets.fetch import add_local_copy, sha256_of

    info = _info(args.name)
    dest = add_local_copy(info.name, args.path)
    how = "matches the registry" if info.sha256 else "content checked; recorded in the data folder's manifest.json"
    print(f"added {info.title}\nwrote {dest}\nsha256 {sha256_of(dest)} ({how})")
    return 0


# ------------------------------------------------------------------------------------------------------ show
def _cut(line: str) -> str:
    return line if len(line) <= PREVIEW_CHARS else line[: PREVIEW_CHARS - 1] + "…"


def _show_corpus(info: DatasetInfo, rows: int) -> list[str]:
    from core.datasets import load_corpus
    from core.tokenizers import get_tokenizer

    text = load_corpus(info.name)
    tokens = len(get_tokenizer("gpt2").encode(text, allowed_special="all"))
    lines = text.splitlines()
    out = [f"{len(text):,} characters, {tokens:,} GPT-2 tokens, {len(lines):,} lines", ""]
    return out + [_cut(line) for line in [ln for ln in lines if ln.strip()][:rows]]  # blank lines skipped


def _label_counts(labels: Any) -> str:
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    return ", ".join(f"{n:,} {label}" for label, n in sorted(counts.items()))


def _show_classification(info: DatasetInfo, rows: int) -> list[str]:
    from core.datasets import balance, load_classification, split, verify_cached

    lines = [ln.partition("\t") for ln in verify_cached(info.name).read_bytes().decode("utf-8").splitlines()]
    out = [f"{len(lines):,} rows in the file ({_label_counts(label for label, _, _ in lines)})"]
    df = load_classification(info.name)
    if len(df) != len(lines):
        out.append(f"{len(df):,} rows read as the book does (pandas defaults: {_label_counts(df['label'])})")
    if df["label"].nunique() >= 2:
        parts = split(balance(df))
        out.append(f"the book's balanced split: {' / '.join(f'{len(p):,}' for p in parts)} (train / val / test)")
    return [*out, "", *(_cut(f"{label:6} {text}") for label, _, text in lines[:rows])]


def _show_instructions(info: DatasetInfo, rows: int) -> list[str]:
    from core.datasets import load_instructions, split_instructions

    records = load_instructions(info.name)
    parts = split_instructions(records)
    out = [f"{len(records):,} records; the book's split: {' / '.join(f'{len(p):,}' for p in parts)} "
           "(train / val / test)", ""]
    return out + [json.dumps(r, indent=2, ensure_ascii=False) for r in records[:rows]]


def cmd_show(args: argparse.Namespace) -> int:
    info = _info(args.name)
    default = 1 if info.kind == "instruction" else 5
    rows = default if args.rows is None else check_int(args.rows, "--rows", low=0, high=10_000)
    if not is_available(info.name):
        raise _missing(info)
    show = {"corpus": _show_corpus, "classification": _show_classification, "instruction": _show_instructions}
    print(f"{info.title} ({info.name}, {info.kind}): {path_of(info.name)}")
    print("\n".join(show[info.kind](info, rows)))
    return 0
