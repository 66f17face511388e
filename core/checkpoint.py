"""Save and load models as safetensors, and move weights to and from Hugging Face GPT-2.

Checkpoints are plain safetensors files: tensors plus a small string→string header. The header holds this
lab's format tag, the model's :class:`~core.config.GPTConfig` as JSON and any ``extra`` JSON (step, losses,
tokenizer name …), so a file describes itself and loading never needs pickle, which could run arbitrary code.

Every file is checked before safetensors touches it (see :func:`load_state_dict_safely`): the 8-byte header
length must fit inside the file and every tensor's declared shape must match the bytes it claims, so a hostile
or truncated file fails with one clear :class:`~core.errors.LabError` instead of allocating gigabytes.

Hugging Face GPT-2 stores the same numbers under other names and shapes: its ``Conv1D`` layers keep weights as
(in, out) where ``nn.Linear`` keeps (out, in), and it fuses the query/key/value projections into one
``c_attn``. :func:`load_hf_gpt2` and :func:`export_hf_gpt2` translate in both directions.

Shape legend: C ``emb_dim``, V ``vocab_size``, L ``context_length``, F the feed-forward width (``ff_mult`` ·
C).

Example:
    >>> from core.config import GPTConfig
    >>> from core.model import GPTModel
    >>> path = save(GPTModel(GPTConfig.preset("tiny")), "runs/demo/model.safetensors", extra={"step": 0})
    >>> load(path).extra
    {'step': 0}
"""

from __future__ import annotations

import json
import math
import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from core.config import GPT2_VOCAB_SIZE, MAX_SIZES, GPTConfig
from core.errors import LabError, json_or_problem, parse_json_safely, shown
from core.model import GPTModel

FORMAT = "llm-scratch-lab/1"
"""Value of the ``format`` metadata key in every checkpoint this module writes."""

# A real header is a few kB per hundred tensors; anything near this is hostile or corrupt.
_MAX_HEADER_BYTES = 100 * 1024 * 1024
# Bytes per element of the safetensors dtypes torch can hold; anything else is refused before loading.
_DTYPE_BYTES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
    "U64": 8, "U32": 4, "U16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
}  # fmt: skip
_FLOAT_DTYPES = {"F64", "F32", "F16", "BF16"}
# HF GPT-2 checkpoints written by transformers < 4.x keep the causal mask as tensors; they carry no weights.
_HF_BUFFER = re.compile(r"h\.\d+\.attn\.(bias|masked_bias)")
# Activations that are GELU's tanh approximation, the only one GPTModel implements.
_TANH_GELUS = {"gelu_new", "gelu_pytorch_tanh", "gelu_fast"}
# The block number in an HF GPT-2 tensor name ("h.11.attn.c_attn.weight"); the same pattern core.pretrained uses.
_HF_BLOCK = re.compile(r"h\.(\d+)\.")
# A real config.json is about 1 kB; a bigger one is not GPT-2's and is not read into memory.
_MAX_HF_CONFIG_BYTES = 1024 * 1024


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


@dataclass(frozen=True)
class _Header:
    """The parsed, validated safetensors header: tensor name → (dtype, shape), metadata and file size."""

    tensors: dict[str, tuple[str, tuple[int, ...]]]
    metadata: dict[str, str]
    file_size: int

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: shape for name, (_, shape) in self.tensors.items()}


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
        ``path`` as a :class:`~pathlib.Path`.

    Example:
        >>> save(model, "runs/tiny/step-100.safetensors", extra={"step": 100, "val_loss": 4.2})
        PosixPath('runs/tiny/step-100.safetensors')
    """
    if not isinstance(model, GPTModel):
        raise LabError(f"save() needs a GPTModel, got {type(model).__name__}; pass the model you trained.")
    cfg = model.cfg if config is None else config
    if not isinstance(cfg, GPTConfig):
        raise LabError(
            f"config must be a GPTConfig, got {type(cfg).__name__}; leave it out to use model.cfg."
        )
    path = Path(path)
    tied = _is_tied(model)
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
                f"The model's {name} has shape {_fmt(tensor.shape)} but the config says "
                f"{_fmt(expected[name])}; leave config out so the model's own configuration is saved."
            )
    tensors = {name: _standalone(t) for name, t in state.items()}
    _atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
    return path


def _standalone(t: torch.Tensor) -> torch.Tensor:
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


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Run ``write(tmp)`` on a temporary file beside ``path``, fsync it, then rename it over ``path``."""
    if path.is_dir():
        raise LabError(f"{path} is a folder; give a file name such as {path / 'model.safetensors'}.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise LabError(
            f"Could not create the folder {path.parent} ({err.strerror}); pick a writable location."
        ) from err
    # Same folder, so os.replace is a rename within one file system, which is atomic.
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        write(tmp)
        with open(tmp, "r+b") as f:  # the bytes must be on disk before the rename makes them "the" checkpoint
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        raise LabError(
            f"Could not write {path} ({err.strerror or err}); check the disk space and permissions."
        ) from err
    except SafetensorError as err:
        raise LabError(f"Could not write {path} because safetensors refused the tensors ({err}).") from err
    finally:
        tmp.unlink(missing_ok=True)  # after a successful replace it is already gone
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Persist the rename itself (POSIX); Windows can't open folders for fsync, so there it is a no-op."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------------- loading


