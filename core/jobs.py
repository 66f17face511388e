"""Background jobs: run training in a thread, watch its progress, stop it, and never run too many at once.

A page starts a job and returns at once; a fragment that re-runs every second or so reads
``job.snapshot()`` (a plain-dict copy, safe to read while the thread keeps writing) and draws it. The job
thread never touches Streamlit.

The registry is module-level, process-wide state (:func:`registry`): Python imports a module once per process,
so the registry, its jobs and their threads survive page switches, reruns and browser refreshes; only a restart
of the server process ends them (their last checkpoint stays on disk and can be resumed).

The hosted demo has about 2.7 GB of RAM and 2 CPUs, so by default only one job runs at a time
(``LLMLAB_MAX_JOBS`` raises the cap); starting another raises :class:`JobBusyError`.

Example:
    >>> job = registry().start("demo", lambda job: job.update(progress=1.0, message="done"))
    >>> job.wait(5)
    True
    >>> job.snapshot()["status"]
    'finished'
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.access import check_access
from core.errors import LabError
from core.limits import current_limits, env_max_jobs
from core.runs import default_run_id, validate_run_id

ACTIVE = ("queued", "running")
KEEP_FINISHED = 20


class JobBusyError(LabError):
    """Starting a job would exceed the cap on concurrent jobs."""


class Job:
    """One background task, identified by its run id.

    Attributes:
        run_id: the run it works on (also the registry key). kind: e.g. ``"pretrain"``, ``"classify"``.
        status: ``queued`` → ``running`` → ``finished`` / ``stopped`` / ``failed``.
        stop_event: set by :meth:`stop`; the target should check it and return soon after.
        result: what the target returned (e.g. a :class:`core.train.TrainResult`), None until it returns.
    """

    def __init__(self, run_id: str, kind: str, owner: str | None = None, info: dict[str, Any] | None = None) -> None:
        self.run_id, self.kind, self.owner = run_id, kind, owner
        self.info = dict(info or {})
        self.status = "queued"
        self.stop_event = threading.Event()
        self.progress = 0.0
        self.records: list[dict[str, Any]] = []
        self.message = ""
        self.outcome: str | None = None
        self.traceback: str | None = None
        self.result: Any = None
        self.created = time.time()
        self.started: float | None = None
        self.finished: float | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def update(self, record: Any = None, progress: float | None = None, message: str | None = None) -> None:
        """Report progress from the job thread (thread-safe).

        Args:
            record: a metric record (a dict, or anything with ``to_dict()``) to append.
            progress: fraction done, 0 … 1.
            message: a line of status text for the UI.
        """
        if record is not None and not isinstance(record, dict):
            record = record.to_dict()
        with self._lock:
            if record is not None:
                self.records.append(dict(record))
            if progress is not None:
                self.progress = min(1.0, max(0.0, float(progress)))
            if message is not None:
                self.message = str(message)

    def snapshot(self, last_n: int | None = None) -> dict[str, Any]:
        """A consistent plain-dict copy of the job's state, safe to keep and change.

        Args:
            last_n: copy only the last ``last_n`` records (None: all of them).

        Returns:
            ``run_id, kind, status, progress, records, message, outcome, traceback, created, started, finished,
            elapsed_s``. ``outcome`` is the target result's own status when it has one (``"diverged"`` …).
        """
        with self._lock:
            records = self.records if last_n is None else self.records[-last_n:] if last_n > 0 else []
            end = self.finished or time.time()
            return {
                "run_id": self.run_id, "kind": self.kind, "status": self.status, "progress": self.progress,
                "records": [dict(r) for r in records], "n_records": len(self.records), "message": self.message,
                "outcome": self.outcome, "traceback": self.traceback, "created": self.created,
                "started": self.started, "finished": self.finished, "owner": self.owner, "info": dict(self.info),
                "elapsed_s": (end - self.started) if self.started else 0.0,
            }  # fmt: skip

    def stop(self) -> None:
        """Ask the job to stop; a training job writes a checkpoint and ends with status ``"stopped"``."""
        self.stop_event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job is done or ``timeout`` seconds pass; True if it is done."""
        return self._done.wait(timeout)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def _run(self, target: Callable[[Job], Any]) -> None:
        with self._lock:
            self.status, self.started = "running", time.time()
        status, message, outcome, tb, result = "finished", None, None, None, None
        try:
            threads = current_limits().torch_threads
            if threads:  # per thread under OpenMP: set it here, in the job's own thread
                import torch

                torch.set_num_threads(threads)
            result = target(self)
            outcome = getattr(result, "status", None)
            if outcome == "stopped" or (outcome is None and self.stop_event.is_set()):
                status = "stopped"
            elif outcome in ("diverged", "failed"):
                status = "failed"
            message = getattr(result, "message", None) or None
        except Exception as err:  # noqa: BLE001 - a job thread must never die with an unreported error
            status, tb = "failed", traceback.format_exc()
            message = str(err) if isinstance(err, LabError) else f"Training failed: {type(err).__name__}: {err}"
        with self._lock:
            self.status, self.outcome, self.traceback, self.result = status, outcome, tb, result
            if message is not None:
                self.message = message
            if status == "finished":
                self.progress = 1.0
            self.finished = time.time()
        self._done.set()


