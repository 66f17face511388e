"""Which process trains a run: the tag ``run.json`` records (pid, start time, host) and whether that process still
lives, so a run cut off by a restart or a kill is told apart from one another process is training.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

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
