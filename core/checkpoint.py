"""The lab's own checkpoints: save and load a :class:`~core.model.GPTModel` as one self-describing safetensors file.

Checkpoints are plain safetensors files: tensors plus a small string→string header. The header holds this
lab's format tag, the model's :class:`~core.config.GPTConfig` as JSON and any ``extra`` JSON (step, losses,
tokenizer name …), so a file describes itself and loading never needs pickle, which could run arbitrary code.

Every file is checked before safetensors touches it (:mod:`core.safetensors_check`): the 8-byte header length
must fit inside the file and every tensor's declared shape must match the bytes it claims, so a hostile or
truncated file fails with one clear :class:`~core.errors.LabError` instead of allocating gigabytes. Files are
written atomically (:func:`core.fileio.atomic_write`).

Hugging Face GPT-2 files (other names, ``Conv1D`` layouts, a fused ``c_attn``) are :mod:`core.hf_gpt2`'s job;
:func:`load_hf_gpt2` and :func:`export_hf_gpt2` can still be imported from here.

Example:
    >>> import tempfile
    >>> from core.config import GPTConfig
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = save(GPTModel(GPTConfig.preset("tiny")), f"{folder}/model.safetensors", extra={"step": 0})
    ...     load(path).extra
    {'step': 0}
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from core import fileio
from core.config import GPTConfig
from core.errors import LabError, json_or_problem, shown
from core.model import GPTModel
from core.model_assembly import (  # noqa: F401  (the loaders' building blocks, importable from here)
    _expected_shapes,
    assemble,
    check_tensors,
    meta_model,
    repeat_block,
)
from core.safetensors_check import Header, fmt_shape, invalid, read_header

FORMAT = "llm-scratch-lab/1"
"""Value of the ``format`` metadata key in every checkpoint this module writes."""
_HF_NAMES = ("load_hf_gpt2", "export_hf_gpt2")  # documented here; they live in core.hf_gpt2


def __getattr__(name: str) -> Any:
    """``from core.checkpoint import load_hf_gpt2`` keeps working (imported late: core.hf_gpt2 imports us)."""
    if name in _HF_NAMES:
        from core import hf_gpt2

        return getattr(hf_gpt2, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class LoadedCheckpoint:
    """What :func:`load` returns.

    Attributes:
        model: the model, in eval mode, on the requested device.
        config: the configuration stored in the file.
        extra: the ``extra`` dict given to :func:`save` (empty if none).
        path: the file it came from.
    """

    model: GPTModel
    config: GPTConfig
    extra: dict[str, Any]
    path: Path


# ---------------------------------------------------------------------------------------------------- saving
def save(
    model: GPTModel,
    path: str | os.PathLike,
    config: GPTConfig | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model``'s weights, its config and ``extra`` to one safetensors file, atomically.

    The file is written next to ``path`` under a temporary name, flushed to disk, then renamed over ``path``,
    so a crash or a full disk mid-write leaves the previous checkpoint intact. A tied output head is stored
    once (as ``tok_emb.weight``) and the config records ``tie_weights=True`` so :func:`load` ties it again.

    Args:
        model: the model to save.
        path: the file to write; parent folders are created.
        config: the configuration to record; defaults to ``model.cfg``.
        extra: JSON-serialisable information to keep with the weights (step, losses, tokenizer name …).

    Returns:
        ``path`` as a :class:`~pathlib.Path` (see the module's example).
    """
    if not isinstance(model, GPTModel):
        raise LabError(f"save() needs a GPTModel, got {type(model).__name__}; pass the model you trained.")
    cfg = model.cfg if config is None else config
    if not isinstance(cfg, GPTConfig):
        raise LabError(f"config must be a GPTConfig, got {type(cfg).__name__}; leave it out to use model.cfg.")
    tied = is_tied(model)
    if cfg.tie_weights != tied:  # record what the model really does, so load() rebuilds the same thing
        cfg = cfg.replace(tie_weights=tied)
    metadata = {"format": FORMAT, "config": cfg.to_json(), "extra": _extra_json(extra)}
    state = model.state_dict()
    if tied:  # safetensors refuses two names for one storage; load() re-ties out_head to tok_emb
        state.pop("out_head.weight")
    expected = _expected_shapes(cfg)
    for name, tensor in state.items():
        if name in expected and tuple(tensor.shape) != expected[name]:
            raise LabError(
                f"The model's {name} has shape {fmt_shape(tensor.shape)} but the config says "
                f"{fmt_shape(expected[name])}; leave config out so the model's own configuration is saved."
            )
    path = Path(path)
    write_safetensors(path, {name: standalone(t) for name, t in state.items()}, metadata)
    return path


