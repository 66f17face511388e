"""What the Pretraining page's dashboard shows for one run: the job's live snapshot (when this process trains it)
merged with its ``run.json`` (when it was trained before, or is being trained by another process).
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.access import may_access, owner_of
from core.errors import LabError
from core.jobs import ACTIVE, registry
from core.runs import (
    _RUN_ID,
    MODEL_FILE,
    RUN_FILE,
    RunSummary,
    committed_step,
    list_runs,
    process_alive,
    read_run,
)

EOT = "<|endoftext|>"
PRETRAIN_TOKENIZER = "gpt2"  # a run trained from scratch uses GPT-2's BPE; its checkpoint records the name
FRESH_S = 15 * 60  # a run.json marked running and written this recently is taken to be trained by another process

@functools.lru_cache(maxsize=32)
def _read_run_at(run_dir: str, mtime_ns: int, size: int) -> dict[str, Any]:
    """run.json, re-read only when the file changes (the fragment polls every second)."""
    return read_run(Path(run_dir))


@dataclass
class RunView:
    """Everything the dashboard draws for one run (plain data)."""

    run_id: str
    status: str
    message: str
    active: bool
    step: int = 0
    max_steps: int | None = None
    progress: float = 0.0
    records: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    model_config: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    checkpoint: Path | None = None
    checkpoint_step: int | None = None
    owner: str | None = None  # a core.access tag
    corpus: dict[str, Any] = field(default_factory=dict)  # run.json's corpus record (sizes, source)

    @property
    def epochs(self) -> float | None:
        """Passes over the training windows so far (steps × batch ÷ windows); None when unknown."""
        windows, batch = self.corpus.get("train_windows"), self.settings.get("batch_size")
        if not isinstance(windows, int) or windows <= 0 or not isinstance(batch, int) or not self.step:
            return None
        return self.step * batch / windows

    @property
    def overfit_note(self) -> str | None:
        """A warning once a run has read its corpus more than :data:`OVERFIT_EPOCHS` times over."""
        epochs = self.epochs
        if epochs is None or epochs <= OVERFIT_EPOCHS:
            return None
        return (f"This run has read its training text {epochs:.0f} times over: past ~{OVERFIT_EPOCHS} passes a "
                "model starts to memorise it (the validation loss stops falling or rises while the training loss "
                "keeps dropping, and samples repeat passages). A longer text, or fewer steps, learns more "
                "that carries over.")

    @property
    def train_loss(self) -> float | None:
        return self.records[-1]["train_loss"] if self.records else None

    @property
    def val_losses(self) -> list[float]:
        return [r["val_loss"] for r in self.records if r.get("val_loss") is not None]

    @property
    def tokens_per_s(self) -> float | None:
        return self.records[-1].get("tokens_per_s") if self.records else None

    @property
    def elapsed_s(self) -> float | None:
        return self.records[-1].get("elapsed_s") if self.records else None

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the recent pace: wall-clock seconds per step over the last :data:`ETA_WINDOW` steps
        (evaluations, samples and checkpoints included), never counting step 1, whose warm-up is several times
        slower than the rest. Falls back to the run's tokens/s when too few steps are recorded."""
        if not self.active or not self.max_steps:
            return None
        left = max(0, self.max_steps - self.step)
        timed = [r for r in self.records[-ETA_WINDOW:] if r.get("step", 0) > 1 and r.get("elapsed_s") is not None]
        if len(timed) >= 2 and timed[-1]["step"] > timed[0]["step"] and timed[-1]["elapsed_s"] > timed[0]["elapsed_s"]:
            per_step = (timed[-1]["elapsed_s"] - timed[0]["elapsed_s"]) / (timed[-1]["step"] - timed[0]["step"])
            return left * per_step
        tps, ctx = self.tokens_per_s, self.settings.get("context_length") or self.model_config.get("context_length")
        if not tps or not ctx:
            return None
        return left * self.settings["batch_size"] * ctx / tps


ETA_WINDOW = 60  # steps: long enough to hold a few evaluations, short enough to follow a change of pace
OVERFIT_EPOCHS = 5


