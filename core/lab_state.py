"""The learner's choice of active model, kept beyond one browser session: in a link and on the server.

A spec (:mod:`core.model_spec`) is written two ways:

- as a short URL parameter, :func:`spec_param` / :func:`parse_spec_param` (``?model=run:20261202-101500-mini``),
  so a reload, a bookmark or a shared link names the same model;
- in a small file per visitor under the runs folder (``.lab_state/<key>.json``), :func:`save_choice` /
  :func:`load_choice`, so a new tab and a restarted server pick it up again. Outside the hosted demo the lab has
  one learner and one file; in the demo each visitor has their own, keyed by their owner tag
  (:func:`core.access.owner_tag`), so nobody inherits another visitor's choice.

Whatever comes back from a URL or a file is checked again before use: a preset must be one this server allows,
a seed a plain integer, a run id a safe folder name of a run with a checkpoint that this visitor may use
(:func:`core.access.may_access`), GPT-2 weights a checked file, and never in the hosted demo.

Example:
    >>> spec_param({"kind": "preset", "name": "tiny", "seed": 123})
    'preset:tiny:123'
    >>> parse_spec_param("preset:tiny:7", visitor=None)
    {'kind': 'preset', 'name': 'tiny', 'seed': 7}
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from core.access import may_access, owner_of, owner_tag
from core.errors import LabError, shown
from core.limits import current_limits
from core.model_spec import default_runs_dir

log = logging.getLogger("llm_scratch_lab")

MODEL_PARAM = "model"
STATE_DIR = ".lab_state"
MAX_PARAM_CHARS = 1_000
MAX_SEED = 2**63 - 1
MAX_STATE_FILES = 5_000  # the hosted demo: one small file per visitor who chose a model; oldest go first


def spec_param(spec: dict[str, Any]) -> str:
    """The URL form of a spec: ``preset:<name>:<seed>``, ``run:<run_id>`` or ``hf:<path>``."""
    kind = spec.get("kind")
    if kind == "preset":
        return f"preset:{spec['name']}:{int(spec.get('seed', 123))}"
    if kind == "run":
        return f"run:{spec['run_id']}"
    if kind == "hf":
        return f"hf:{spec['path']}"
    raise LabError(f"There is no URL form for a model of kind {shown(kind)}.")


def parse_spec_param(text: Any, visitor: str | None, runs_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The spec a URL parameter names, checked as if the visitor had chosen it in the sidebar.

    Raises:
        LabError: one sentence saying what is wrong with the link (unknown form, preset not allowed here,
            a run that does not exist, has no checkpoint or belongs to another visitor, GPT-2 in the demo).
    """
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_PARAM_CHARS:
        raise LabError("The link's model is not one this lab knows; pick the model in the sidebar instead.")
    kind, _, rest = text.strip().partition(":")
    if kind == "preset":
        return _preset(rest)
    if kind == "run":
        return _run(rest, visitor, Path(runs_dir) if runs_dir is not None else default_runs_dir())
    if kind == "hf":
        from core.pretrained import resolve_gpt2_path

        current_limits().check_gpt2()
        return {"kind": "hf", "path": str(resolve_gpt2_path(rest))}
    raise LabError(f"The link's model {shown(text)} is not one this lab knows (it expects preset:…, run:… or "
                   "hf:…); pick the model in the sidebar instead.")


def _preset(rest: str) -> dict[str, Any]:
    name, _, seed_text = rest.partition(":")
    allowed = current_limits().allowed_presets()
    if name not in allowed:
        raise LabError(f"The preset {shown(name)} is not available here; choose one of {', '.join(allowed)}.")
    seed_text = seed_text or "123"
    if not seed_text.isascii() or not seed_text.isdigit() or int(seed_text) > MAX_SEED:
        raise LabError(f"The seed {shown(seed_text)} is not a whole number from 0 to {MAX_SEED:,}.")
    return {"kind": "preset", "name": name, "seed": int(seed_text)}


def _run(run_id: str, visitor: str | None, runs_dir: Path) -> dict[str, Any]:
    from core.runs import read_run, validate_run_id

    folder = runs_dir / validate_run_id(run_id)
    # One sentence for "no such run" and "another visitor's run", without the id: a guessed id learns nothing.
    missing = LabError("There is no such trained run on this server; pick a run in the sidebar or train one on "
                       "the Pretraining page.")
    if not (folder / "model.safetensors").is_file():
        raise missing
    try:
        record = read_run(folder)
    except (LabError, OSError, ValueError) as err:
        raise LabError(f"The run {shown(run_id)} cannot be used: {err}") from None
    if not may_access(owner_of(record), visitor):
        raise missing  # another visitor's run: the same sentence as no run, so a guessed id reveals nothing
    if record.get("task") == "classify":
        raise LabError(f"The run {shown(run_id)} is a classifier, which cannot be the active model (it cannot "
                       "continue text); pick a pretraining or instruction run.")
    return {"kind": "run", "run_id": run_id, "runs_dir": str(runs_dir)}


# ---------------------------------------------------------------------------------------------------- on the server
def state_file(visitor: str | None, runs_dir: str | os.PathLike | None = None) -> Path:
    """Where this visitor's choice is kept: one file outside the demo, one per visitor in it."""
    folder = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    key = owner_tag(visitor) if current_limits().demo else "local"
    return folder / STATE_DIR / f"{key or 'anonymous'}.json"


def save_choice(visitor: str | None, spec: dict[str, Any], runs_dir: str | os.PathLike | None = None) -> bool:
    """Keep ``spec`` as this visitor's active model; False (logged) when the disk refuses: the session still
    has it, only a new tab or a restart would not."""
    from core.fileio import atomic_write_json

    path = state_file(visitor, runs_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {"model": spec_param(spec)})
        if current_limits().demo:
            _prune(path.parent)
    except (OSError, LabError) as err:
        log.warning("could not keep the active model in %s: %s", path, err)
        return False
    return True


def load_choice(visitor: str | None, runs_dir: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """This visitor's kept active model, checked again; None when there is none or it is no longer usable (a
    deleted run, a damaged file, a preset the server no longer allows)."""
    path = state_file(visitor, runs_dir)
    try:
        if not path.is_file() or path.stat().st_size > 4 * MAX_PARAM_CHARS:
            return None
        param = json.loads(path.read_text(encoding="utf-8")).get("model")
        return parse_spec_param(param, visitor, runs_dir)
    except (OSError, ValueError, AttributeError, LabError) as err:
        log.info("the kept active model in %s is not usable: %s", path, err)
        return None


def _prune(folder: Path) -> None:
    files = [p for p in folder.glob("*.json") if p.is_file()]
    if len(files) <= MAX_STATE_FILES:
        return
    files.sort(key=lambda p: p.stat().st_mtime)
    for old in files[: len(files) - MAX_STATE_FILES]:
        old.unlink(missing_ok=True)
