"""What datasets exist, where they live, and where downloads are cached.

Built-in entries point into ``assets/`` (written by the project itself, always present). Download entries point
into the cache folder :func:`data_dir` and are fetched by :func:`core.datasets.download` on request.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from core.errors import LabError, shown
from core.paths import assets_dir

ASSETS = assets_dir()  # the checkout's assets/, or the installed copy (core.paths)
CORPUS_DIR = ASSETS / "corpus"
BUILTIN_DIR = ASSETS / "datasets"

Kind = Literal["corpus", "classification", "instruction"]
Source = Literal["builtin", "download"]


@dataclass(frozen=True)
class DatasetInfo:
    """One registry entry.

    Attributes:
        name: registry key, e.g. ``"sms-spam"``.
        title: short human title for the UI.
        kind: ``"corpus"`` (plain text), ``"classification"`` (text + label) or ``"instruction"`` (records).
        description: one or two sentences for the UI.
        source: ``"builtin"`` (ships in ``assets/``) or ``"download"`` (fetched into :func:`data_dir`).
        url: where a download comes from (``None`` for built-ins).
        sha256: expected checksum of the downloaded file. ``None`` means "verified by structure": the source
            publishes no checksum we can pin, so the content is validated strictly instead and the checksum we
            computed is written to the cache manifest, so later loads still detect a changed file.
        filename: file name in the cache (downloads) or path relative to ``assets/`` (built-ins; the corpus is
            a folder of ``.txt`` files).
        licence: licence note to show next to the data.
        size: human description of the size, e.g. ``"20,479 characters"``.
        loader: name of the ``core.datasets`` function that loads it (``load_corpus`` …); see :meth:`load`.
        archive_member: for zip downloads, the one member we extract (by name; nothing else is written).
        rows: expected number of lines, checked when the file is verified by structure.
        labels: allowed labels, checked when the file is verified by structure.
    """

    name: str
    title: str
    kind: Kind
    description: str
    source: Source
    filename: str
    licence: str
    size: str
    loader: str
    url: str | None = None
    sha256: str | None = None
    archive_member: str | None = None
    rows: int | None = None
    labels: tuple[str, ...] = ()

    def load(self) -> Any:
        """Load this dataset with its loader (a ``str``, a ``DataFrame`` or a ``list[dict]``)."""
        import core.datasets as ds  # late import: the loaders import this module

        return getattr(ds, self.loader)(self.name)


_BOOK_REPO = "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main"
_OWN = "Written for LLM Scratch Lab (original text); ships under the project's licence."

DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in [
        DatasetInfo(
            name="builtin-corpus", title="Built-in stories", kind="corpus", source="builtin", filename="corpus",
            description="Original plain English written for the lab: 14 stories, letters and essays (a lighthouse "
            "keeper, a baker's week…) and 1,500 very short stories in simple words, enough text for a small model "
            "on a CPU to learn words and phrases in a few minutes instead of learning a page by heart.",
            licence=_OWN, size="about 700 KB (172,199 GPT-2 tokens)", loader="load_corpus"),
        DatasetInfo(
            name="the-verdict", title="The Verdict (Edith Wharton, 1908)", kind="corpus", source="download",
            filename="the-verdict.txt", url=f"{_BOOK_REPO}/ch02/01_main-chapter-code/the-verdict.txt",
            sha256="b41e41a68f0398a3154ae69e2e4c0e2694e17fe0d66730536837f1b01935b31f",
            description="The short story the book pretrains on in chapters 2–5.",
            licence="Public domain.", size="20,479 characters (5,145 GPT-2 tokens)", loader="load_corpus"),
        DatasetInfo(
            name="builtin-spam", title="Built-in spam/ham messages", kind="classification", source="builtin",
            filename="datasets/spam_builtin.tsv",
            description="A few hundred original SMS-like messages labelled ham or spam (about 40 % spam).",
            licence=_OWN, size="368 messages", loader="load_classification", labels=("ham", "spam")),
        DatasetInfo(
            name="sms-spam", title="UCI SMS Spam Collection", kind="classification", source="download",
            filename="SMSSpamCollection.tsv",
            url="https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip",
            archive_member="SMSSpamCollection", rows=5574, labels=("ham", "spam"),
            description="The 5,574 real SMS messages the book fine-tunes its spam classifier on in chapter 6.",
            licence="CC BY 4.0 (Almeida & Hidalgo, UCI Machine Learning Repository).",
            size="5,574 messages (5,572 rows read as the book does)", loader="load_classification"),
        DatasetInfo(
            name="builtin-instructions", title="Built-in instructions", kind="instruction", source="builtin",
            filename="datasets/instructions_builtin.json",
            description="Short original instruction/input/output records (plurals, opposites, capitals, sums, "
            "sentiment, spelling, past tense…) that can be scored by exact match.",
            licence=_OWN, size="498 records", loader="load_instructions"),
        DatasetInfo(
            name="book-instructions", title="The book's instruction data", kind="instruction", source="download",
            filename="instruction-data.json", url=f"{_BOOK_REPO}/ch07/01_main-chapter-code/instruction-data.json",
            sha256="7e09a9af353722ca15c18bc580f093f9c39d3178335a75177319cb1e1d163944",
            description="The 1,100 instruction/input/output records the book fine-tunes on in chapter 7.",
            licence="Apache-2.0 (the book's code repository, rasbt/LLMs-from-scratch).", size="1,100 records",
            loader="load_instructions"),
    ]
}


def data_dir() -> Path:
    """The download cache: ``$LLMLAB_DATA_DIR``, else ``~/.cache/llm-scratch-lab`` (not created here)."""
    return Path(os.environ.get("LLMLAB_DATA_DIR") or "~/.cache/llm-scratch-lab").expanduser()


def get_info(name: str) -> DatasetInfo:
    """The registry entry for ``name``; a :class:`LabError` naming the known entries otherwise."""
    if not isinstance(name, str) or name not in DATASETS:
        raise LabError(f"There is no dataset called {shown(name)}; choose one of {', '.join(sorted(DATASETS))}.")
    return DATASETS[name]


def list_datasets(kind: Kind | None = None) -> list[DatasetInfo]:
    """Registry entries, optionally only those of one ``kind``, built-ins first."""
    infos = [i for i in DATASETS.values() if kind is None or i.kind == kind]
    return sorted(infos, key=lambda i: (i.source != "builtin", i.name))


def path_of(name: str) -> Path:
    """Where the dataset's file lives (the corpus folder for ``builtin-corpus``), whether or not it exists yet."""
    info = get_info(name)
    if info.source == "builtin":
        return ASSETS / info.filename
    return data_dir() / info.filename


def is_available(name: str) -> bool:
    """True when the file is on disk (cheap: it does not re-check the checksum; loading does)."""
    path = path_of(name)
    if path.is_dir():
        return any(path.glob("*.txt"))
    return path.is_file()
