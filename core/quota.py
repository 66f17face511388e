"""The hosted demo's disk quota: runs and stored corpora are removed oldest first when they outgrow it.

A tiny run keeps about 80 MB (weights, AdamW's moments, the run record), and every pasted or uploaded text is
kept for resuming; on a shared server with a small disk they would pile up until a save fails for everyone.
Before a job starts in the demo, :func:`make_room` deletes the oldest runs that are not training (and stored
corpora no remaining run uses) until the total is under ``Limits.max_storage_mb``. Outside the demo nothing is
ever deleted.

Example:
    >>> make_room("runs", Limits())  # no quota outside the demo: nothing removed
    []
"""

from __future__ import annotations

import shutil
from pathlib import Path

from core.errors import LabError
from core.limits import Limits
from core.runs import RUN_FILE, check_run_folder, read_json


def _size(path: Path) -> int:
    if path.is_symlink() or not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _age(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def make_room(runs_dir: str | Path, caps: Limits, busy: set[str] = frozenset(), corpora_dir: Path | None = None,
              incoming: int = 0) -> list[str]:
    """Delete the oldest runs not in ``busy`` (training now), then stored corpora no remaining run uses, until
    everything fits the quota with ``incoming`` bytes more. Returns the names removed, oldest first."""
    if caps.max_storage_mb is None:
        return []
    root = Path(runs_dir)
    runs = sorted((p for p in root.iterdir() if p.is_dir() and not p.is_symlink()), key=_age) if root.is_dir() else []
    corpora = sorted(corpora_dir.glob("*.txt"), key=_age) if corpora_dir and corpora_dir.is_dir() else []
    sizes = {p: _size(p) for p in runs + corpora}
    over = sum(sizes.values()) + incoming - caps.max_storage_mb * 1_000_000
    removed: list[str] = []
    for path in [p for p in runs if p.name not in busy]:
        if over <= 0:
            return removed
        if _remove(path):
            over -= sizes[path]
            removed.append(path.name)
    used = {_corpus_of(p) for p in runs if p.exists()}
    for path in corpora:
        if over > 0 and str(path) not in used and _remove(path):
            over -= sizes[path]
            removed.append(path.name)
    return removed


def _corpus_of(run_dir: Path) -> str | None:
    try:
        corpus = read_json(run_dir / RUN_FILE).get("corpus")
    except LabError:
        return None
    return corpus.get("source") if isinstance(corpus, dict) else None


def _remove(path: Path) -> bool:
    try:
        if path.is_dir():
            shutil.rmtree(check_run_folder(path))
        else:
            path.unlink()
    except (OSError, LabError):
        return False  # what cannot go stays; the next start tries again
    return True
