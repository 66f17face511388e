"""Pick the best available torch device and describe it in words."""

from __future__ import annotations

import torch


def best_device(prefer: str | None = None) -> torch.device:
    """Return ``prefer`` if given and available, else CUDA, then Apple MPS, then CPU.

    Example:
        >>> best_device("cpu")
        device(type='cpu')
    """
    if prefer:
        prefer = prefer.lower()
        if prefer == "cuda" and not torch.cuda.is_available():
            raise ValueError("CUDA was requested but no CUDA GPU is visible; use 'cpu' or leave the device unset.")
        if prefer == "mps" and not _mps_available():
            raise ValueError("MPS was requested but this machine has no Apple GPU; use 'cpu' or leave it unset.")
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def describe_device(device: torch.device | str | None = None) -> str:
    """A short human label such as ``"CPU (2 threads)"`` or ``"CUDA: NVIDIA H100 (80 GB)"``."""
    device = torch.device(device) if device is not None else best_device()
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"CUDA: {props.name} ({props.total_memory / 2**30:.0f} GB)"
    if device.type == "mps":
        return "MPS (Apple GPU)"
    return f"CPU ({torch.get_num_threads()} threads)"