class JobRegistry:
    """Jobs by run id, with a cap on how many run at once.

    Args:
        max_jobs: concurrent jobs allowed (default: ``$LLMLAB_MAX_JOBS`` or 1).
        keep_finished: finished jobs kept for the UI; older ones are dropped by :meth:`cleanup`.
    """

    def __init__(self, max_jobs: int | None = None, keep_finished: int = KEEP_FINISHED) -> None:
        self.max_jobs = max_jobs if max_jobs is not None else env_max_jobs()
        self.keep_finished = keep_finished
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def check_can_start(self, run_id: str) -> None:
        """Raise :class:`JobBusyError` / :class:`LabError` if a job for ``run_id`` could not start now."""
        with self._lock:
            self._check(run_id)

    def _check(self, run_id: str) -> None:
        existing = self._jobs.get(run_id)
        if existing is not None and existing.active:
            raise LabError(f"Run {run_id!r} is already running; stop it first or pick another run id.")
        active = [j for j in self._jobs.values() if j.active]
        if len(active) >= self.max_jobs:
            other = active[0]
            which = "" if current_limits().demo else f"run {other.run_id!r}, "  # never name another visitor's run
            raise JobBusyError(
                f"Another training job ({which}{other.progress:.0%} done) is using this machine; wait for it to "
                "finish or stop it, then try again."
            )

    def start(self, run_id: str, target: Callable[[Job], Any], kind: str = "pretrain", owner: str | None = None,
              info: dict[str, Any] | None = None) -> Job:
        """Run ``target(job)`` in a daemon thread and return the job at once.

        ``owner`` is the visitor who started it (see :mod:`core.access`); ``info`` plain facts the UI may show
        before the job reports anything (e.g. ``max_steps``).

        Raises:
            JobBusyError: the cap on concurrent jobs is reached.
            LabError: a job for ``run_id`` is already running, or the run id is not a safe name.
        """
        with self.reserve(run_id, kind, owner, info) as job:
            return self.launch(job, target)

    @contextmanager
    def reserve(self, run_id: str, kind: str = "pretrain", owner: str | None = None,
                info: dict[str, Any] | None = None) -> Iterator[Job]:
        """Hold a slot for ``run_id`` (a queued job, counted as active) while the caller builds what the job needs.

        Two presses of Start at once cannot both pass the check and both build a trainer: the second one finds
        the slot taken. If the body raises before :meth:`launch`, the slot is given back.
        """
        validate_run_id(run_id)
        with self._lock:
            self._check(run_id)
            self._cleanup_locked(None)
            job = Job(run_id, kind, owner, info)
            self._jobs[run_id] = job
        try:
            yield job
        finally:
            if job._thread is None:  # never launched: give the slot back
                with self._lock:
                    if self._jobs.get(run_id) is job:
                        del self._jobs[run_id]

    def launch(self, job: Job, target: Callable[[Job], Any]) -> Job:
        """Run ``target(job)`` in a daemon thread for a job :meth:`reserve` holds; returns the job."""
        with self._lock:
            job._thread = threading.Thread(target=job._run, args=(target,), name=f"job-{job.run_id}", daemon=True)
            job._thread.start()
        return job

    def stop(self, run_id: str, visitor: str | None = None) -> bool:
        """Ask the job ``run_id`` to stop, if ``visitor`` may (:func:`core.access.check_access`); False if none."""
        job = self.get(run_id)
        if job is None:
            return False
        check_access(job.owner, visitor, "This job")
        job.stop()
        return True

    def get(self, run_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(run_id)

    def list(self) -> list[Job]:
        """All known jobs, newest first."""
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.created, reverse=True)

    def active(self) -> list[Job]:
        return [j for j in self.list() if j.active]

    def cleanup(self, max_age_s: float | None = 3600.0) -> int:
        """Forget finished jobs older than ``max_age_s`` (and beyond the newest ``keep_finished``); return how many."""
        with self._lock:
            return self._cleanup_locked(max_age_s)

    def _cleanup_locked(self, max_age_s: float | None) -> int:
        done = sorted((j for j in self._jobs.values() if not j.active), key=lambda j: j.finished or 0, reverse=True)
        now = time.time()
        drop = [j for i, j in enumerate(done)
                if i >= self.keep_finished or (max_age_s is not None and now - (j.finished or now) > max_age_s)]
        for j in drop:
            del self._jobs[j.run_id]
        return len(drop)