def standalone(t: torch.Tensor) -> torch.Tensor:
    """A dense CPU tensor that owns its memory (safetensors rejects views and tensors sharing storage)."""
    t = t.detach().cpu()
    if not t.is_contiguous() or t.untyped_storage().nbytes() != t.numel() * t.element_size():
        t = t.clone(memory_format=torch.contiguous_format)
    return t


def _extra_json(extra: dict[str, Any] | None) -> str:
    if extra is None:
        extra = {}
    if not isinstance(extra, dict):
        raise LabError(
            f"extra must be a dict, got {type(extra).__name__}; wrap the values as extra={{'name': value}}."
        )
    try:
        return json.dumps(extra)  # key order kept: it is the order a UI shows them in
    except (TypeError, ValueError) as err:  # TypeError: unknown type; ValueError: circular reference
        raise LabError(
            f"extra must hold only JSON values (numbers, strings, lists, dicts) but {err}; "
            "convert tensors and numpy values with float() or .tolist() first."
        ) from err


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """``safetensors.torch.save_file`` to ``path``, atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    """:func:`core.fileio.atomic_write`, with one sentence for a folder in the way and for safetensors' refusal."""
    if path.is_dir():
        raise LabError(f"{path} is a folder; give a file name such as {path / 'model.safetensors'}.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise LabError(
            f"Could not create the folder {path.parent} ({err.strerror}); pick a writable location."
        ) from err
    try:
        fileio.atomic_write(path, write)
    except SafetensorError as err:
        raise LabError(f"Could not write {path} because safetensors refused the tensors ({err}).") from err


# ---------------------------------------------------------------------------------------------------- loading
def load(path: str | os.PathLike, device: str | torch.device = "cpu", strict: bool = True) -> LoadedCheckpoint:
    """Load a checkpoint written by :func:`save`.

    Shapes are checked against the stored config from the header alone, before any tensor data is read.

    Args:
        path: the ``.safetensors`` file.
        device: where to put the model (``"cpu"``, ``"cuda"``, ``"mps"`` …).
        strict: when ``False``, tensors the model doesn't know are ignored and missing ones keep their random
            initialisation (useful after changing the model code); shapes must always match.

    Returns:
        A :class:`LoadedCheckpoint` with the model in eval mode, its config and the ``extra`` dict.
    """
    path = Path(path)
    header = read_header(path)
    cfg, extra = _lab_metadata(path, header)
    dev = parse_device(device)
    check_tensors(path, header, _expected_shapes(cfg), strict=strict)
    tensors, _ = load_state_dict_safely(path, device=dev)
    return LoadedCheckpoint(model=assemble(cfg, tensors, dev), config=cfg, extra=extra, path=path)


