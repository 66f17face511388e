"""Which process trains a run: the tag ``run.json`` records (pid, start time, host) and whether that process still
lives, so a run cut off by a restart or a kill is told apart from one another process is training.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from pathlib import Path
from typing import Any

from core.errors import LabError
from core.fileio import (  # noqa: F401
    atomic_write,  # every file of a run is written through core.fileio
    atomic_write_bytes,
    atomic_write_json,
    fsync_dir,
    is_write_failure,
)


def process_tag() -> dict[str, Any]:
    """Who is writing a run: this process's id, host and start time (kept in run.json as ``"process"``).

    A run.json that says "running" after its process died (a server restart, a SIGKILL) is then recognised as
    cut off at once, rather than only after it has not been written for a while.
    """
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": _process_start(os.getpid())}


def process_alive(tag: Any) -> bool | None:
    """Whether the process a :func:`process_tag` names is still running: True, False, or None when unknown
    (no tag, another machine, or a system without ``/proc``-style process ids)."""
    if not isinstance(tag, dict) or os.name != "posix":
        return None
    pid, started = tag.get("pid"), tag.get("started")
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid < 2**31:
        return None
    if tag.get("host") != socket.gethostname():
        return None  # another machine's process ids say nothing here
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, run by another user
    except OSError:
        return None
    stat = _proc_stat(pid)
    if stat is not None and stat[0] == "Z":
        return False  # a zombie: dead, only not yet reaped by its parent
    now_started = _process_start(pid)
    if isinstance(started, int) and now_started is not None and now_started != started:
        return False  # the id now belongs to another process
    return True


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first), or None off Linux."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return text.rsplit(")", 1)[-1].split()


def _process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of ``/proc/<pid>/stat``), None if unknown."""
    fields = _proc_stat(pid)
    try:
        return int(fields[19]) if fields else None
    except (IndexError, ValueError):
        return None


# ------------------------------------------------------------------------------------------------ run lock
LOCK_FILE = ".lock"


def acquire_run_lock(run_dir: Path) -> Path:
    """Claim ``run_dir`` for this process (a ``.lock`` file holding :func:`process_tag`); return the lock path.

    A lock left by a process that has died (a kill, a restart) is taken over; one held by a live process of
    this machine, or of another machine that still writes, refuses. A lock of this same process is taken over
    too: within one process the job registry already keeps two jobs off one run.

    Raises:
        LabError: another live process is training this run.
    """
    lock = Path(run_dir) / LOCK_FILE
    lock.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            if not _lock_is_stale(lock):
                raise LabError(f"Run {Path(run_dir).name!r} is being trained by another process right now; wait "
                               "for it to finish (or stop it) before resuming it, or pick another run id.") from None
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(process_tag(), f)
        return lock
    raise LabError(f"Could not claim run {Path(run_dir).name!r}: its lock file keeps changing; try again.")


def release_run_lock(lock: Path | None) -> None:
    """Remove a lock :func:`acquire_run_lock` took (if it is still this process's)."""
    if lock is None:
        return
    with contextlib.suppress(OSError, ValueError):
        if json.loads(lock.read_text()).get("pid") == os.getpid():
            lock.unlink()


def _lock_is_stale(lock: Path) -> bool:
    try:
        tag = json.loads(lock.read_text())
    except (OSError, ValueError):
        return True  # unreadable or half-written: no live process can be relying on it
    if isinstance(tag, dict) and tag.get("pid") == os.getpid() and tag.get("host") == socket.gethostname():
        return True
    return process_alive(tag) is False
