"""The safetensors header check (core.safetensors_check): hostile and damaged files fail fast, in one sentence."""

from __future__ import annotations

import json
import os
import pickle
import random
import struct
import time

import pytest
import torch
from safetensors.torch import save_file

from core import checkpoint as ck
from core import hf_gpt2 as hg
from core.errors import LabError
from core.safetensors_check import fmt_names, fmt_shape, read_header
from tests.safetensors_helpers import _write_raw


def test_bad_files_raise_lab_error_without_allocating(tmp_path):
    resource = pytest.importorskip("resource")
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    f = tmp_path / "x.safetensors"
    cases = {
        "pickle": pickle.dumps({"weights": [1.0, 2.0]}),
        "torch zip": b"PK\x03\x04" + bytes(200),
        "random": random.Random(0).randbytes(4096),
        "short": b"\x01\x02",
        "2^40 header": struct.pack("<Q", 2**40) + b"{}",
        "not json": struct.pack("<Q", 4) + b"abcd",
        "json list": struct.pack("<Q", 2) + b"[]",
    }
    expected = {"pickle": "pickle", "torch zip": "pickle"}
    for name, blob in cases.items():
        f.write_bytes(blob)
        for fn in (ck.load, ck.load_state_dict_safely, ck.checkpoint_info, hg.load_hf_gpt2):
            with pytest.raises(LabError, match=expected.get(name, "not a valid safetensors file")):
                fn(f)

    # A tensor declaring 40 GB backed by 16 bytes, and one pointing past the end of the file.
    _write_raw(f, {"w": {"dtype": "F32", "shape": [100000, 100000], "data_offsets": [0, 16]}}, bytes(16))
    with pytest.raises(LabError, match=r"declares shape \(100000, 100000\)"):
        ck.load_state_dict_safely(f)
    _write_raw(f, {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, bytes(8))
    with pytest.raises(LabError, match="not a valid safetensors file"):
        ck.checkpoint_info(f)
    _write_raw(f, {"w": {"dtype": "Q99", "shape": [1], "data_offsets": [0, 4]}}, bytes(4))
    with pytest.raises(LabError, match="unsupported data type"):
        ck.load_state_dict_safely(f)
    peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert peak_after - peak_before < 200 * 1024  # kB on Linux: nothing near the declared gigabytes




def test_read_header_reports_shapes_metadata_and_sizes_without_reading_tensors(tmp_path):
    f = tmp_path / "w.safetensors"
    save_file({"a": torch.zeros(2, 3), "b": torch.zeros(4, dtype=torch.int8)}, f, metadata={"k": "v"})
    header = read_header(f)
    assert header.shapes == {"a": (2, 3), "b": (4,)}
    assert header.tensors["a"][0] == "F32" and header.tensors["b"][0] == "I8"
    assert header.metadata == {"k": "v"} and header.file_size == f.stat().st_size
    assert header.n_parameters == 10


@pytest.mark.parametrize("entry, match", [
    ({"dtype": "F32", "shape": [-1], "data_offsets": [0, 8]}, "malformed shape"),
    ({"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}, "malformed shape"),
    ({"dtype": "F32", "shape": [1], "data_offsets": [4]}, "malformed data offsets"),
    ({"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}, "file holds only"),
    ({"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}, r"declares shape \(2\) \(8 bytes\) but stores 4"),
    ("not an object", "is not an object"),
])  # fmt: skip
def test_each_bad_entry_is_named(tmp_path, entry, match):
    f = tmp_path / "bad.safetensors"
    _write_raw(f, {"w": entry}, bytes(8))
    with pytest.raises(LabError, match=match) as info:
        read_header(f)
    assert "not a valid safetensors file" in str(info.value)


def test_metadata_must_be_strings_and_folders_are_refused(tmp_path):
    f = tmp_path / "m.safetensors"
    _write_raw(f, {"__metadata__": {"format": 1}})
    with pytest.raises(LabError, match="__metadata__ is not a mapping of strings"):
        read_header(f)
    with pytest.raises(LabError, match="is a folder"):
        read_header(tmp_path)
    with pytest.raises(LabError, match="There is no file"):
        read_header(tmp_path / "nope.safetensors")


def test_message_parts_stay_short():
    assert fmt_shape([2, 3]) == "(2, 3)"
    assert fmt_shape([1] * 12) == "(1, 1, 1, 1, 1, 1, 1, 1, … 4 more)"
    assert len(fmt_shape([10**5000])) < 60
    assert fmt_names(["x" * 100]) == "x" * 59 + "…"
    assert fmt_names(list("abcde"), k=2) == "a, b and 3 more"


def _header_file(path, header: dict, data: bytes = b"") -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + data)


def test_overlapping_tensors_are_refused_from_the_header(tmp_path):
    path = tmp_path / "overlap.safetensors"
    _header_file(path, {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                        "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, bytes(12))
    with pytest.raises(LabError, match="tensors 'a' and 'b' overlap"):
        read_header(path)


def test_a_million_entry_header_is_refused_quickly(tmp_path):
    path = tmp_path / "many.safetensors"
    _header_file(path, {f"t{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for i in range(1_000_000)})
    start = time.perf_counter()
    with pytest.raises(LabError, match="lists over 100,000 tensors"):
        read_header(path)
    assert time.perf_counter() - start < 1.0


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this system")
def test_a_named_pipe_is_refused_instead_of_blocking(tmp_path):
    fifo = tmp_path / "model.safetensors"
    os.mkfifo(fifo)
    with pytest.raises(LabError, match="is not a regular file"):
        read_header(fifo)
