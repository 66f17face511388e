"""Check a safetensors file from its header alone, before any tensor is read (and never unpickle anything).

A safetensors file is an 8-byte little-endian header length, a JSON header (tensor name → dtype, shape and byte
offsets, plus an optional ``__metadata__`` string map), then the raw tensor bytes. :func:`read_header` trusts
none of the sizes it declares: the header length must fit inside the file (and under 100 MB), every tensor must
have a known dtype and a shape whose byte size equals the bytes its offsets span inside the file. So a hostile or
truncated file fails with one clear :class:`~core.errors.LabError` instead of allocating gigabytes, and a pickle
(``.pt``/``.bin``) is named as such. :mod:`core.checkpoint` and :mod:`core.hf_gpt2` both read files through here.

Example:
    >>> import tempfile
    >>> from safetensors.torch import save_file
    >>> import torch
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     save_file({"w": torch.zeros(2, 3)}, f"{folder}/w.safetensors")
    ...     read_header(Path(folder) / "w.safetensors").shapes
    {'w': (2, 3)}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import LabError, json_or_problem, shown

MAX_TENSORS = 100_000  # far beyond any GPT (GPT-2 XL: 581); a longer list is a hostile header
MAX_HEADER_BYTES = 100 * 1024 * 1024
"""A real header is a few kB per hundred tensors; anything near this is hostile or corrupt."""
DTYPE_BYTES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
    "U64": 8, "U32": 4, "U16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
}  # fmt: skip
"""Bytes per element of the safetensors dtypes torch can hold; anything else is refused before loading."""
FLOAT_DTYPES = frozenset({"F64", "F32", "F16", "BF16"})


@dataclass(frozen=True)
class Header:
    """The parsed, validated safetensors header: tensor name → (dtype, shape), metadata and file size."""

    tensors: dict[str, tuple[str, tuple[int, ...]]]
    metadata: dict[str, str]
    file_size: int

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Tensor name → shape."""
        return {name: shape for name, (_, shape) in self.tensors.items()}

    @property
    def n_parameters(self) -> int:
        """How many numbers the file stores (a tied weight, stored once, counts once)."""
        return sum(math.prod(shape) for shape in self.shapes.values())


def read_header(path: Path) -> Header:
    """Parse and validate a safetensors header without trusting any size it declares.

    Raises:
        LabError: no such file, a folder, a pickle, or any inconsistency (one sentence naming it).
    """
    if not path.exists():
        raise LabError(f"There is no file at {path}; check the path, or save a model there first.")
    if path.is_dir():
        raise LabError(f"{path} is a folder, not a checkpoint file; pick the .safetensors file inside it.")
    if not path.is_file():  # a FIFO or a device would block the read forever, or never end
        raise LabError(f"{path} is not a regular file (a pipe or a device?); give the path of a .safetensors file.")
    file_size, n, raw = _raw_header(path)
    if raw.count(b'"data_offsets"') > MAX_TENSORS:  # counted before parsing: parsing a million entries is slow
        raise invalid(path, f"its header lists over {MAX_TENSORS:,} tensors (GPT-2 XL has under 600)")
    parsed, problem = json_or_problem(raw)  # never raises: deep nesting, 5,000-digit numbers, bad UTF-8 …
    if problem is not None:
        raise invalid(path, f"its header is not readable JSON: {problem}")
    if not isinstance(parsed, dict):
        raise invalid(path, "its header is not a JSON object")
    metadata = parsed.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise invalid(path, "its __metadata__ is not a mapping of strings")
    if len(parsed) > MAX_TENSORS:
        raise invalid(path, f"its header lists {len(parsed):,} tensors (GPT-2 XL has under 600)")
    data_size = file_size - 8 - n
    tensors = {name: _tensor_entry(path, name, info, data_size) for name, info in parsed.items()}
    _check_no_overlap(path, parsed)
    return Header(tensors=tensors, metadata=metadata, file_size=file_size)


