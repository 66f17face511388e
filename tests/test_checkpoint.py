"""Checkpoints: safetensors round trips, Hugging Face GPT-2 parity both ways, hostile files, atomic writes."""

from __future__ import annotations

import json
import pickle
import random
import shutil
import struct

import pytest
import torch
from safetensors.torch import load_file, save_file

from core import checkpoint as ck
from core.config import GPTConfig
from core.errors import LabError
from core.model import GPTModel, count_parameters


def _noisy(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Perturb every parameter so norms and biases aren't 1/0 and any mapping mistake shows in the logits."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    return model.eval()


def _ids(vocab: int, t: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, vocab, (2, t), generator=torch.Generator().manual_seed(seed))


def _write_raw(path, header: dict, data: bytes = b"") -> None:
    """A safetensors file byte by byte: 8-byte little-endian header length, JSON header, data."""
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + data)


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
        for fn in (ck.load, ck.load_state_dict_safely, ck.checkpoint_info, ck.load_hf_gpt2):
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
    for fn in (ck.load, ck.checkpoint_info, ck.load_state_dict_safely, ck.load_hf_gpt2):
        with pytest.raises(LabError, match="There is no file"):
            fn(tmp_path / "nope.safetensors")
    with pytest.raises(LabError, match="is a folder"):
        ck.load(tmp_path)
    with pytest.raises(LabError, match="no model.safetensors"):
        ck.load_hf_gpt2(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(pickle.dumps({}))
    with pytest.raises(LabError, match="pickle"):
        ck.load_hf_gpt2(tmp_path)


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


# ---------------------------------------------------------------------------------------------- Hugging Face


@pytest.fixture(scope="module")
def hf_tiny(tmp_path_factory):
    """A random GPT2LMHeadModel (noisy weights, no dropout) saved with save_pretrained."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=1000, n_positions=64, n_embd=64, n_layer=2, n_head=4, resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0, bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    model = _noisy(transformers.GPT2LMHeadModel(config), seed=1)
    out = tmp_path_factory.mktemp("hf_tiny")
    model.save_pretrained(out)
    return model, out


def _assert_same_logits(hf_model, ours, vocab: int) -> None:
    x = _ids(vocab, t=20, seed=3)
    with torch.no_grad():
        expected = hf_model(x).logits
        assert torch.allclose(ours(x), expected, atol=1e-4)


def test_load_hf_gpt2_folder_and_file(hf_tiny):
    hf_model, folder = hf_tiny
    for source in (folder, folder / "model.safetensors"):
        ours = ck.load_hf_gpt2(source)
        assert ours.cfg == GPTConfig(1000, 64, 64, 4, 2, 0.0, qkv_bias=True, tie_weights=True)
        assert ours.out_head.weight is ours.tok_emb.weight and not ours.training
        _assert_same_logits(hf_model, ours, 1000)


def test_load_hf_gpt2_without_prefix_and_with_mask_buffers(hf_tiny, tmp_path):
    """The original OpenAI-converted files: no ``transformer.`` prefix, causal-mask buffers stored."""
    hf_model, folder = hf_tiny
    state = {k.removeprefix("transformer."): v for k, v in load_file(folder / "model.safetensors").items()}
    for i in range(2):
        state[f"h.{i}.attn.bias"] = torch.ones(1, 1, 64, 64).tril()
        state[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    shutil.copy(folder / "config.json", tmp_path / "config.json")
    _assert_same_logits(hf_model, ck.load_hf_gpt2(tmp_path), 1000)
    (tmp_path / "config.json").unlink()  # without it 64 wide means 1 head; an explicit config fixes that
    cfg = GPTConfig(1000, 64, 64, 4, 2, 0.0, tie_weights=True)
    _assert_same_logits(hf_model, ck.load_hf_gpt2(tmp_path / "model.safetensors", config=cfg), 1000)
    with pytest.raises(LabError, match="shape"):
        ck.load_hf_gpt2(tmp_path, config=cfg.replace(context_length=32))


def test_load_hf_gpt2_real_vocab_untied_inferred(tmp_path):
    """GPT-2's 50,257-token vocabulary, an untied lm_head, and no config.json: everything from shapes."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        n_positions=32, n_embd=64, n_layer=1, n_head=1, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        tie_word_embeddings=False,
    )  # fmt: skip
    hf_model = _noisy(transformers.GPT2LMHeadModel(config), seed=2)
    hf_model.save_pretrained(tmp_path)
    assert "lm_head.weight" in load_file(tmp_path / "model.safetensors")
    (tmp_path / "config.json").unlink()
    ours = ck.load_hf_gpt2(tmp_path)
    assert ours.cfg == GPTConfig(50257, 32, 64, 1, 1, 0.0, qkv_bias=True, tie_weights=False)
    assert ours.out_head.weight.data_ptr() != ours.tok_emb.weight.data_ptr()
    _assert_same_logits(hf_model, ours, 50257)
    # A loaded model saves and loads like any other (split Q/K/V biases must not share storage).
    again = ck.load(ck.save(ours, tmp_path / "lab.safetensors")).model
    x = _ids(50257)
    with torch.no_grad():
        assert torch.equal(again(x), ours(x))


