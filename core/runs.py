"""Run directories: where a training run keeps its checkpoint, its state and its metrics.

One run lives in ``runs/<run_id>/``::

    model.safetensors      the weights (core.checkpoint format: config + extra JSON in the header)
    optimizer.safetensors  AdamW's moments per parameter, its step counts, and the RNG states (uint8 tensors)
    trainer_state.json     the step the two files above belong to, elapsed time, corpus fingerprint
    run.json               run id, status, model config, settings, corpus, metrics, samples, owner (for the UI)

Every file is written atomically (temporary file → fsync → ``os.replace``), so a crash or a SIGKILL never leaves
a half-written file at its final path. The three checkpoint files must also agree with *each other*; a save is
therefore a small commit: the model and optimizer go to ``*.next.safetensors`` first, then
``trainer_state.json`` (the commit record, naming the step) is replaced, and only then are the ``.next`` files
renamed into place. :func:`recover_checkpoint` finishes or discards a save that a crash interrupted. Nothing here
uses pickle: tensors are safetensors, everything else JSON.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors import safe_open

from core.access import owner_of
from core.errors import LabError, json_or_problem, parse_json_safely, shown
from core.fileio import atomic_write, atomic_write_bytes, atomic_write_json, fsync_dir, is_write_failure  # noqa: F401
from core.limits import current_limits
from core.optim_state import (  # noqa: F401
    OPTIM_FORMAT,
    _int_or_none,
    load_optimizer,
    rng_states,
    save_optimizer,
    set_rng_states,
)
from core.run_check import MAX_STEP, STATUSES, check_record  # noqa: F401
from core.run_process import acquire_run_lock, process_alive, process_tag, release_run_lock  # noqa: F401

MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "trainer_state.json"
RUN_FILE = "run.json"
RUN_FORMAT = "llm-scratch-lab-run/1"
_OUR_TMP = re.compile(r"\.[A-Za-z0-9._-]+\.[0-9a-f]{12}\.tmp")  # see core.fileio.atomic_write
_SAFETENSORS_TMP = re.compile(r"\.tmp[A-Za-z0-9]{6}")  # the Rust tempfile crate's naming
_RUN_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")


# ---------------------------------------------------------------------------------------------------- run ids
def validate_run_id(run_id: Any) -> str:
    """Return ``run_id`` if it is a safe folder name, else raise :class:`LabError`.

    Allowed: 1–64 characters from ``A-Z a-z 0-9 . _ -``, not starting with a dot. This rules out ``..``,
    slashes and hidden folders, so a run id can never point outside the runs folder.

    Example:
        >>> validate_run_id("20261123-101500-mini")
        '20261123-101500-mini'
    """
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise LabError(
            f"The run id {shown(run_id)} is not allowed; use 1–64 letters, digits, '.', '_' or '-', "
            "not starting with a dot (for example 20261123-101500-mini)."
        )
    return run_id


def default_run_id(label: str = "run", now: float | None = None) -> str:
    """A run id from the local time and a label, e.g. ``20261123-101500-mini``.

    In the hosted demo four random hex digits follow (``…-mini-3fa2``): two visitors pressing Start in the same
    second must not pick the same id.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    clean = re.sub(r"[^A-Za-z0-9._-]", "-", label)[:40].lstrip(".") or "run"
    suffix = f"-{uuid.uuid4().hex[:4]}" if current_limits().demo else ""
    return validate_run_id(f"{stamp}-{clean}{suffix}")


def run_path(runs_dir: str | os.PathLike, run_id: str) -> Path:
    """``runs_dir / run_id`` after checking the id."""
    return Path(runs_dir) / validate_run_id(run_id)


