"""AdamW's state and the RNG states of a run, saved beside its weights as safetensors (no pickle) and restored
exactly on resume.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from core.errors import LabError, parse_json_safely
from core.fileio import (  # noqa: F401
    atomic_write,  # every file of a run is written through core.fileio
    atomic_write_bytes,
    atomic_write_json,
    fsync_dir,
    is_write_failure,
)

OPTIM_FORMAT = "llm-scratch-lab-optim/1"


def _int_or_none(value: Any) -> int | None:
    """``int(value)`` for a step number stored as text or JSON; None for anything else (or 5,000 digits)."""
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def save_optimizer(
    path: Path, optimizer: torch.optim.Optimizer, param_names: list[str], step: int, rng: dict[str, torch.Tensor]
) -> None:
    """Write an AdamW state as flat safetensors: ``state.<param>.<key>`` tensors + hyper-parameters as JSON.

    Args:
        path: the file to write (atomically).
        optimizer: a single-param-group optimizer over the parameters named ``param_names`` (in order).
        param_names: names of the optimizer's parameters, in the group's order.
        step: the training step this state belongs to (checked on load).
        rng: random-generator states as uint8 tensors (``rng.<name>`` in the file).
    """
    sd = optimizer.state_dict()
    if len(sd["param_groups"]) != 1 or len(sd["param_groups"][0]["params"]) != len(param_names):
        raise LabError("The optimizer must have one parameter group holding every model parameter.")
    tensors: dict[str, torch.Tensor] = {}
    for idx, name in zip(sd["param_groups"][0]["params"], param_names):
        for key, value in sd["state"].get(idx, {}).items():
            t = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"state.{name}.{key}"] = t.detach().to("cpu").contiguous().clone()
    for key, value in rng.items():
        tensors[f"rng.{key}"] = value.detach().to("cpu", torch.uint8).contiguous().clone()
    group = {k: v for k, v in sd["param_groups"][0].items() if k != "params"}
    meta = {
        "format": OPTIM_FORMAT,
        "step": str(int(step)),
        "param_names": json.dumps(param_names),
        "param_group": json.dumps(group),
    }
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def load_optimizer(path: Path, optimizer: torch.optim.Optimizer, param_names: list[str]) -> dict[str, Any]:
    """Restore a state written by :func:`save_optimizer` into ``optimizer`` (same parameters, same order).

    Returns:
        ``{"step": int, "rng": {name: uint8 tensor}}``.
    """
    from core.checkpoint import load_state_dict_safely  # validates the header before reading any tensor

    tensors, meta = load_state_dict_safely(path)
    if meta.get("format") != OPTIM_FORMAT:
        raise LabError(f"{path} is not an optimizer state written by this lab; start a new run instead.")
    names = parse_json_safely(meta.get("param_names", ""), f"The parameter names in {path}", "start a new run")
    if names != param_names:
        raise LabError(f"{path} was saved for a different model (parameter names differ); start a new run.")
    group = parse_json_safely(meta.get("param_group", ""), f"The optimizer settings in {path}", "start a new run")
    step = _int_or_none(meta.get("step"))
    if not isinstance(group, dict) or step is None:
        raise LabError(f"{path} has damaged optimizer settings; start a new run.")
    state: dict[int, dict[str, Any]] = {}
    for i, name in enumerate(param_names):
        prefix = f"state.{name}."
        entry = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        if entry:
            state[i] = entry
    optimizer.load_state_dict({"state": state, "param_groups": [{**group, "params": list(range(len(param_names)))}]})
    rng = {k[4:]: v for k, v in tensors.items() if k.startswith("rng.")}
    return {"step": step, "rng": rng}


def rng_states(device: torch.device) -> dict[str, torch.Tensor]:
    """The global CPU (and current CUDA device's) RNG states, as uint8 tensors."""
    states = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def set_rng_states(states: dict[str, torch.Tensor], device: torch.device) -> None:
    """Inverse of :func:`rng_states` (missing entries are left alone)."""
    if "cpu" in states:
        torch.set_rng_state(states["cpu"])
    if "cuda" in states and device.type == "cuda":
        torch.cuda.set_rng_state(states["cuda"], device)
