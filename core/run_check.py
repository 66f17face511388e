"""Every field of a ``run.json``, checked when it is read: a damaged run is listed with a reason, never raises later.

Whatever is in the file (written by an older version, edited by hand, cut by a full disk, or planted by someone)
either passes these checks, with every value of the type and size the trainer writes, or gives one
:class:`LabError` sentence that names the file and the field.

Example:
    >>> from pathlib import Path
    >>> check_record({"status": "finished", "samples": ["x"]}, Path("run.json"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    core.errors.LabError: run.json has an impossible model config ...
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from core.errors import LabError, shown

MAX_STEP = 10**12  # far beyond any real run (GPT-3 took about 10**5 steps): a bigger step number is damage
STATUSES = ("running", "stopped", "finished", "diverged", "failed")
TASKS = ("pretrain", "classify", "instruct")  # what made the run: pretraining or a fine-tuning job
MAX_TEXT = 100_000  # characters of one message, note or sample


def _step_ok(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_STEP


def _number_ok(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value))


def _text_ok(value: Any) -> bool:
    return value is None or (isinstance(value, str) and len(value) <= MAX_TEXT)


class _Checker:
    def __init__(self, path: Path) -> None:
        self.path = path

    def bad(self, what: str, value: Any) -> LabError:
        return LabError(f"{self.path} has an impossible {what} ({shown(value)}); the file is damaged.")

    def parsed(self, what: str, parse: Any, value: Any) -> Any:
        try:
            return parse(value)
        except LabError as err:  # keep what is wrong, drop the advice meant for someone typing a setting
            raise LabError(f"{self.path} has an impossible {what} ({str(err).split(';')[0].rstrip('.')}); "
                           "the file is damaged.") from None

    def entries(self, what: str, value: Any, ok: Any) -> None:
        if not isinstance(value, list):
            raise self.bad(f"list of {what}", value)
        for entry in value:
            if not ok(entry):
                raise self.bad(f"{what} entry", entry)


def _check_metrics(c: _Checker, metrics: Any) -> None:
    c.entries("metrics", metrics, lambda m: isinstance(m, dict) and _step_ok(m.get("step")))
    for m in metrics:
        for key in ("train_loss", "val_loss", "lr", "tokens_seen", "elapsed_s", "tokens_per_s"):
            if not _number_ok(m.get(key)):
                raise c.bad(key.replace("_", " ") if key.endswith("loss") else "metrics entry", m.get(key))


def _sample_ok(s: Any) -> bool:
    return isinstance(s, dict) and _step_ok(s.get("step")) and isinstance(s.get("text"), str) and _text_ok(s["text"])


def check_record(data: dict[str, Any], path: Path) -> None:
    """Raise a one-sentence LabError when a field of ``data`` (a run.json) has a type or size the trainer never
    writes. The model config is normalised in place (``GPTConfig.from_dict(...).to_dict()``)."""
    from core.config import GPTConfig  # validates sizes and names of the model config
    from core.train_config import TrainSettings

    c = _Checker(path)
    for key in ("model_config", "settings"):
        if not isinstance(data.get(key), dict):
            raise c.bad(key.replace("_", " "), data.get(key))
    if data.get("status") not in STATUSES:
        raise c.bad("status", data.get("status"))
    data["model_config"] = c.parsed("model config", GPTConfig.from_dict, data["model_config"]).to_dict()
    c.parsed("training setting", TrainSettings.from_dict, data["settings"])
    for key in ("checkpoint_step", "step"):
        if data.get(key) is not None and not _step_ok(data[key]):
            raise c.bad(key.replace("_", " "), data[key])
    for key in ("created", "updated", "message", "device", "run_id"):
        if not _text_ok(data.get(key)):
            raise c.bad(key, data[key])
    if data.get("task", "pretrain") not in TASKS:
        raise c.bad("task", data.get("task"))
    for key in ("finetune", "details"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise c.bad(f"{key} record", data[key])
    if data.get("corpus") is not None and not isinstance(data["corpus"], dict):
        raise c.bad("corpus record", data["corpus"])
    if data.get("world_size") is not None and not (_step_ok(data["world_size"]) and data["world_size"] >= 1):
        raise c.bad("world size", data["world_size"])
    _check_metrics(c, data.get("metrics"))
    c.entries("samples", data.get("samples", []), _sample_ok)
    c.entries("notes", data.get("notes", []), lambda n: isinstance(n, str) and _text_ok(n))
