"""The lab's checkpoints (core.checkpoint): round trips, atomic saves, metadata and shape checks."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from core import checkpoint as ck
from core.errors import LabError
from core.model import GPTModel, count_parameters
from tests.safetensors_helpers import _ids, _noisy, _write_raw

# ---------------------------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("tie", [False, True])
def test_save_load_round_trip(tmp_path, tiny_cfg, tie):
    torch.manual_seed(0)
    model = _noisy(GPTModel(tiny_cfg.replace(tie_weights=tie)))
    extra = {"step": 7, "losses": [4.5, 3.25], "tokenizer": "gpt2", "nested": {"ok": True}}
    path = ck.save(model, tmp_path / "runs" / "a" / "model.safetensors", extra=extra)  # parents are created

    loaded = ck.load(path)
    assert loaded.path == path and loaded.config == model.cfg and loaded.extra == extra
    assert not loaded.model.training and all(p.requires_grad for p in loaded.model.parameters())
    a, b = model.state_dict(), loaded.model.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    x = _ids(tiny_cfg.vocab_size)
    with torch.no_grad():
        assert torch.equal(model(x), loaded.model(x))
    assert count_parameters(loaded.model) == count_parameters(model)
    tied_after = loaded.model.out_head.weight.data_ptr() == loaded.model.tok_emb.weight.data_ptr()
    assert tied_after == tie
    if tie:
        assert loaded.model.out_head.weight is loaded.model.tok_emb.weight
        assert "out_head.weight" not in load_file(path)  # stored once


def test_save_records_real_tying_and_overwrites(tmp_path, tiny_model):
    """A model tied by hand is saved as tied; a second save replaces the first."""
    path = tmp_path / "m.safetensors"
    ck.save(tiny_model, path, extra={"v": 1})
    tiny_model.out_head.weight = tiny_model.tok_emb.weight
    ck.save(tiny_model, path, extra={"v": 2})
    loaded = ck.load(path)
    assert loaded.extra == {"v": 2} and loaded.config.tie_weights
    assert loaded.model.out_head.weight is loaded.model.tok_emb.weight


def test_checkpoint_info_reads_header(tmp_path, tiny_model):
    path = ck.save(tiny_model, tmp_path / "m.safetensors", extra={"step": 3})
    info = ck.checkpoint_info(path)
    assert info["kind"] == "lab" and info["format"] == ck.FORMAT
    assert info["config"] == tiny_model.cfg.to_dict() and info["extra"] == {"step": 3}
    assert info["n_parameters"] == count_parameters(tiny_model)
    assert info["n_tensors"] == len(tiny_model.state_dict())
    assert info["file_size"] == path.stat().st_size and info["dtypes"] == ["F32"]


def test_strict_false_ignores_unknown_and_keeps_missing_random(tmp_path, tiny_model):
    state = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    state["lora.extra"] = torch.zeros(3)
    dropped = state.pop("final_norm.shift")
    meta = {"format": ck.FORMAT, "config": tiny_model.cfg.to_json(), "extra": "{}"}
    path = tmp_path / "odd.safetensors"
    save_file(state, path, metadata=meta)
    with pytest.raises(LabError, match="lacks 1 tensor"):
        ck.load(path)
    loaded = ck.load(path, strict=False).model
    assert torch.equal(loaded.tok_emb.weight, tiny_model.tok_emb.weight)
    assert loaded.final_norm.shift.shape == dropped.shape and not loaded.final_norm.shift.is_meta
    del state["lora.extra"]
    state["final_norm.shift"] = dropped
    save_file(state | {"lora.extra": torch.zeros(3)}, path, metadata=meta)
    with pytest.raises(LabError, match="doesn't have"):
        ck.load(path)
    assert torch.equal(ck.load(path, strict=False).model.final_norm.shift, dropped)


# ---------------------------------------------------------------------------------------------- atomic write


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), RuntimeError("killed")])
def test_failed_save_keeps_previous_checkpoint(tmp_path, tiny_model, monkeypatch, error):
    path = ck.save(tiny_model, tmp_path / "model.safetensors", extra={"v": "old"})
    before = path.read_bytes()

    def half_write(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(before[: len(before) // 2])  # a torn write, as a crash would leave it
        raise error

    monkeypatch.setattr(ck, "save_file", half_write)
    with pytest.raises(LabError if isinstance(error, OSError) else RuntimeError):
        ck.save(GPTModel(tiny_model.cfg), path, extra={"v": "new"})
    assert path.read_bytes() == before
    assert ck.load(path).extra == {"v": "old"}
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]  # no temp file left behind


# ---------------------------------------------------------------------------------------------- bad input


def test_safetensors_own_validation_becomes_lab_error(tmp_path):
    """Sizes and bounds pass our checks, but the tensors leave a gap; safetensors itself refuses the file."""
    f = tmp_path / "gap.safetensors"
    header = {
        "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
        "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]},
    }
    _write_raw(f, header, bytes(12))
    with pytest.raises(LabError, match="safetensors rejected it"):
        ck.load_state_dict_safely(f)


def test_missing_file_and_folder(tmp_path):
    for fn in (ck.load, ck.checkpoint_info, ck.load_state_dict_safely):
        with pytest.raises(LabError, match="There is no file"):
            fn(tmp_path / "nope.safetensors")
    with pytest.raises(LabError, match="is a folder"):
        ck.load(tmp_path)


def test_safetensors_without_lab_metadata(tmp_path):
    f = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, f)
    with pytest.raises(LabError, match="without this lab's metadata"):
        ck.load(f)
    assert ck.checkpoint_info(f)["config"] is None
    save_file({"transformer.wte.weight": torch.zeros(4, 2)}, f, metadata={"format": "pt"})
    with pytest.raises(LabError, match="load_hf_gpt2"):
        ck.load(f)
    assert ck.checkpoint_info(f)["kind"] == "hf-gpt2"


def test_shape_mismatch_with_config(tmp_path, tiny_model, tiny_cfg):
    state = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    state["tok_emb.weight"] = torch.zeros(100, tiny_cfg.emb_dim)
    f = tmp_path / "bad.safetensors"
    save_file(state, f, metadata={"format": ck.FORMAT, "config": tiny_cfg.to_json(), "extra": "{}"})
    message = r"tok_emb.weight has shape \(100, 32\) but the config says \(101, 32\)"
    with pytest.raises(LabError, match=message):
        ck.load(f)
    with pytest.raises(LabError, match="config says"):
        ck.save(tiny_model, tmp_path / "m.safetensors", config=tiny_cfg.replace(vocab_size=100))
    assert not (tmp_path / "m.safetensors").exists()


def test_bad_extra_config_and_device(tmp_path, tiny_model):
    with pytest.raises(LabError, match="JSON"):
        ck.save(tiny_model, tmp_path / "m.safetensors", extra={"loss": torch.tensor(1.0)})
    with pytest.raises(LabError, match="must be a dict"):
        ck.save(tiny_model, tmp_path / "m.safetensors", extra=[1, 2])
    with pytest.raises(LabError, match="GPTConfig"):
        ck.save(tiny_model, tmp_path / "m.safetensors", config={"emb_dim": 32})
    assert list(tmp_path.iterdir()) == []
    path = ck.save(tiny_model, tmp_path / "m.safetensors")
    with pytest.raises(LabError, match="not a device name"):
        ck.load(path, device="warp-drive")
    if not torch.cuda.is_available():
        with pytest.raises(LabError, match="CUDA"):
            ck.load(path, device="cuda")
    with pytest.raises(LabError, match="not a GPT-2 checkpoint"):
        ck.load_hf_gpt2(path)


# -------------------------------------------------------------------------------- hostile sizes and names


@pytest.mark.parametrize("tie", [False, True])
@pytest.mark.parametrize("n_layers", [1, 3])
def test_expected_shapes_name_every_block_without_building_them(tiny_cfg, tie, n_layers):
    """The shape plan comes from one planned block, numbered n times; it must equal a whole model's."""
    cfg = tiny_cfg.replace(n_layers=n_layers, tie_weights=tie)
    with torch.device("meta"):
        full = {k: tuple(v.shape) for k, v in GPTModel(cfg).state_dict().items()}
    if tie:
        full.pop("out_head.weight")
    assert ck._expected_shapes(cfg) == full


def test_header_claiming_the_most_blocks_is_checked_fast(tmp_path, tiny_cfg):
    f = tmp_path / "m.safetensors"
    meta = {"format": ck.FORMAT, "config": tiny_cfg.replace(n_layers=1024).to_json(), "extra": "{}"}
    _write_raw(f, {"__metadata__": meta, "tok_emb.weight": {"dtype": "F32", "shape": [2, 2],
                                                           "data_offsets": [0, 16]}}, bytes(16))
    with pytest.raises(LabError, match="shape"):
        ck.load(f)
    meta["config"] = json.dumps({**tiny_cfg.to_dict(), "n_layers": 10**6})
    _write_raw(f, {"__metadata__": meta}, b"")
    with pytest.raises(LabError, match="n_layers must be at most 1,024"):
        ck.checkpoint_info(f)