def check_run_folder(run_dir: str | os.PathLike) -> Path:
    """``run_dir`` if it is safe to write into: a real folder (or none yet) directly inside its runs folder.

    A run folder that is a symbolic link (or otherwise resolves somewhere else) would make training, resuming
    and crash recovery write and delete files wherever the link points, so it is refused before anything in it
    is touched. Reading a linked run (listing it, showing its metrics) stays possible.

    Raises:
        LabError: the folder is a link, or resolves outside the folder that holds it.
    """
    run_dir = Path(run_dir)
    try:
        linked = run_dir.is_symlink() or (
            run_dir.exists() and run_dir.resolve().parent != run_dir.parent.resolve()
        )
    except (OSError, RuntimeError) as err:  # RuntimeError: a symlink loop on older Pythons
        raise LabError(f"Could not check the run folder {run_dir} ({err}); pick another run id.") from err
    if linked:
        raise LabError(
            f"The run folder {run_dir} is a symbolic link to somewhere else, and the lab only writes into real "
            f"folders inside {run_dir.parent}; move the run there or pick another run id."
        )
    return run_dir


def folder_problem(folder: str | os.PathLike) -> str | None:
    """Why ``folder`` cannot hold runs, as one sentence, or None when it is (or can become) a folder.

    Only looks, never writes: a path that is a file, or that lies below a file, can never be a folder. Whether
    the disk has room or allows writing shows when a run starts (see :func:`check_writable`).

    Example:
        >>> folder_problem("/etc/hostname/runs")  # doctest: +SKIP
        'The runs folder /etc/hostname/runs cannot be used because /etc/hostname is a file, not a folder; ...'
    """
    folder = Path(folder)
    for part in (folder, *folder.parents):
        try:
            if part.is_dir():
                return None
            if part.exists() or part.is_symlink():
                why = "it is a file" if part == folder else f"{part} is a file"
                return (
                    f"The runs folder {folder} cannot be used because {why}, not a folder; point LLMLAB_RUNS_DIR "
                    "(or --runs-dir) at a folder and start again."
                )
        except OSError as err:  # e.g. a path component that may not be looked into
            return (
                f"The runs folder {folder} cannot be used ({err.strerror or err}); point LLMLAB_RUNS_DIR "
                "(or --runs-dir) at a folder this user may write to and start again."
            )
    return None


def check_writable(folder: Path) -> None:
    """Create ``folder`` if needed and write (then delete) an empty file in it, so a run that could never save
    anything is refused before it starts.

    Raises:
        LabError: one sentence naming the folder and the reason (a file in the way, read-only, no space …).
    """
    problem = folder_problem(folder)
    if problem is not None:
        raise LabError(problem)
    probe = folder / f".write-check.{uuid.uuid4().hex[:12]}.tmp"  # the name recover_checkpoint cleans up
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(probe, "xb"):
            pass
    except OSError as err:
        raise LabError(
            f"Cannot write into {folder} ({err.strerror or err}); free some disk space or point LLMLAB_RUNS_DIR "
            "(or --runs-dir) at a writable folder, then start again."
        ) from err
    finally:
        try:
            probe.unlink(missing_ok=True)
        except OSError:
            pass


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; LabError if it is missing, unreadable or not an object."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise LabError(f"There is no {path.name} in {path.parent}; is this a run folder?") from None
    except OSError as err:  # a folder, a device, a link to a file we may not read …
        raise LabError(f"{path} is not readable JSON ({err.strerror or err}); the file is damaged.") from err
    data = parse_json_safely(text, str(path), "the file is damaged")
    if not isinstance(data, dict):
        raise LabError(f"{path} does not hold a JSON object; the file is damaged.")
    return data


# --------------------------------------------------------------------------------------- checkpoint commit
def _next(path: Path) -> Path:
    return path.with_name(path.name.replace(".safetensors", ".next.safetensors"))