_REGISTRY: JobRegistry | None = None
_REGISTRY_LOCK = threading.Lock()


def registry() -> JobRegistry:
    """The process-wide registry (created on first use; lives as long as the server process)."""
    global _REGISTRY
    with _REGISTRY_LOCK:
        if _REGISTRY is None:
            _REGISTRY = JobRegistry()
        return _REGISTRY


def start_training_job(
    model_cfg: Any, settings: Any, token_ids: Any, runs_dir: str | Path = "runs", run_id: str | None = None,
    *, label: str = "run", jobs: JobRegistry | None = None, owner: str | None = None, **trainer_options: Any,
) -> Job:
    """Build a trainer (exactly as ``python -m core pretrain`` does) and run it as a background job.

    The trainer is built before the thread starts, so bad settings, a too-short corpus or too little memory
    raise :class:`LabError` right here. Each metric record is appended to the job's snapshot; ``job.stop()``
    makes the trainer write a checkpoint and end with status ``"stopped"``.

    Args:
        model_cfg, settings, token_ids: see :class:`core.train.Trainer`.
        runs_dir: parent of the run folders. run_id: default time stamp + ``label``.
        jobs: the registry (default: the process-wide one). owner: the visitor starting it (:mod:`core.access`).
        trainer_options: ``resume``, ``tokenizer``, ``corpus``, passed on to :func:`core.train.make_trainer`.

    Returns:
        The running :class:`Job`; ``job.result`` is the :class:`core.train.TrainResult` once done.
    """
    from core.train import make_trainer  # lazy: importing jobs must stay cheap for the UI

    jobs = jobs or registry()
    run_id = validate_run_id(run_id) if run_id is not None else default_run_id(label)
    total = settings.max_steps
    with jobs.reserve(run_id, "pretrain", owner, {"max_steps": total}) as job:  # before the trainer touches the folder
        trainer = make_trainer(model_cfg, settings, token_ids, runs_dir, run_id, owner=owner, **trainer_options)
        return jobs.launch(job, _training_target(trainer, run_id, total))


def _training_target(trainer: Any, run_id: str, total: int) -> Callable[[Job], Any]:
    """The job body of a pretraining run: train, reporting every record to the job."""
    def target(job: Job) -> Any:
        job.update(progress=trainer.step / total, message=f"Training {run_id} on {trainer.device}")

        def on_record(record: Any) -> None:
            val = f", val loss {record.val_loss:.3f}" if record.val_loss is not None else ""
            text = f"Step {record.step}/{total}: loss {record.train_loss:.3f}{val}"
            job.update(record=record, progress=record.step / total, message=text)

        return trainer.run(on_record=on_record, stop_event=job.stop_event)

    # The job keeps no reference to the trainer once it is done, so a finished job holds no model in memory;
    # load the checkpoint from the run folder to use the trained model.
    return target