def test_load_hf_gpt2_refuses_other_architectures(hf_tiny, tmp_path):
    _, folder = hf_tiny
    shutil.copy(folder / "model.safetensors", tmp_path / "model.safetensors")
    config = json.loads((folder / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(config | {"activation_function": "relu"}))
    with pytest.raises(LabError, match="activation"):
        ck.load_hf_gpt2(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(config | {"model_type": "llama"}))
    with pytest.raises(LabError, match="not GPT-2"):
        ck.load_hf_gpt2(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(config | {"n_layer": 3}))
    with pytest.raises(LabError, match="lacks"):
        ck.load_hf_gpt2(tmp_path)


@pytest.mark.parametrize("qkv_bias", [False, True])
@pytest.mark.parametrize("tie", [False, True])
def test_export_hf_gpt2_loads_in_transformers(tmp_path, tiny_cfg, qkv_bias, tie):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = _noisy(GPTModel(tiny_cfg.replace(qkv_bias=qkv_bias, tie_weights=tie, ff_mult=2)))
    out = ck.export_hf_gpt2(model, tmp_path / "export")
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["n_inner"] == 2 * tiny_cfg.emb_dim
    assert config["tie_word_embeddings"] == tie and config["activation_function"] == "gelu_new"
    assert ("lm_head.weight" in load_file(out / "model.safetensors")) == (not tie)

    hf_model = transformers.GPT2LMHeadModel.from_pretrained(out).eval()
    _assert_same_logits(hf_model, model, tiny_cfg.vocab_size)
    back = ck.load_hf_gpt2(out)  # and back again: same numbers, zero biases where we had none
    x = _ids(tiny_cfg.vocab_size)
    with torch.no_grad():
        assert torch.allclose(back(x), model(x), atol=1e-6)
    assert back.cfg.tie_weights == tie and back.cfg.ff_mult == 2


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


def _hf_export_renamed(tmp_path, tiny_model, rename) -> object:
    """An HF export of ``tiny_model`` (with its config.json) whose tensor names went through ``rename``."""
    out = ck.export_hf_gpt2(tiny_model, tmp_path / "hf")
    tensors = load_file(out / "model.safetensors")
    save_file({rename(k): v for k, v in tensors.items()}, out / "model.safetensors", metadata={"format": "pt"})
    return out


def test_hf_block_numbers_must_be_0_to_n_minus_1(tmp_path, tiny_model):
    gap = _hf_export_renamed(tmp_path, tiny_model, lambda k: k.replace("h.1.", "h.5."))
    for fn in (ck.load_hf_gpt2, lambda p: ck.checkpoint_info(p / "model.safetensors")):
        with pytest.raises(LabError, match=r"block h\.5 but none for h\.1"):
            fn(gap)
    huge = _hf_export_renamed(tmp_path, tiny_model, lambda k: k.replace("h.1.", "h.999999999."))
    with pytest.raises(LabError, match="at most 1,024 blocks"):
        ck.load_hf_gpt2(huge)
    fine = _hf_export_renamed(tmp_path, tiny_model, lambda k: k)
    assert ck.load_hf_gpt2(fine).cfg.n_layers == 2
    assert ck.checkpoint_info(fine / "model.safetensors")["kind"] == "hf-gpt2"


@pytest.mark.parametrize("text, match", [
    ('{"n_embd": ' + "9" * 5000 + "}", "more than 4,300 digits"),
    ("[" * 100_000 + "]" * 100_000, "nested far too deeply"),
    ('{"n_embd": 32, "vocab_size": 101, "n_head": 4, "n_layer": 2000}', "n_layers must be at most"),
    ('{"n_embd": Infinity, "vocab_size": 101, "n_head": 4, "n_layer": 2}', "malformed size"),
    ('{"model_type": "' + "m" * 100_000 + '"}', "not GPT-2"),
])  # fmt: skip
def test_hostile_hf_config_json(tmp_path, tiny_model, text, match):
    out = ck.export_hf_gpt2(tiny_model, tmp_path / "hf")
    (out / "config.json").write_text(text)
    with pytest.raises(LabError, match=match) as info:
        ck.load_hf_gpt2(out)
    assert len(str(info.value)) < 400