def orphan_status(run_json: Path, now: float | None = None, process: Any = None) -> str:
    """What a run.json that says "running" means when no job of this app trains it.

    When run.json names the process that writes it (``process``, see :func:`core.runs.process_tag`) and that
    process is on this machine: ``"elsewhere"`` while it lives (e.g. ``python -m core pretrain`` is training it),
    ``"interrupted"`` once it has ended (a server restart, a kill) or when it is this very process, whose job
    registry does not know the run. Otherwise: ``"elsewhere"`` if run.json was written in the last 15 minutes,
    else ``"interrupted"``.
    """
    alive = process_alive(process)
    if alive is not None:
        return "elsewhere" if alive and process.get("pid") != os.getpid() else "interrupted"
    try:
        age = (now if now is not None else time.time()) - run_json.stat().st_mtime
    except OSError:
        return "interrupted"
    return "elsewhere" if age < FRESH_S else "interrupted"


def dashboard_state(run_id: str, runs_dir: str | Path, visitor: str | None = None) -> RunView | None:
    """What the dashboard shows of a run; None if there is nothing, or (hosted demo) it is another visitor's, or
    ``run_id`` is not a run id at all (a hand-made ``?pt_run=../..`` must not reach outside the runs folder)."""
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        return None
    view = _merged_state(run_id, runs_dir)
    return view if view is not None and may_access(view.owner, visitor) else None


def visible_runs(runs_dir: str | Path, visitor: str | None = None) -> list[RunSummary]:
    """The runs table: every run folder, or in the hosted demo only ``visitor``'s own (damaged ones included)."""
    return [r for r in list_runs(runs_dir) if may_access(r.owner, visitor)]


def _merged_state(run_id: str, runs_dir: str | Path) -> RunView | None:
    """The job's live snapshot (if it is in the registry) merged with the run's ``run.json``; None if neither.

    ``run.json`` holds every step up to its last write (at evaluations); the snapshot holds every step of the
    current session. Steps before the session's first live step come from the file, the rest from the snapshot.
    """
    run_dir = Path(runs_dir) / run_id
    job = registry().get(run_id)
    snap = job.snapshot() if job is not None else None
    disk, broken = None, None
    file = run_dir / RUN_FILE
    if file.exists():
        try:
            st_ = file.stat()
            disk = _read_run_at(str(run_dir), st_.st_mtime_ns, st_.st_size)
        except (LabError, OSError) as err:
            broken = str(err)
    if snap is None and disk is None:
        return RunView(run_id, "broken", broken, False) if broken else None
    live = snap["records"] if snap else []
    first = live[0]["step"] if live else None

    def before(step: int) -> bool:
        return first is None or step < first

    records = [m for m in (disk or {}).get("metrics", []) if before(m.get("step", 0))]
    records += [{k: v for k, v in r.items() if k != "sample"} for r in live]
    samples = [s for s in (disk or {}).get("samples", []) if before(s.get("step", 0))]
    samples += [{"step": r["step"], "text": r["sample"]} for r in live if r.get("sample") is not None]
    ckpt_step = (disk or {}).get("checkpoint_step")
    if snap is not None and snap["status"] in ACTIVE:
        status, message, active = "running", snap["message"], True
    elif snap is not None:
        status, message, active = snap["outcome"] or snap["status"], snap["message"], False
    else:
        status, message, active = str(disk["status"]), str(disk.get("message", "")), False
        if status == "running":  # no job of this app trains it
            status = orphan_status(file, process=disk.get("process"))
            if status == "interrupted":  # the committed step, which run.json may not have caught up with
                ckpt_step = committed_step(run_dir) or ckpt_step
            if status == "elsewhere":  # e.g. the CLI: follow its run.json (written at every evaluation)
                active = True
                message = ("Another process (for example `python -m core pretrain`) is training this run; the "
                           "dashboard follows its saved state, which is updated at every evaluation.")
            else:
                message = (f"This run was cut off (the process training it ended without a word); resume it from "
                           f"its checkpoint at step {ckpt_step}." if ckpt_step else "This run was cut off before its "
                           "first checkpoint; start a new run.")
    settings = dict((disk or {}).get("settings", {}))
    model = run_dir / MODEL_FILE
    return RunView(
        run_id=run_id, status=status, message=message or "", active=active,
        step=records[-1]["step"] if records else int((disk or {}).get("step", 0)),
        max_steps=settings.get("max_steps") or (snap or {}).get("info", {}).get("max_steps"),
        progress=snap["progress"] if snap else 0.0, records=records,
        samples=samples, settings=settings, model_config=dict((disk or {}).get("model_config", {})),
        notes=list((disk or {}).get("notes", [])), checkpoint=model if model.exists() else None,
        checkpoint_step=ckpt_step, owner=(job.owner if job is not None else None) or owner_of(disk),
        corpus=dict((disk or {}).get("corpus") or {}),
    )  # fmt: skip