def load(
    path: str | os.PathLike, device: str | torch.device = "cpu", strict: bool = True
) -> LoadedCheckpoint:
    """Load a checkpoint written by :func:`save`.

    Shapes are checked against the stored config from the header alone, before any tensor data is read.

    Args:
        path: the ``.safetensors`` file.
        device: where to put the model (``"cpu"``, ``"cuda"``, ``"mps"`` …).
        strict: when ``False``, tensors the model doesn't know are ignored and missing ones keep their random
            initialisation (useful after changing the model code); shapes must always match.

    Returns:
        A :class:`LoadedCheckpoint` with the model in eval mode, its config and the ``extra`` dict.

    Example:
        >>> ckpt = load("runs/tiny/step-100.safetensors")
        >>> ckpt.config.emb_dim, ckpt.extra["step"]
        (64, 100)
    """
    path = Path(path)
    header = _read_header(path)
    cfg, extra = _lab_metadata(path, header)
    dev = _device(device)
    _check_tensors(path, header, _expected_shapes(cfg), strict=strict)
    tensors, _ = load_state_dict_safely(path, device=dev)
    model = _assemble(cfg, tensors, dev)
    return LoadedCheckpoint(model=model, config=cfg, extra=extra, path=path)


def load_state_dict_safely(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read every tensor of a safetensors file after validating its header; never unpickles anything.

    This is the one place both loaders read files, so every check lives here: the file exists, its header
    length is sane (at most 100 MB and inside the file), the header is JSON, every tensor has a known dtype
    and a shape whose byte size equals its stored bytes. Only then does safetensors read it (and validate it
    again).

    Args:
        path: a ``.safetensors`` file.
        device: where to put the tensors.

    Returns:
        ``(tensors, metadata)``: name → tensor, and the header's string metadata (empty if none).
    """
    path = Path(path)
    header = _read_header(path)
    dev = _device(device)
    try:
        tensors = load_file(path, device=str(dev))
    except SafetensorError as err:
        raise _invalid(path, f"safetensors rejected it: {err}") from err
    except OSError as err:
        raise LabError(
            f"Could not read {path} ({err.strerror or err}); check that the file is readable."
        ) from err
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
        >>> checkpoint_info("runs/tiny/step-100.safetensors")["n_parameters"]  # preset "tiny"
        6536704
    """
    path = Path(path)
    header = _read_header(path)
    fmt = header.metadata.get("format")
    config, extra, kind = None, {}, "safetensors"
    if fmt == FORMAT:
        cfg, extra = _lab_metadata(path, header)
        config, kind = cfg.to_dict(), "lab"
    elif (prefix := _hf_prefix(header.shapes)) is not None:
        _hf_block_count(path, _strip(header.shapes, prefix))  # h.0 … h.N-1 without gaps, N within bounds
        kind = "hf-gpt2"
    return {
        "path": str(path),
        "kind": kind,
        "format": fmt,
        "config": config,
        "extra": extra,
        "n_tensors": len(header.tensors),
        "n_parameters": sum(math.prod(shape) for shape in header.shapes.values()),
        "dtypes": sorted({dtype for dtype, _ in header.tensors.values()}),
        "file_size": header.file_size,
    }


def _read_header(path: Path) -> _Header:
    """Parse and validate a safetensors header without trusting any size it declares."""
    if not path.exists():
        raise LabError(f"There is no file at {path}; check the path, or save a model there first.")
    if path.is_dir():
        raise LabError(f"{path} is a folder, not a checkpoint file; pick the .safetensors file inside it.")
    try:
        file_size = path.stat().st_size
        with open(path, "rb") as f:
            start = f.read(8)
            n = int.from_bytes(start, "little") if len(start) == 8 else -1
            # Checked before reading: a hostile file could declare a header of terabytes.
            if n <= 0 or n > min(file_size - 8, _MAX_HEADER_BYTES):
                raise _not_safetensors(path, start, file_size, n)
            raw = f.read(n)
    except OSError as err:
        raise LabError(
            f"Could not read {path} ({err.strerror or err}); check that the file is readable."
        ) from err
    parsed, problem = json_or_problem(raw)  # never raises: deep nesting, 5,000-digit numbers, bad UTF-8 …
    if problem is not None:
        raise _invalid(path, f"its header is not readable JSON: {problem}")
    if not isinstance(parsed, dict):
        raise _invalid(path, "its header is not a JSON object")

    metadata = parsed.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _invalid(path, "its __metadata__ is not a mapping of strings")
    data_size = file_size - 8 - n
    tensors: dict[str, tuple[str, tuple[int, ...]]] = {}
    for name, info in parsed.items():
        tensors[name] = _tensor_entry(path, name, info, data_size)
    return _Header(tensors=tensors, metadata=metadata, file_size=file_size)


def _tensor_entry(path: Path, name: str, info: Any, data_size: int) -> tuple[str, tuple[int, ...]]:
    """Validate one header entry: known dtype, non-negative shape, in-file offsets spanning the right size."""
    if not isinstance(info, dict):
        raise _invalid(path, f"its entry for {shown(name)} is not an object")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in _DTYPE_BYTES:
        raise _invalid(path, f"tensor {shown(name)} has the unsupported data type {shown(dtype)}")
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise _invalid(path, f"tensor {shown(name)} has a malformed shape {shown(shape)}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets)):
        raise _invalid(path, f"tensor {shown(name)} has malformed data offsets {shown(offsets)}")
    begin, end = offsets
    if not begin <= end <= data_size:
        where = f"bytes {_num(begin)}–{_num(end)}"
        raise _invalid(path, f"tensor {shown(name)} points at {where} but the file holds only {data_size}")
    declared = math.prod(shape) * _DTYPE_BYTES[dtype]  # Python ints: no overflow however large the shape
    if declared != end - begin:
        raise _invalid(
            path,
            f"tensor {shown(name)} declares shape {_fmt(shape)} ({_num(declared)} bytes) "
            f"but stores {end - begin:,} bytes",
        )
    return dtype, tuple(shape)


def _is_count(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _not_safetensors(path: Path, start: bytes, file_size: int, n: int) -> LabError:
    """The error for a file whose first 8 bytes are no plausible header length (and names pickles)."""
    if start[:2] == b"PK" or (len(start) >= 2 and start[0] == 0x80 and 2 <= start[1] <= 5):
        return LabError(
            f"{path} looks like a PyTorch pickle (.pt/.bin/.pth) file, which this lab never opens because "
            "unpickling can run arbitrary code; convert it to safetensors first."
        )
    if file_size < 8:
        return _invalid(path, f"it is only {file_size} bytes long")
    return _invalid(path, f"its header claims {n:,} bytes in a file of {file_size:,}")


def _invalid(path: Path, why: str) -> LabError:
    return LabError(
        f"{path} is not a valid safetensors file ({why}); pick a checkpoint saved by this lab or a "
        "Hugging Face model.safetensors."
    )


def _lab_metadata(path: Path, header: _Header) -> tuple[GPTConfig, dict[str, Any]]:
    """The config and extra stored by :func:`save`, with one clear error for each way they can be wrong."""
    fmt = header.metadata.get("format")
    if fmt != FORMAT:
        if _hf_prefix(header.shapes) is not None:
            raise LabError(
                f"{path} holds Hugging Face GPT-2 weights, not a lab checkpoint; load it with "
                "core.checkpoint.load_hf_gpt2 instead."
            )
        if isinstance(fmt, str) and fmt.startswith("llm-scratch-lab/"):
            raise LabError(
                f"{path} was written in format {shown(fmt)}, which this version can't read; update the lab."
            )
        raise LabError(
            f"{path} is a safetensors file without this lab's metadata, so its model configuration is "
            "unknown; pick a checkpoint saved with core.checkpoint.save."
        )
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


def _expected_shapes(cfg: GPTConfig) -> dict[str, tuple[int, ...]]:
    """Name → shape of every tensor a checkpoint of ``cfg`` stores (a tied head is stored once: tok_emb)."""
    one = _meta_model(cfg.replace(n_layers=1))  # every block has the same tensors: plan one, number the rest
    shapes = _repeat_block({name: tuple(t.shape) for name, t in one.state_dict().items()}, "trf_blocks.", cfg)
    if cfg.tie_weights:
        shapes.pop("out_head.weight")
    return shapes


def _repeat_block(shapes: dict[str, tuple[int, ...]], prefix: str, cfg: GPTConfig) -> dict[str, tuple[int, ...]]:
    """``shapes`` of a one-block model, with block ``prefix + "0."``'s entries repeated for all ``cfg.n_layers``.

    Building a model (even on the meta device) costs milliseconds per block, so a header claiming a thousand
    blocks would take seconds; naming the tensors costs nothing.
    """
    first = prefix + "0."
    out: dict[str, tuple[int, ...]] = {}
    for name, shape in shapes.items():
        if name.startswith(first):
            rest = name[len(first) :]
            out.update({f"{prefix}{i}.{rest}": shape for i in range(cfg.n_layers)})
        else:
            out[name] = shape
    return out


def _meta_model(cfg: GPTConfig) -> GPTModel:
    with torch.device("meta"):  # shapes only: no memory, no random init cost
        return GPTModel(cfg)


def _check_tensors(
    path: Path, header: _Header, expected: dict[str, tuple[int, ...]], strict: bool, hf: bool = False
) -> None:
    """Compare the header's tensors with what the config needs; shapes and float dtypes must always match."""
    got = header.shapes
    for name, shape in expected.items():
        if name in got and got[name] != shape:
            fix = (
                "pass a matching config or fix config.json"
                if hf
                else "the file is inconsistent, so re-save it"
            )
            raise LabError(
                f"The checkpoint's {name} has shape {_fmt(got[name])} but the config says {_fmt(shape)}; "
                f"{fix}."
            )
        if name in got and header.tensors[name][0] not in _FLOAT_DTYPES:
            raise LabError(
                f"The checkpoint's {name} holds {header.tensors[name][0]} values, not floats; re-save it."
            )
    missing = sorted(expected.keys() - got.keys())
    unexpected = sorted(got.keys() - expected.keys())
    if strict and missing:
        fix = (
            "it is not a complete GPT-2 checkpoint"
            if hf
            else "pass strict=False to start those from random values"
        )
        raise LabError(
            f"{path.name} lacks {len(missing)} tensor(s) the model needs ({_some(missing)}); {fix}."
        )
    if strict and unexpected:
        fix = "it is not a standard GPT-2 checkpoint" if hf else "pass strict=False to ignore them"
        raise LabError(
            f"{path.name} has {len(unexpected)} tensor(s) the model doesn't have ({_some(unexpected)}); "
            f"{fix}."
        )


def _assemble(cfg: GPTConfig, tensors: dict[str, torch.Tensor], device: torch.device) -> GPTModel:
    """A GPTModel of ``cfg`` holding ``tensors`` (already on ``device`` and shape-checked), in eval mode."""
    expected = _expected_shapes(cfg)
    known = {name: t for name, t in tensors.items() if name in expected}
    if known.keys() == expected.keys():
        # Build on the meta device and adopt the loaded tensors: no random init, no second copy in memory.
        model = _meta_model(cfg)
        model.load_state_dict(known, strict=False, assign=True)
    else:  # strict=False with missing tensors: those keep a real random initialisation
        model = GPTModel(cfg).to(device)
        model.load_state_dict(known, strict=False)
    if cfg.tie_weights:
        model.out_head.weight = model.tok_emb.weight  # one Parameter, as GPTModel.__init__ ties it
    leftover = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if leftover:  # would only happen if GPTModel gained a tensor this module doesn't know about
        raise LabError(f"Internal error: {_some(leftover)} were not loaded; please report this.")
    return model.eval()


def _device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise LabError(f"{shown(device)} is not a device name; use 'cpu', 'cuda' or 'mps'.") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LabError("CUDA was requested but no CUDA GPU is visible; load on 'cpu' instead.")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise LabError("MPS was requested but this machine has no Apple GPU; load on 'cpu' instead.")
    return dev


def _is_tied(model: GPTModel) -> bool:
    a, b = model.out_head.weight, model.tok_emb.weight
    return a is b or (a.device.type != "meta" and a.data_ptr() == b.data_ptr() and a.shape == b.shape)


def _num(n: int) -> str:
    """``1,234``; a number too long for a message (or for ``str``: 4,300 digits) is described instead."""
    return f"{n:,}" if abs(n).bit_length() <= 128 else shown(n)


def _fmt(shape: Any, k: int = 8) -> str:
    """``(2, 3)``; a shape of more than ``k`` dimensions, or with huge ones, is cut so a message stays short."""
    dims = [str(d) if abs(d).bit_length() <= 128 else shown(d) for d in (int(x) for x in list(shape)[:k])]
    return "(" + ", ".join(dims) + (f", … {len(shape) - k} more" if len(shape) > k else "") + ")"


def _some(names: list[str], k: int = 3) -> str:
    """The first ``k`` names (each cut to a readable length) and how many more there are."""
    cut = [n if len(n) <= 60 else n[:59] + "…" for n in names[:k]]
    return ", ".join(cut) + (f" and {len(names) - k} more" if len(names) > k else "")


# ----------------------------------------------------------------------------------------------- Hugging Face


def load_hf_gpt2(
    path_or_dir: str | os.PathLike, device: str | torch.device = "cpu", config: GPTConfig | None = None
) -> GPTModel:
    """Load Hugging Face GPT-2 weights (``model.safetensors``) into a :class:`GPTModel`.

    Keys may carry the ``transformer.`` prefix (``GPT2LMHeadModel.save_pretrained``) or not (the original
    ``openai-community/gpt2`` files); old causal-mask buffers (``attn.bias``, ``attn.masked_bias``) are
    skipped. ``Conv1D`` weights are transposed and ``c_attn`` is split into W_query, W_key, W_value, in that
    order.

    The configuration comes from, in order: ``config`` (its ``qkv_bias`` is forced to ``True``, as GPT-2 has
    those biases); a ``config.json`` beside the weights; or the tensor shapes. Shapes fix every size except
    the number of heads, which then defaults to ``emb_dim // 64`` because every released GPT-2 uses 64-wide
    heads — for other models supply ``config.json`` or ``config``, or the attention would be split wrongly.
    The output head is tied to ``wte`` unless an ``lm_head.weight`` that differs from it is present (or
    ``config`` says ``tie_weights=False``). Dropout is 0: this is for inference and fine-tuning starts from
    here.

    Args:
        path_or_dir: a ``model.safetensors`` file, or a folder holding one (and optionally ``config.json``).
        device: where to put the model.
        config: the architecture to use instead of ``config.json`` or inference.

    Returns:
        The model, in eval mode.

    Example:
        >>> model = load_hf_gpt2("~/models/gpt2")  # folder with model.safetensors + config.json
        >>> model.cfg.n_layers, model.cfg.tie_weights
        (12, True)
    """
    file, hf_config = _hf_files(Path(path_or_dir).expanduser())
    raw = _read_header(file)
    prefix = _hf_prefix(raw.shapes)
    if prefix is None:
        raise LabError(
            f"{file} has no wte.weight, so it is not a GPT-2 checkpoint; pick a GPT-2 model.safetensors."
        )
    entries = {k: v for k, v in _strip(raw.tensors, prefix).items() if not _HF_BUFFER.fullmatch(k)}
    header = _Header(tensors=entries, metadata=raw.metadata, file_size=raw.file_size)
    shapes = header.shapes
    n_blocks = _hf_block_count(file, shapes)  # before any size from a tensor name is trusted

    if config is not None:
        if not isinstance(config, GPTConfig):
            raise LabError(
                f"config must be a GPTConfig, got {type(config).__name__}; leave it out to infer it."
            )
        cfg = config.replace(qkv_bias=True)
    elif hf_config is not None:
        cfg = _cfg_from_hf_json(file.parent / "config.json", hf_config)
    else:
        cfg = _cfg_from_shapes(file, shapes, n_blocks)

    one = _to_hf(_meta_model(cfg.replace(n_layers=1)), tied=True, prefix="")  # one block planned, the rest named
    expected = _repeat_block({k: tuple(t.shape) for k, t in one.items()}, "h.", cfg)
    if "lm_head.weight" in shapes:
        expected["lm_head.weight"] = (cfg.vocab_size, cfg.emb_dim)
    _check_tensors(file, header, expected, strict=True, hf=True)

    dev = _device(device)
    tensors, _ = load_state_dict_safely(file, device=dev)
    hf = {k: v for k, v in _strip(tensors, prefix).items() if k in expected}
    del tensors  # drop the buffers and our reference to the unmapped tensors as early as possible

    head = hf.pop("lm_head.weight", None)
    differs = head is not None and not torch.equal(head, hf["wte.weight"])
    if config is None:
        cfg = cfg.replace(tie_weights=not differs)
    elif cfg.tie_weights and differs:
        raise LabError(
            f"{file} has an lm_head.weight that differs from wte.weight, but the given config ties them; "
            "pass a config with tie_weights=False."
        )
    state = _from_hf(hf, cfg)
    if not cfg.tie_weights:
        # Our own copy when untied: two Parameters sharing memory would train as a strange half-tie.
        state["out_head.weight"] = head if differs else hf["wte.weight"].clone()
    return _assemble(cfg, state, dev)


def _hf_files(path: Path) -> tuple[Path, dict[str, Any] | None]:
    """The weights file and the parsed config.json beside it (``None`` when there is none)."""
    if path.is_dir():
        file = path / "model.safetensors"
        if not file.exists():
            if (path / "model.safetensors.index.json").exists():
                raise LabError(
                    f"{path} holds a sharded checkpoint, which this lab can't load; use a single file."
                )
            if any((path / name).exists() for name in ("pytorch_model.bin", "model.pt", "pytorch_model.pt")):
                raise LabError(
                    f"{path} only has a pickle (.bin/.pt) checkpoint, which this lab never opens because "
                    "unpickling can run arbitrary code; download or convert its model.safetensors."
                )
            raise LabError(f"{path} has no model.safetensors; pick the folder that holds the GPT-2 weights.")
    elif path.exists():
        file = path
    else:
        raise LabError(f"There is no file or folder at {path}; check the path.")
    cfg_path = file.parent / "config.json"
    if not cfg_path.is_file():
        return file, None
    try:
        if cfg_path.stat().st_size > _MAX_HF_CONFIG_BYTES:
            raise LabError(f"{cfg_path} is larger than 1 MB, far too big for a GPT-2 config.json; fix or remove it.")
        text = cfg_path.read_bytes()
    except OSError as err:
        raise LabError(f"Could not read {cfg_path} ({err.strerror or err}); fix or remove it.") from err
    data = parse_json_safely(text, str(cfg_path), "fix or remove it")
    if not isinstance(data, dict):
        raise LabError(f"{cfg_path} is not a JSON object; fix or remove it.")
    return file, data


def _hf_prefix(shapes: dict[str, Any]) -> str | None:
    """``"transformer."`` or ``""`` for HF GPT-2 key layouts, ``None`` when the file isn't GPT-2."""
    if "transformer.wte.weight" in shapes:
        return "transformer."
    if "wte.weight" in shapes:
        return ""
    return None


def _strip(items: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Drop ``prefix`` from every key that has it; ``lm_head.weight`` sits outside ``transformer.``."""
    return {(k[len(prefix) :] if prefix and k.startswith(prefix) else k): v for k, v in items.items()}


def _cfg_from_hf_json(where: Path, d: dict[str, Any]) -> GPTConfig:
    """Our config from a Hugging Face GPT-2 config.json, refusing variants GPTModel can't reproduce."""
    if d.get("model_type", "gpt2") != "gpt2":
        raise LabError(f"{where} describes a {shown(d['model_type'])} model, not GPT-2; pick a GPT-2 checkpoint.")
    act = d.get("activation_function", "gelu_new")
    if not isinstance(act, str) or act not in _TANH_GELUS:
        raise LabError(
            f"{where} uses the {shown(act)} activation but GPTModel has tanh-GELU; pick a standard GPT-2."
        )
    if d.get("scale_attn_by_inverse_layer_idx") or d.get("scale_attn_weights", True) is False:
        raise LabError(f"{where} scales attention differently from GPT-2, which GPTModel can't reproduce.")
    try:
        emb, vocab, heads, layers = (int(d[k]) for k in ("n_embd", "vocab_size", "n_head", "n_layer"))
        context = int(d.get("n_positions", d.get("n_ctx", 1024)))
        inner = int(d.get("n_inner") or 4 * emb)
        eps = float(d.get("layer_norm_epsilon", 1e-5))
    except KeyError as err:
        raise LabError(
            f"{where} has no {err.args[0]!r} entry; fix it or remove it to infer sizes from weights."
        ) from err
    except (TypeError, ValueError, OverflowError) as err:  # OverflowError: int(Infinity)
        raise LabError(f"{where} has a malformed size ({shown(str(err), limit=80)}); fix it or remove it.") from err
    if emb <= 0 or inner % emb:
        raise LabError(
            f"{where} has n_inner={_num(inner)}, not a multiple of n_embd={_num(emb)}, which GPTModel needs."
        )
    return GPTConfig(
        vocab_size=vocab,
        context_length=context,
        emb_dim=emb,
        n_heads=heads,
        n_layers=layers,
        drop_rate=0.0,
        qkv_bias=True,
        tie_weights=True,
        ff_mult=inner // emb,
        ln_eps=eps,
    )


def _hf_block_count(file: Path, shapes: dict[str, Any]) -> int:
    """How many transformer blocks an HF GPT-2 file holds, from the block numbers in its tensor names.

    The numbers must be exactly ``0 … N-1`` (no gaps) with ``N`` within :data:`~core.config.MAX_SIZES`, so a
    single tensor named ``h.999999999.ln_1.weight`` can't make anyone plan a billion blocks. ``0`` when the
    file has no ``h.N.`` tensor at all.
    """
    limit = MAX_SIZES["n_layers"]
    numbers = {m.group(1) for k in shapes if (m := _HF_BLOCK.match(k))}
    if any(len(n) > len(str(limit)) for n in numbers):  # checked on the text: int() of 5,000 digits raises
        big = max(numbers, key=len)
        name = big if len(big) <= 12 else big[:12] + "…"
        raise LabError(
            f"{file} names a block h.{name}, but this lab loads at most {limit:,} blocks, numbered from h.0; "
            "pick an undamaged GPT-2 checkpoint."
        )
    blocks = {int(n) for n in numbers}
    if blocks and blocks != set(range(len(blocks))):
        gap = min(set(range(max(blocks) + 1)) - blocks)
        raise LabError(
            f"{file} has tensors for block h.{max(blocks)} but none for h.{gap}; GPT-2 blocks are numbered "
            "h.0, h.1, … without gaps, so pick a complete checkpoint."
        )
    if len(blocks) > limit:
        raise LabError(
            f"{file} has {len(blocks):,} blocks, more than the {limit:,} this lab loads; pick a smaller model."
        )
    return len(blocks)


def _cfg_from_shapes(file: Path, shapes: dict[str, tuple[int, ...]], n_blocks: int) -> GPTConfig:
    """Infer the configuration from tensor shapes alone (heads: 64 wide, as in every released GPT-2)."""
    needed = ("wte.weight", "wpe.weight", "h.0.mlp.c_fc.weight")
    if not n_blocks or any(k not in shapes or len(shapes[k]) != 2 for k in needed):
        raise LabError(
            f"{file} doesn't have GPT-2's layout (wte, wpe, h.0.mlp.c_fc …); pick a GPT-2 checkpoint."
        )
    vocab, emb = shapes["wte.weight"]
    hidden = shapes["h.0.mlp.c_fc.weight"][1]
    if emb == 0 or emb % 64 or hidden % emb:
        raise LabError(
            f"{file} is {emb} wide with a {hidden}-wide MLP, so its head count can't be inferred; put its "
            "config.json beside it or pass config=GPTConfig(...)."
        )
    return GPTConfig(
        vocab_size=vocab,
        context_length=shapes["wpe.weight"][0],
        emb_dim=emb,
        n_heads=emb // 64,
        n_layers=n_blocks,  # numbered 0 … n_blocks-1 without gaps (checked by _hf_block_count)
        drop_rate=0.0,
        qkv_bias=True,
        tie_weights=True,
        ff_mult=hidden // emb,
    )


def _from_hf(hf: dict[str, torch.Tensor], cfg: GPTConfig) -> dict[str, torch.Tensor]:
    """Rename (and transpose / split) HF GPT-2 tensors to GPTModel's state-dict names."""
    c = cfg.emb_dim
    state = {"tok_emb.weight": hf["wte.weight"], "pos_emb.weight": hf["wpe.weight"]}
    for i in range(cfg.n_layers):
        h, b = f"h.{i}.", f"trf_blocks.{i}."
        # Conv1D keeps (in, out); nn.Linear keeps (out, in). After .t(), Q, K, V are consecutive row blocks.
        q, k, v = hf[h + "attn.c_attn.weight"].t().split(c, dim=0)  # (C, 3C) -> (3C, C) -> 3 × (C, C)
        qb, kb, vb = hf[h + "attn.c_attn.bias"].split(c)  # (3C,) -> 3 × (C,)
        for name, w, bias in (("W_query", q, qb), ("W_key", k, kb), ("W_value", v, vb)):
            state[f"{b}att.{name}.weight"] = w.contiguous()
            state[f"{b}att.{name}.bias"] = bias.clone()  # own storage, so save() can write it later
        state[b + "att.out_proj.weight"] = hf[h + "attn.c_proj.weight"].t().contiguous()  # (C, C)
        state[b + "att.out_proj.bias"] = hf[h + "attn.c_proj.bias"]
        state[b + "ff.layers.0.weight"] = hf[h + "mlp.c_fc.weight"].t().contiguous()  # (C, F) -> (F, C)
        state[b + "ff.layers.0.bias"] = hf[h + "mlp.c_fc.bias"]
        state[b + "ff.layers.2.weight"] = hf[h + "mlp.c_proj.weight"].t().contiguous()  # (F, C) -> (C, F)
        state[b + "ff.layers.2.bias"] = hf[h + "mlp.c_proj.bias"]
        for ours, theirs in (("norm1", "ln_1"), ("norm2", "ln_2")):
            state[f"{b}{ours}.scale"] = hf[f"{h}{theirs}.weight"]
            state[f"{b}{ours}.shift"] = hf[f"{h}{theirs}.bias"]
    state["final_norm.scale"], state["final_norm.shift"] = hf["ln_f.weight"], hf["ln_f.bias"]
    return state


def _to_hf(model: GPTModel, tied: bool, prefix: str = "transformer.") -> dict[str, torch.Tensor]:
    """GPTModel's tensors under HF GPT-2 names and layouts (the inverse of :func:`_from_hf`)."""
    cfg = model.cfg
    p = prefix
    out = {p + "wte.weight": model.tok_emb.weight, p + "wpe.weight": model.pos_emb.weight}
    for i, block in enumerate(model.trf_blocks):
        h, att = f"{p}h.{i}.", block.att
        linears = (att.W_query, att.W_key, att.W_value, att.out_proj, block.ff.layers[0], block.ff.layers[2])
        if not all(type(m) is nn.Linear for m in linears):
            raise LabError(
                "The model has wrapped layers (LoRA?) that GPT-2 doesn't know; merge them into the base "
                "weights first (core.lora.merge_lora)."
            )
        qkv = torch.cat(
            [att.W_query.weight, att.W_key.weight, att.W_value.weight], dim=0
        )  # 3 × (C, C) -> (3C, C)
        out[h + "attn.c_attn.weight"] = qkv.t()  # Conv1D layout (C, 3C)
        if cfg.qkv_bias:
            out[h + "attn.c_attn.bias"] = torch.cat([att.W_query.bias, att.W_key.bias, att.W_value.bias])
        else:  # HF GPT-2 always has these biases; zeros make it compute exactly what our bias-free layers do
            out[h + "attn.c_attn.bias"] = att.W_query.weight.new_zeros(3 * cfg.emb_dim)
        out[h + "attn.c_proj.weight"] = att.out_proj.weight.t()  # (C, C)
        out[h + "attn.c_proj.bias"] = att.out_proj.bias
        out[h + "mlp.c_fc.weight"] = block.ff.layers[0].weight.t()  # (F, C) -> (C, F)
        out[h + "mlp.c_fc.bias"] = block.ff.layers[0].bias
        out[h + "mlp.c_proj.weight"] = block.ff.layers[2].weight.t()  # (C, F) -> (F, C)
        out[h + "mlp.c_proj.bias"] = block.ff.layers[2].bias
        out[h + "ln_1.weight"], out[h + "ln_1.bias"] = block.norm1.scale, block.norm1.shift
        out[h + "ln_2.weight"], out[h + "ln_2.bias"] = block.norm2.scale, block.norm2.shift
    out[p + "ln_f.weight"], out[p + "ln_f.bias"] = model.final_norm.scale, model.final_norm.shift
    if not tied:
        out["lm_head.weight"] = model.out_head.weight
    return out


def export_hf_gpt2(model: GPTModel, out_dir: str | os.PathLike) -> Path:
    """Write ``config.json`` + ``model.safetensors`` that ``transformers.GPT2LMHeadModel`` loads as is.

    The exported model gives the same logits: ``GPT2LMHeadModel.from_pretrained(out_dir)``. A model without
    query/key/value biases gets zero ``c_attn`` biases (HF GPT-2 always has them); an untied output head is
    written as ``lm_head.weight``. LoRA layers must be merged first.

    Args:
        model: the model to export.
        out_dir: the folder to write (created if needed; the two files are replaced atomically).

    Returns:
        ``out_dir`` as a :class:`~pathlib.Path`.

    Example:
        >>> export_hf_gpt2(model, "exports/my-gpt")
        PosixPath('exports/my-gpt')
    """
    if not isinstance(model, GPTModel):
        raise LabError(f"export_hf_gpt2() needs a GPTModel, got {type(model).__name__}.")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise LabError(f"{out_dir} is a file; give a folder to write config.json and model.safetensors into.")
    cfg, tied = model.cfg, _is_tied(model)
    with torch.no_grad():
        tensors = {name: _standalone(t) for name, t in _to_hf(model, tied).items()}
    dtype = str(model.tok_emb.weight.dtype).removeprefix("torch.")
    gpt2_vocab = cfg.vocab_size == GPT2_VOCAB_SIZE
    hf_config = {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "vocab_size": cfg.vocab_size,
        "n_positions": cfg.context_length,
        "n_embd": cfg.emb_dim,
        "n_layer": cfg.n_layers,
        "n_head": cfg.n_heads,
        "n_inner": cfg.ff_mult * cfg.emb_dim,
        "activation_function": "gelu_new",
        "layer_norm_epsilon": cfg.ln_eps,
        "resid_pdrop": cfg.drop_rate,
        "embd_pdrop": cfg.drop_rate,
        "attn_pdrop": cfg.drop_rate,
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "tie_word_embeddings": tied,
        "use_cache": True,
        # <|endoftext|> exists only in GPT-2's own vocabulary; elsewhere an out-of-range id would confuse.
        "bos_token_id": GPT2_VOCAB_SIZE - 1 if gpt2_vocab else None,
        "eos_token_id": GPT2_VOCAB_SIZE - 1 if gpt2_vocab else None,
        "dtype": dtype,
    }
    text = json.dumps(hf_config, indent=2, sort_keys=True) + "\n"
    # transformers refuses safetensors files whose "format" metadata isn't "pt".
    _atomic_write(
        out_dir / "model.safetensors", lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"})
    )
    _atomic_write(out_dir / "config.json", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return out_dir
