"""What every fine-tuning job shares: its result, its state as the pages read it, and the checks made before it
starts (settings, hosted-demo caps).

A fine-tuning job trains a *deep copy* of the model it is given in a :mod:`core.jobs` thread, so the cached
active model is never changed; :mod:`core.classify_job` and :mod:`core.instruct_job` are the two jobs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from core.access import may_access
from core.datasets import data_dir
from core.errors import LabError, check_int, check_number
from core.jobs import JobRegistry, registry
from core.limits import current_limits
from core.quota import make_room
from core.runs import RUN_FILE, run_path


@dataclass
class FinetuneResult:
    """What a fine-tuning job returns (``job.result``). ``status`` is ``"finished"`` or ``"stopped"``."""

    kind: str
    status: str
    settings: dict[str, Any]
    records: list[dict[str, Any]]
    model: nn.Module | None = None  # the fine-tuned copy (dropped for older runs to save memory)
    details: dict[str, Any] = field(default_factory=dict)
    message: str = ""


def release_old_models(jobs: JobRegistry, kind: str, keep: int = 1) -> None:
    """Keep the fine-tuned models of only the newest ``keep`` finished runs of ``kind`` in memory."""
    done = [j for j in jobs.list() if j.kind == kind and not j.active and isinstance(j.result, FinetuneResult)]
    for job in done[keep:]:
        job.result.model = None


def job_state(run_id: str | None, kind: str | None = None, jobs: JobRegistry | None = None,
              visitor: str | None = None) -> tuple[dict[str, Any] | None, Any]:
    """``(snapshot, result)`` of a run, or ``(None, None)`` when the registry does not know it (any more), it is
    not of ``kind``, or (in the hosted demo) ``visitor`` did not start it: another visitor's id shows nothing."""
    job = (jobs or registry()).get(run_id) if isinstance(run_id, str) and run_id else None
    if job is None or (kind is not None and job.kind != kind) or not may_access(job.owner, visitor):
        return None, None
    return job.snapshot(), job.result


def check_finetune_settings(epochs: int, max_steps: int | None, lr: float, batch_size: int) -> None:
    check_int(epochs, "epochs", low=1)
    if max_steps is not None:
        check_int(max_steps, "max_steps", low=1, fix="or leave it empty for whole epochs")
    check_number(lr, "The learning rate", low=0, high=1, low_open=True, fix="the book uses 5e-5")
    check_int(batch_size, "The batch size", low=1)
    current_limits().check_batch(batch_size)


def planned_steps(n_train: int, batch_size: int, epochs: int, max_steps: int | None) -> int:
    """The number of updates a fine-tuning run will take: whole epochs, or ``max_steps`` if that comes first."""
    per_epoch = n_train // batch_size if n_train > batch_size else 1  # the train loader drops a ragged last batch
    return per_epoch * epochs if max_steps is None else min(max_steps, per_epoch * epochs)


def check_planned_steps(n_train: int, batch_size: int, epochs: int, max_steps: int | None) -> int:
    """Refuse a run longer than the hosted-demo cap before it starts (a no-op outside the demo); return its
    planned number of updates (the job publishes it as ``job.info["planned_steps"]``)."""
    steps = planned_steps(n_train, batch_size, epochs, max_steps)
    current_limits().check_steps(steps)
    return steps




@dataclass(frozen=True)
class SaveTo:
    """Where a fine-tuning job writes its run folder when it ends (:func:`core.finetune_runs.save_finetune_run`).

    ``base`` names the model it started from in the link form (``run:<id>``, ``preset:mini:123``, ``hf:<path>``).
    """

    runs_dir: str
    base: str
    tokenizer: str = "gpt2"


def check_save_target(save: SaveTo | None, run_id: str, model: nn.Module, jobs: JobRegistry) -> None:
    """Before a job that will be saved starts: refuse a run id whose folder already holds a run (it would be
    overwritten), and in the hosted demo make room under the disk quota for the model it will write."""
    if save is None:
        return
    folder = run_path(save.runs_dir, run_id)
    if (folder / RUN_FILE).exists():
        raise LabError(f"A run named {run_id} already exists in {save.runs_dir}; pick another run id "
                       "(a fine-tuned model never overwrites a run).")
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    make_room(save.runs_dir, current_limits(), {j.run_id for j in jobs.active()}, data_dir() / "corpora",
              incoming=size)


def save_result(result: FinetuneResult, save: SaveTo | None, run_id: str, owner: str | None) -> FinetuneResult:
    """Write ``result`` as a run folder when ``save`` says where (``details["saved"]``: its path). A failed write
    is never a lost result: it becomes ``details["save_error"]``, one sentence, and the fine-tuned model stays in
    memory, so the page still shows it."""
    if save is None or result.model is None:
        return result
    from core.finetune_runs import save_finetune_run

    try:
        result.details["saved"] = str(save_finetune_run(result, save.runs_dir, run_id, save.base, save.tokenizer,
                                                        owner=owner))  # fmt: skip
    except (LabError, OSError) as err:
        result.details["save_error"] = f"The fine-tuned model could not be saved: {err}"
    return result
