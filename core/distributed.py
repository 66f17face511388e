"""Devices and processes for training: which device a run uses, bf16 autocast, and the helpers that let
several processes (``torchrun``, DDP) agree on a loss, a stop request and an evaluation.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from core.errors import LabError, shown
from core.train_config import _cuda_index


# ------------------------------------------------------------------------------------------------ devices
def _dist_info() -> tuple[int, int]:
    """(world size, rank): (1, 0) unless torch.distributed has been initialised (by the CLI under torchrun)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def _resolve_device(name: str, world_size: int = 1) -> torch.device:
    """``settings.device`` as a torch device; under torchrun with NCCL, the GPU torchrun assigned to this rank."""
    from core.device import best_device

    if world_size > 1 and dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    if _cuda_index(name):
        index = int(name[5:])
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            raise LabError(f"There is no GPU {name} on this machine; use 'cuda', 'cpu' or 'auto'.")
        return torch.device(name)
    try:
        return best_device(None if name == "auto" else name)
    except ValueError as err:  # best_device explains what is missing in one sentence
        raise LabError(str(err)) from None


def _autocast_dtype(precision: str, device: torch.device) -> tuple[torch.dtype | None, str | None]:
    """The autocast dtype to use (None = plain fp32) and a note when the request had to be dropped."""
    if precision != "bf16-autocast":
        return None, None
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return None, "This GPU has no bfloat16 support, so training runs in fp32 instead of bf16-autocast."
    if device.type not in ("cuda", "cpu"):
        return None, f"bf16-autocast is not supported on {device.type}, so training runs in fp32."
    return torch.bfloat16, None




def mean_over_ranks(value: torch.Tensor, world: int) -> float:
    """The mean of a scalar over every process (the value itself with one process)."""
    if world == 1:
        return float(value)
    value = value.float().clone()
    dist.all_reduce(value)
    return float(value) / world


def any_rank(flag: bool, world: int, device: torch.device) -> bool:
    """True on every process when any process says so: every rank must stop at the same step, or the others
    would wait forever."""
    if world > 1:
        t = torch.tensor([int(flag)], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        flag = bool(t.item())
    return flag


# ------------------------------------------------------------------------------------------- torchrun
def init_from_env(device: str | None) -> tuple[int, int]:
    """Join the torchrun process group when WORLD_SIZE > 1; returns (world size, rank)."""
    world = env_int("WORLD_SIZE", 1, low=1)
    if world <= 1:
        return 1, 0
    use_cuda = torch.cuda.is_available() and (device or "auto") not in ("cpu", "mps")
    if use_cuda:
        torch.cuda.set_device(env_int("LOCAL_RANK", 0, low=0))
    dist.init_process_group("nccl" if use_cuda else "gloo")
    return dist.get_world_size(), dist.get_rank()


def env_int(name: str, default: int, low: int) -> int:
    """A whole-number environment variable (torchrun's RANK, WORLD_SIZE…): LabError for ``RANK=two``."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip()) if len(raw) < 20 else None
    except ValueError:
        value = None
    if value is None or value < low:
        raise LabError(f"The environment variable {name}={shown(raw)} is not a whole number of at least {low}; "
                       "unset it, or start the command with torchrun, which sets it.")
    return value