def load_state_dict_safely(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read every tensor of a safetensors file after validating its header; never unpickles anything.

    This is the one place both loaders read files: the header is validated first
    (:func:`core.safetensors_check.read_header`: the file exists, the header length is sane, every tensor has a
    known dtype and a shape whose byte size equals its stored bytes). Only then does safetensors read it (and
    validate it again).

    Args:
        path: a ``.safetensors`` file.
        device: where to put the tensors.

    Returns:
        ``(tensors, metadata)``: name → tensor, and the header's string metadata (empty if none).
    """
    path = Path(path)
    header = read_header(path)
    dev = parse_device(device)
    try:
        tensors = load_file(path, device=str(dev))
    except SafetensorError as err:
        raise invalid(path, f"safetensors rejected it: {err}") from err
    except OSError as err:
        raise LabError(f"Could not read {path} ({err.strerror or err}); check that the file is readable.") from err
    return tensors, dict(header.metadata)


def checkpoint_info(path: str | os.PathLike) -> dict[str, Any]:
    """A cheap summary of a safetensors file, from its header only (no tensor data is read).

    Args:
        path: a ``.safetensors`` file.

    Returns:
        A dict with ``path``, ``kind`` (``"lab"``, ``"hf-gpt2"`` or ``"safetensors"``), ``format``, ``config``
        (a dict, or ``None`` for files this lab didn't write), ``extra``, ``n_tensors``, ``n_parameters``
        (a tied weight counts once, as it is stored once), ``dtypes`` and ``file_size`` in bytes.

    Example:
        >>> checkpoint_info("runs/tiny/step-100.safetensors")["n_parameters"]  # doctest: +SKIP
        6536704
    """
    from core import hf_gpt2  # imported late: core.hf_gpt2 imports this module

    path = Path(path)
    header = read_header(path)
    fmt = header.metadata.get("format")
    config, extra, kind = None, {}, "safetensors"
    if fmt == FORMAT:
        cfg, extra = _lab_metadata(path, header)
        config, kind = cfg.to_dict(), "lab"
    elif (prefix := hf_gpt2.hf_prefix(header.shapes)) is not None:
        hf_gpt2.hf_block_count(path, hf_gpt2.strip_prefix(header.shapes, prefix))  # h.0 … h.N-1, N in bounds
        kind = "hf-gpt2"
    return {
        "path": str(path),
        "kind": kind,
        "format": fmt,
        "config": config,
        "extra": extra,
        "n_tensors": len(header.tensors),
        "n_parameters": header.n_parameters,
        "dtypes": sorted({dtype for dtype, _ in header.tensors.values()}),
        "file_size": header.file_size,
    }


def _lab_metadata(path: Path, header: Header) -> tuple[GPTConfig, dict[str, Any]]:
    """The config and extra stored by :func:`save`, with one clear error for each way they can be wrong."""
    fmt = header.metadata.get("format")
    if fmt != FORMAT:
        raise _not_lab(path, header, fmt)
    data, problem = json_or_problem(header.metadata.get("config", ""))
    if problem is not None:
        raise LabError(f"{path} has an unreadable stored configuration ({problem}); re-save the model.")
    try:
        cfg = GPTConfig.from_dict(data)
    except LabError as err:  # unknown fields, or sizes out of bounds: said before any model is planned
        raise LabError(
            f"{path} has an unreadable stored configuration ({str(err).rstrip('.')}); re-save the model."
        ) from None
    extra, problem = json_or_problem(header.metadata.get("extra", "{}"))
    if problem is not None or not isinstance(extra, dict):
        raise LabError(f"{path} has an unreadable 'extra' entry (not a JSON object); re-save the model.")
    return cfg, extra


def _not_lab(path: Path, header: Header, fmt: str | None) -> LabError:
    """Why a file without this lab's format tag can't be loaded by :func:`load`."""
    from core.hf_gpt2 import hf_prefix  # imported late: core.hf_gpt2 imports this module

    if hf_prefix(header.shapes) is not None:
        return LabError(
            f"{path} holds Hugging Face GPT-2 weights, not a lab checkpoint; load it with "
            "core.checkpoint.load_hf_gpt2 instead."
        )
    if isinstance(fmt, str) and fmt.startswith("llm-scratch-lab/"):
        return LabError(f"{path} was written in format {shown(fmt)}, which this version can't read; update the lab.")
    return LabError(
        f"{path} is a safetensors file without this lab's metadata, so its model configuration is "
        "unknown; pick a checkpoint saved with core.checkpoint.save."
    )


# --------------------------------------------------------------------------------- shape plans and assembly
def parse_device(device: str | torch.device) -> torch.device:
    """``device`` as a :class:`torch.device` that exists here, else one sentence saying what to use."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise LabError(f"{shown(device)} is not a device name; use 'cpu', 'cuda' or 'mps'.") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LabError("CUDA was requested but no CUDA GPU is visible; load on 'cpu' instead.")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise LabError("MPS was requested but this machine has no Apple GPU; load on 'cpu' instead.")
    return dev


def is_tied(model: GPTModel) -> bool:
    """True when the output head and the token embedding are one weight."""
    a, b = model.out_head.weight, model.tok_emb.weight
    return a is b or (a.device.type != "meta" and a.data_ptr() == b.data_ptr() and a.shape == b.shape)
