"""Starting and continuing a pretraining run: what the Pretraining page's Start and Resume buttons, the
benchmarks and the tests call. The trainer itself is :mod:`core.train`; the job thread :mod:`core.jobs`.

A run's corpus is kept on disk (:func:`store_corpus`) so the run can be resumed after a restart, by the page or by
``python -m core pretrain --resume``; a resume reads the run back only through :func:`core.train_plan.resume_spec`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.access import check_access, owner_of, owner_tag
from core.config import GPTConfig
from core.datasets import data_dir, load_corpus
from core.errors import LabError
from core.fileio import atomic_write_bytes
from core.jobs import Job, registry, start_training_job
from core.limits import current_limits
from core.quota import make_room
from core.runs import RUN_FILE, read_json, run_path
from core.train import TrainSettings
from core.train_data import TokenSplit, split_corpus
from core.train_plan import resume_spec

EOT = "<|endoftext|>"
PRETRAIN_TOKENIZER = "gpt2"  # a run trained from scratch uses GPT-2's BPE; its checkpoint records the name
FRESH_S = 15 * 60  # a run.json marked running and written this recently is taken to be trained by another process

@dataclass(frozen=True)
class Corpus:
    """The text to train on. ``source`` is a registry name, or "" for text that is stored when training starts."""

    text: str
    source: str
    title: str

    def __post_init__(self) -> None:
        if not self.source:  # pasted or uploaded text: the same size cap as an upload, enforced here
            current_limits().check_text(self.text)


def store_corpus(text: str) -> Path:
    """Keep uploaded or pasted text in ``<data dir>/corpora/<sha256 prefix>.txt`` so a run can be resumed.

    The run records this path as its corpus source, so ``python -m core pretrain --resume`` finds it too.
    """
    current_limits().check_text(text)
    folder = data_dir() / "corpora"
    path = folder / f"{hashlib.sha256(text.encode('utf-8')).hexdigest()[:16]}.txt"
    if not path.exists():
        atomic_write_bytes(path, text.encode("utf-8"))
    return path


def encode_corpus(text: str, tokenizer: Any) -> list[int]:
    return tokenizer.encode(text, allowed_special={EOT})


def training_ids(text: str, tokenizer: Any, settings: TrainSettings) -> TokenSplit:
    """The corpus as training and validation ids, cut the way ``settings.split`` says (by tokens, or by
    characters as the book's §5.1): what :func:`start_pretraining` and a resumed run train on."""
    return split_corpus(text, tokenizer, settings.val_ratio, settings.split)


def _default_tokenizer() -> Any:
    from core.tokenizers import get_tokenizer

    return get_tokenizer(PRETRAIN_TOKENIZER)


def check_caps(cfg: GPTConfig, settings: TrainSettings) -> None:
    """Refuse (LabError) a run above the hosted-demo caps; a no-op outside the demo."""
    caps = current_limits()
    caps.check_model(cfg)
    caps.check_steps(settings.max_steps)
    caps.check_batch(settings.batch_size)
    if caps.max_train_mb is not None:  # the estimate the pre-flight panel shows, on the device the run would use
        from core.train_memory import estimate_training_memory

        caps.check_memory(estimate_training_memory(cfg, settings)["total_bytes"])


def start_pretraining(
    cfg: GPTConfig,
    settings: TrainSettings,
    corpus: Corpus,
    run_id: str,
    runs_dir: str | Path,
    tokenizer: Any = None,
    ids: TokenSplit | list[int] | None = None,
    visitor: str | None = None,
) -> Job:
    """Tokenize the corpus with GPT-2's BPE and start a pretraining job (what the page's Start button does).

    Raises:
        JobBusyError: another job is running. LabError: bad run id, too little text, too little memory….
    """
    check_caps(cfg, settings)
    tok = tokenizer or _default_tokenizer()
    ids = ids if ids is not None else training_ids(corpus.text, tok, settings)
    run_id = run_id.strip()
    registry().check_can_start(run_id)  # before anything is written
    make_room(runs_dir, current_limits(), {j.run_id for j in registry().active()}, data_dir() / "corpora",
              incoming=100_000_000)  # the hosted demo's disk quota: the oldest runs make way
    source = corpus.source or str(store_corpus(corpus.text))
    return start_training_job(cfg, settings, ids, runs_dir, run_id, tokenizer=tok, owner=owner_tag(visitor),
                              corpus={"source": source, "title": corpus.title})


def run_owner(runs_dir: str | Path, run_id: str) -> str | None:
    """The owner tag a run folder records (None when it records none or cannot be read)."""
    try:
        return owner_of(read_json(run_path(runs_dir, run_id) / RUN_FILE))
    except (LabError, OSError):
        return None


def resume_pretraining(
    run_id: str,
    runs_dir: str | Path,
    max_steps: int | None = None,
    lr: float | None = None,
    tokenizer: Any = None,
    visitor: str | None = None,
) -> Job:
    """Continue a run from its checkpoint with its own model, settings and corpus (optionally more steps or
    another learning rate). In the hosted demo only the visitor who started the run may."""
    check_access(run_owner(runs_dir, run_id), visitor)
    spec = resume_spec(run_path(runs_dir, run_id), max_steps=max_steps, lr=lr)
    cfg, settings = spec.cfg, spec.settings
    check_caps(cfg, settings)
    corpus = {k: v for k, v in spec.corpus.items() if k in ("source", "title")}
    if not spec.corpus_source:
        raise LabError(f"Run {run_id!r} does not record its corpus, so it cannot be resumed here; use "
                       "'python -m core pretrain --resume --corpus …' with the text it was trained on.")
    tok = tokenizer or _default_tokenizer()
    ids = training_ids(load_corpus(corpus["source"]), tok, settings)
    return start_training_job(cfg, settings, ids, runs_dir, run_id, resume=True, tokenizer=tok, corpus=corpus,
                              owner=owner_tag(visitor))


