"""The classification job behind the Classification page: table → balanced split → datasets → a deep copy of
the model fine-tuned in a :mod:`core.jobs` thread → test evaluation, kept in the job's result.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from core.access import owner_tag
from core.classify import (
    MODES,
    POSITIONS,
    ClassificationDataset,
    evaluate,
    make_loader,
    prepare_classifier,
    train_classifier,
    trainable_summary,
)
from core.datasets import balance, split
from core.datasets.uploads import table_columns
from core.errors import LabError, check_choice
from core.finetune_job import (
    FinetuneResult,
    SaveTo,
    check_finetune_settings,
    check_planned_steps,
    check_save_target,
    release_old_models,
    save_result,
)
from core.jobs import Job, JobRegistry, registry
from core.model import GPTModel
from core.runs import default_run_id


@dataclass(frozen=True)
class ClassifySettings:
    """Everything a classification run needs besides the model and the data (all plain values)."""

    dataset: str = "builtin-spam"
    mode: str = "last-block"
    position: str = "last"
    epochs: int = 5
    max_steps: int | None = None
    lr: float = 5e-5
    batch_size: int = 8
    max_length: int | None = None
    balance: bool = True
    lora_rank: int = 8
    lora_alpha: float = 16
    eval_every: int = 10
    seed: int = 123


@dataclass
class ClassifyData:
    train: ClassificationDataset
    val: ClassificationDataset
    test: ClassificationDataset
    labels: list[str]
    majority: float  # accuracy of always predicting the test set's most common class
    majority_label: str
    notes: list[str]


def upload_columns(data: bytes, filename: str) -> list[str]:
    """The header names of an uploaded CSV/TSV, or ``label``/``text`` for a header-less two-column file (for the
    column pickers); ``[]`` if it cannot be read (the parse then says why)."""
    return table_columns(data, filename)


def prepare_classification(df: pd.DataFrame, tokenizer: Any, context_length: int,
                           settings: ClassifySettings) -> ClassifyData:
    """Balance (optional), split 70/10/20 and tokenize, as the book's chapter 6.

    Raises:
        LabError: missing columns, a single label, too few rows for three splits, bad max length.
    """
    if settings.balance:
        df = balance(df, seed=settings.seed)
    train, val, test = split(df, seed=settings.seed)
    if min(len(train), len(val), len(test)) == 0:
        raise LabError(f"{len(df)} labelled rows are too few to split into training, validation and test sets; "
                       "use at least 10 (better: a few hundred).")
    tr = ClassificationDataset(train, tokenizer, settings.max_length, context_length=context_length)
    kw = dict(max_length=tr.max_length, labels=tr.label_names, context_length=context_length)
    va, te = ClassificationDataset(val, tokenizer, **kw), ClassificationDataset(test, tokenizer, **kw)
    counts = pd.Series([tr.label_names[i] for i in te.labels]).value_counts()
    notes = list(tr.notes)
    if te.n_truncated or va.n_truncated:
        n = te.n_truncated + va.n_truncated
        notes.append(f"{n} validation/test text{'s were' if n > 1 else ' was'} also cut to {tr.max_length} tokens.")
    return ClassifyData(tr, va, te, tr.label_names, float(counts.iloc[0] / len(te)), str(counts.index[0]), notes)


def start_classify_job(model: GPTModel, tokenizer: Any, df: pd.DataFrame, settings: ClassifySettings,
                       run_id: str | None = None, jobs: JobRegistry | None = None,
                       visitor: str | None = None, save: SaveTo | None = None) -> Job:
    """Check the settings and data now (errors surface at once), then fine-tune a deep copy in a job.

    ``job.result`` is a :class:`FinetuneResult` with ``details``: ``evaluation`` (see
    :func:`core.classify.evaluate`), ``majority``, ``labels``, ``max_length``, ``trainable``, ``notes``.
    """
    s = settings
    check_finetune_settings(s.epochs, s.max_steps, s.lr, s.batch_size)
    check_choice(s.mode, "fine-tuning mode", MODES)
    check_choice(s.position, "token position", POSITIONS)
    jobs = jobs or registry()
    run_id = run_id or default_run_id("classify")
    jobs.check_can_start(run_id)
    data = prepare_classification(df, tokenizer, model.cfg.context_length, s)
    planned = check_planned_steps(len(data.train), s.batch_size, s.epochs, s.max_steps)
    check_save_target(save, run_id, model, jobs)

    def target(job: Job) -> FinetuneResult:
        job.update(progress=0.0, message="Copying the model and building the classifier…")
        m = prepare_classifier(copy.deepcopy(model), len(data.labels), s.mode, s.lora_rank, s.lora_alpha, s.seed)
        train_loader = make_loader(data.train, s.batch_size, shuffle=True, drop_last=len(data.train) > s.batch_size,
                                   seed=s.seed)
        val_loader, test_loader = make_loader(data.val, s.batch_size), make_loader(data.test, s.batch_size)
        total = len(train_loader) * s.epochs if s.max_steps is None else min(s.max_steps, len(train_loader) * s.epochs)

        def on_record(r: dict[str, Any]) -> None:
            acc = f", val accuracy {r['val_acc']:.0%}" if r["val_acc"] is not None else ""
            job.update(record=r, progress=0.95 * r["step"] / max(total, 1),
                       message=f"Step {r['step']}/{total} (epoch {r['epoch']}): val loss {r['val_loss']:.3f}{acc}")

        run = train_classifier(m, train_loader, val_loader, s.epochs, s.lr, eval_every=s.eval_every,
                               position=s.position, on_record=on_record, stop_event=job.stop_event, seed=s.seed,
                               max_steps=s.max_steps)
        job.update(message="Evaluating on the test set…")
        ev = evaluate(m, test_loader, data.labels, s.position)
        details = {"evaluation": ev, "majority": data.majority, "majority_label": data.majority_label,
                   "labels": data.labels, "max_length": data.train.max_length, "notes": data.notes,
                   "trainable": trainable_summary(m), "steps": run.steps, "examples_seen": run.examples_seen,
                   "sizes": (len(data.train), len(data.val), len(data.test)), "elapsed_s": run.elapsed_s}
        status = "stopped" if run.stopped else "finished"
        msg = f"Test accuracy {ev['accuracy']:.1%} (majority baseline {data.majority:.1%}) after {run.steps} steps."
        result = FinetuneResult("classify", status, asdict(s), run.records, m, details, msg)
        return save_result(result, save, run_id, owner_tag(visitor))

    job = jobs.start(run_id, target, kind="classify", owner=owner_tag(visitor), info={"planned_steps": planned})
    release_old_models(jobs, "classify")
    return job


def misclassified(evaluation: Mapping[str, Any], limit: int | None = None) -> pd.DataFrame:
    """Every test example the classifier got wrong (or the first ``limit``), the most confident mistakes first,
    with the probability it gave its wrong answer."""
    rows = [{"text": e["text"], "true label": e["label"], "predicted": e["pred"], "confidence": max(e["probs"])}
            for e in evaluation["per_example"] if e["label"] != e["pred"]]
    rows.sort(key=lambda r: -r["confidence"])
    return pd.DataFrame(rows[:limit], columns=["text", "true label", "predicted", "confidence"])


def ablation_row(run_id: str, result: FinetuneResult) -> dict[str, Any]:
    """One line of the ablation table: the run's settings and its test accuracy."""
    s, d = result.settings, result.details
    return {"run": run_id, "dataset": s["dataset"], "mode": s["mode"], "position": s["position"],
            "steps": d["steps"], "lr": s["lr"], "batch": s["batch_size"], "max length": d["max_length"],
            "trainable": d["trainable"]["trainable"], "test accuracy": d["evaluation"]["accuracy"],
            "majority baseline": d["majority"], "status": result.status}