def _check_no_overlap(path: Path, entries: dict[str, Any]) -> None:
    """Tensors may not share bytes: safetensors itself refuses such a file when it loads it."""
    spans = sorted((info["data_offsets"][0], info["data_offsets"][1], name) for name, info in entries.items())
    for (_, end, first), (begin, _, second) in zip(spans, spans[1:]):
        if begin < end:
            raise invalid(path, f"tensors {shown(first)} and {shown(second)} overlap in the file")


def _raw_header(path: Path) -> tuple[int, int, bytes]:
    """``(file size, header length, header bytes)``, the length checked before anything is read."""
    try:
        file_size = path.stat().st_size
        with open(path, "rb") as f:
            start = f.read(8)
            n = int.from_bytes(start, "little") if len(start) == 8 else -1
            # Checked before reading: a hostile file could declare a header of terabytes.
            if n <= 0 or n > min(file_size - 8, MAX_HEADER_BYTES):
                raise _not_safetensors(path, start, file_size, n)
            return file_size, n, f.read(n)
    except OSError as err:
        raise LabError(
            f"Could not read {path} ({err.strerror or err}); check that the file is readable."
        ) from err


def _tensor_entry(path: Path, name: str, info: Any, data_size: int) -> tuple[str, tuple[int, ...]]:
    """Validate one header entry: known dtype, non-negative shape, in-file offsets spanning the right size."""
    if not isinstance(info, dict):
        raise invalid(path, f"its entry for {shown(name)} is not an object")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in DTYPE_BYTES:
        raise invalid(path, f"tensor {shown(name)} has the unsupported data type {shown(dtype)}")
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise invalid(path, f"tensor {shown(name)} has a malformed shape {shown(shape)}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets)):
        raise invalid(path, f"tensor {shown(name)} has malformed data offsets {shown(offsets)}")
    begin, end = offsets
    if not begin <= end <= data_size:
        where = f"bytes {fmt_count(begin)}–{fmt_count(end)}"
        raise invalid(path, f"tensor {shown(name)} points at {where} but the file holds only {data_size}")
    declared = math.prod(shape) * DTYPE_BYTES[dtype]  # Python ints: no overflow however large the shape
    if declared != end - begin:
        raise invalid(
            path,
            f"tensor {shown(name)} declares shape {fmt_shape(shape)} ({fmt_count(declared)} bytes) "
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
        return invalid(path, f"it is only {file_size} bytes long")
    return invalid(path, f"its header claims {n:,} bytes in a file of {file_size:,}")


def invalid(path: Path, why: str) -> LabError:
    """The one sentence for a file that is not valid safetensors, saying ``why``."""
    return LabError(
        f"{path} is not a valid safetensors file ({why}); pick a checkpoint saved by this lab or a "
        "Hugging Face model.safetensors."
    )


# -------------------------------------------------------------------------------- short, safe message parts
def fmt_count(n: int) -> str:
    """``1,234``; a number too long for a message (or for ``str``: 4,300 digits) is described instead.

    Example:
        >>> fmt_count(1234)
        '1,234'
    """
    return f"{n:,}" if abs(n).bit_length() <= 128 else shown(n)


def fmt_shape(shape: Any, k: int = 8) -> str:
    """``(2, 3)``; a shape of more than ``k`` dimensions, or with huge ones, is cut so a message stays short.

    Example:
        >>> fmt_shape([2, 3]), fmt_shape([1] * 10)
        ('(2, 3)', '(1, 1, 1, 1, 1, 1, 1, 1, … 2 more)')
    """
    dims = [str(d) if abs(d).bit_length() <= 128 else shown(d) for d in (int(x) for x in list(shape)[:k])]
    return "(" + ", ".join(dims) + (f", … {len(shape) - k} more" if len(shape) > k else "") + ")"


def fmt_names(names: list[str], k: int = 3) -> str:
    """The first ``k`` names (each cut to a readable length) and how many more there are.

    Example:
        >>> fmt_names(["a", "b", "c", "d", "e"])
        'a, b, c and 2 more'
    """
    cut = [n if len(n) <= 60 else n[:59] + "…" for n in names[:k]]
    return ", ".join(cut) + (f" and {len(names) - k} more" if len(names) > k else "")