def file_step(path: Path) -> int | None:
    """The training step recorded in a model or optimizer file's header (None if absent or unreadable)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception:  # noqa: BLE001 - any unreadable file simply has no step
        return None
    if "step" in meta:
        return _int_or_none(meta["step"])
    extra, _ = json_or_problem(meta.get("extra", "{}"))
    return _int_or_none(extra.get("step")) if isinstance(extra, dict) else None


def committed_step(run_dir: Path) -> int | None:
    """The step of the run's last committed checkpoint (``trainer_state.json``; run.json can lag it after a
    kill), or None when there is none or it cannot be read."""
    try:
        step = read_json(Path(run_dir) / STATE_FILE).get("step")
    except LabError:
        return None
    return step if isinstance(step, int) and not isinstance(step, bool) and 0 < step <= MAX_STEP else None


def commit_checkpoint(run_dir: Path, write_model: Any, write_optimizer: Any, state: dict[str, Any]) -> None:
    """Save model + optimizer + trainer state so that the three always belong to the same step.

    Args:
        run_dir: the run folder.
        write_model: ``write_model(path)`` writes the model file (atomically) to ``path``.
        write_optimizer: ``write_optimizer(path)`` writes the optimizer file (atomically) to ``path``.
        state: the trainer state; must hold ``"step"``. Writing it is the commit point.
    """
    model, optim = run_dir / MODEL_FILE, run_dir / OPTIMIZER_FILE
    try:
        try:
            write_model(_next(model))
            write_optimizer(_next(optim))
            atomic_write_json(run_dir / STATE_FILE, state)  # commit: from here on the .next files are "the" one
        except (OSError, LabError):  # not committed: the last checkpoint stands, the half-saved one goes
            for nxt in (_next(model), _next(optim)):
                with contextlib.suppress(OSError):
                    nxt.unlink(missing_ok=True)
            raise
        for final in (model, optim):
            os.replace(_next(final), final)
    except OSError as err:  # e.g. the run folder vanished mid-save; recover_checkpoint sorts out what is left
        raise LabError(
            f"Could not save the checkpoint in {run_dir} ({err.strerror or err}); check the disk space and "
            "permissions."
        ) from err
    fsync_dir(run_dir)


def recover_checkpoint(run_dir: Path) -> dict[str, Any]:
    """Finish or discard a save a crash interrupted, then return the trainer state.

    A ``.next`` file whose step equals the committed step is moved into place (the crash came after the
    commit); any other ``.next`` file is an uncommitted save and is deleted, as are leftover temporary files.
    Call it only while no process is writing to this run (the job registry allows one job per run id).

    Raises:
        LabError: if the run folder is a link (see :func:`check_run_folder`), there is no committed checkpoint,
            or its files disagree about the step.
    """
    check_run_folder(run_dir)  # before deleting anything: never follow a link into someone else's folder
    for stale in run_dir.iterdir():  # temporary files of writes a crash cut short (ours, and safetensors')
        if _OUR_TMP.fullmatch(stale.name) or _SAFETENSORS_TMP.fullmatch(stale.name):
            stale.unlink(missing_ok=True)
    state = read_json(run_dir / STATE_FILE)
    step = state.get("step")
    if not isinstance(step, int):
        raise LabError(f"{run_dir / STATE_FILE} has no step number; the run folder is damaged.")
    for final in (run_dir / MODEL_FILE, run_dir / OPTIMIZER_FILE):
        nxt = _next(final)
        if nxt.exists():
            if file_step(nxt) == step:
                os.replace(nxt, final)
            else:
                nxt.unlink(missing_ok=True)
        if file_step(final) != step:
            raise LabError(
                f"{final} does not belong to the saved step {step}; the checkpoint is damaged, so start a new run."
            )
    fsync_dir(run_dir)
    return state


# ------------------------------------------------------------------------------------------------- run.json
@dataclass
class RunSummary:
    """One row of :func:`list_runs`.

    Attributes:
        run_id: the folder name.
        path: the run folder.
        status: running / stopped / finished / diverged / failed, or ``"broken"`` when it cannot be read.
        reason: why it is broken (None otherwise).
        created: ISO time the run started ("" if unknown).
        step: last step recorded; max_steps: the planned number of steps.
        checkpoint_step: step of the saved weights (None if none).
        train_loss / val_loss: last recorded losses (None if none).
        model_config / settings: dicts from run.json.
        message: the run's last message (why it stopped, diverged or failed).
        process: the :func:`process_tag` of the process that last wrote run.json (None in older runs).
    """

    run_id: str
    path: Path
    status: str
    reason: str | None = None
    created: str = ""
    step: int = 0
    max_steps: int = 0
    checkpoint_step: int | None = None
    train_loss: float | None = None
    val_loss: float | None = None
    model_config: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    process: Any = None
    owner: str | None = None  # a core.access tag: who started the run in the hosted demo
    task: str = "pretrain"  # or "classify" / "instruct": a fine-tuned run (core.finetune_runs)


def read_run(run_dir: Path) -> dict[str, Any]:
    """The run.json of a run folder, every field checked (:func:`core.run_check.check_record`): LabError if damaged."""
    data = read_json(run_dir / RUN_FILE)
    missing = [k for k in ("run_id", "status", "model_config", "settings", "metrics") if k not in data]
    if missing or data.get("format") != RUN_FORMAT:
        what = ", ".join(missing) or "format"
        raise LabError(f"{run_dir / RUN_FILE} is not a run record of this lab (missing {what}).")
    check_record(data, run_dir / RUN_FILE)
    return data


def summarize_run(run_dir: Path) -> RunSummary:
    """A :class:`RunSummary` of one folder; problems give status ``"broken"`` with a reason, never an error."""
    run_id = run_dir.name
    try:
        data = read_run(run_dir)
        ckpt_step = data.get("checkpoint_step")
        task = str(data.get("task", "pretrain"))
        if ckpt_step is not None:
            _check_checkpoint_files(run_dir, with_optimizer=task == "pretrain")
        metrics = data["metrics"]
        last = metrics[-1] if metrics else {}
        val = next((m["val_loss"] for m in reversed(metrics) if m.get("val_loss") is not None), None)
        return RunSummary(
            run_id=run_id, path=run_dir, status=data["status"], created=str(data.get("created", "")),
            step=int(last.get("step", 0)), max_steps=int(data["settings"].get("max_steps", 0)),
            checkpoint_step=ckpt_step, train_loss=last.get("train_loss"), val_loss=val,
            model_config=dict(data["model_config"]), settings=dict(data["settings"]),
            message=str(data.get("message") or ""), process=data.get("process"), owner=owner_of(data), task=task,
        )
    except Exception as err:  # noqa: BLE001 - a listing must show every folder, whatever is inside
        reason = str(err) if isinstance(err, LabError) else f"{type(err).__name__}: {err}"
        return RunSummary(run_id=run_id, path=run_dir, status="broken", reason=reason)


def _check_checkpoint_files(run_dir: Path, with_optimizer: bool = True) -> None:
    from core.checkpoint import checkpoint_info  # header-only checks: sizes, dtypes, offsets, config

    for name in (MODEL_FILE, OPTIMIZER_FILE) if with_optimizer else (MODEL_FILE,):
        path = run_dir / name
        if not path.exists() and _next(path).exists():
            path = _next(path)  # an interrupted first save that recover_checkpoint will finish
        checkpoint_info(path)


def list_runs(runs_dir: str | os.PathLike = "runs") -> list[RunSummary]:
    """Every sub-folder of ``runs_dir`` as a :class:`RunSummary`, newest first; never raises for bad runs.

    Example:
        >>> [r.status for r in list_runs("runs")]  # doctest: +SKIP
        ['finished', 'broken']
    """
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    folders: Iterable[Path] = (p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    summaries = [summarize_run(p) for p in folders]
    return sorted(summaries, key=lambda s: (s.created, s.run_id), reverse=True)
