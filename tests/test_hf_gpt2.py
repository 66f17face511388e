"""Hugging Face GPT-2 (core.hf_gpt2): parity with transformers both ways, layouts, hostile names and configs."""

from __future__ import annotations

import json
import pickle
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from core import checkpoint as ck
from core import hf_gpt2 as hg
from core.config import GPTConfig
from core.errors import LabError
from core.model import GPTModel
from tests.safetensors_helpers import _ids, _noisy


def test_checkpoint_still_exports_the_hugging_face_functions():
    from core.checkpoint import export_hf_gpt2, load_hf_gpt2

    assert (load_hf_gpt2, export_hf_gpt2) == (hg.load_hf_gpt2, hg.export_hf_gpt2)
    with pytest.raises(AttributeError):
        ck.no_such_name  # noqa: B018 - the module's __getattr__ must still refuse unknown names


def test_missing_weights_in_a_folder(tmp_path):
    with pytest.raises(LabError, match="There is no file"):
        hg.load_hf_gpt2(tmp_path / "nope.safetensors")
    with pytest.raises(LabError, match="no model.safetensors"):
        hg.load_hf_gpt2(tmp_path)
    (tmp_path / "model.safetensors.index.json").write_text("{}")
    with pytest.raises(LabError, match="sharded"):
        hg.load_hf_gpt2(tmp_path)
    (tmp_path / "model.safetensors.index.json").unlink()
    (tmp_path / "pytorch_model.bin").write_bytes(pickle.dumps({}))
    with pytest.raises(LabError, match="pickle"):
        hg.load_hf_gpt2(tmp_path)


@pytest.fixture(scope="module")
def hf_tiny(tmp_path_factory):
    """A random GPT2LMHeadModel (noisy weights, no dropout) saved with save_pretrained."""
    import transformers
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
        ours = hg.load_hf_gpt2(source)
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
    _assert_same_logits(hf_model, hg.load_hf_gpt2(tmp_path), 1000)
    (tmp_path / "config.json").unlink()  # without it 64 wide means 1 head; an explicit config fixes that
    cfg = GPTConfig(1000, 64, 64, 4, 2, 0.0, tie_weights=True)
    _assert_same_logits(hf_model, hg.load_hf_gpt2(tmp_path / "model.safetensors", config=cfg), 1000)
    with pytest.raises(LabError, match="shape"):
        hg.load_hf_gpt2(tmp_path, config=cfg.replace(context_length=32))


def test_load_hf_gpt2_real_vocab_untied_inferred(tmp_path):
    """GPT-2's 50,257-token vocabulary, an untied lm_head, and no config.json: everything from shapes."""
    import transformers
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        n_positions=32, n_embd=64, n_layer=1, n_head=1, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        tie_word_embeddings=False,
    )  # fmt: skip
    hf_model = _noisy(transformers.GPT2LMHeadModel(config), seed=2)
    hf_model.save_pretrained(tmp_path)
    assert "lm_head.weight" in load_file(tmp_path / "model.safetensors")
    (tmp_path / "config.json").unlink()
    ours = hg.load_hf_gpt2(tmp_path)
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
        hg.load_hf_gpt2(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(config | {"model_type": "llama"}))
    with pytest.raises(LabError, match="not GPT-2"):
        hg.load_hf_gpt2(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(config | {"n_layer": 3}))
    with pytest.raises(LabError, match="lacks"):
        hg.load_hf_gpt2(tmp_path)


@pytest.mark.parametrize("qkv_bias", [False, True])
@pytest.mark.parametrize("tie", [False, True])
def test_export_hf_gpt2_loads_in_transformers(tmp_path, tiny_cfg, qkv_bias, tie):
    import transformers
    torch.manual_seed(0)
    model = _noisy(GPTModel(tiny_cfg.replace(qkv_bias=qkv_bias, tie_weights=tie, ff_mult=2)))
    out = hg.export_hf_gpt2(model, tmp_path / "export")
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["n_inner"] == 2 * tiny_cfg.emb_dim
    assert config["tie_word_embeddings"] == tie and config["activation_function"] == "gelu_new"
    assert ("lm_head.weight" in load_file(out / "model.safetensors")) == (not tie)

    hf_model = transformers.GPT2LMHeadModel.from_pretrained(out).eval()
    _assert_same_logits(hf_model, model, tiny_cfg.vocab_size)
    back = hg.load_hf_gpt2(out)  # and back again: same numbers, zero biases where we had none
    x = _ids(tiny_cfg.vocab_size)
    with torch.no_grad():
        assert torch.allclose(back(x), model(x), atol=1e-6)
    assert back.cfg.tie_weights == tie and back.cfg.ff_mult == 2


def _hf_export_renamed(tmp_path, tiny_model, rename) -> object:
    """An HF export of ``tiny_model`` (with its config.json) whose tensor names went through ``rename``."""
    out = hg.export_hf_gpt2(tiny_model, tmp_path / "hf")
    tensors = load_file(out / "model.safetensors")
    save_file({rename(k): v for k, v in tensors.items()}, out / "model.safetensors", metadata={"format": "pt"})
    return out


def test_hf_block_numbers_must_be_0_to_n_minus_1(tmp_path, tiny_model):
    gap = _hf_export_renamed(tmp_path, tiny_model, lambda k: k.replace("h.1.", "h.5."))
    for fn in (hg.load_hf_gpt2, lambda p: ck.checkpoint_info(p / "model.safetensors")):
        with pytest.raises(LabError, match=r"block h\.5 but none for h\.1"):
            fn(gap)
    huge = _hf_export_renamed(tmp_path, tiny_model, lambda k: k.replace("h.1.", "h.999999999."))
    with pytest.raises(LabError, match="at most 1,024 blocks"):
        hg.load_hf_gpt2(huge)
    fine = _hf_export_renamed(tmp_path, tiny_model, lambda k: k)
    assert hg.load_hf_gpt2(fine).cfg.n_layers == 2
    assert ck.checkpoint_info(fine / "model.safetensors")["kind"] == "hf-gpt2"


@pytest.mark.parametrize("text, match", [
    ('{"n_embd": ' + "9" * 5000 + "}", "more than 4,300 digits"),
    ("[" * 100_000 + "]" * 100_000, "nested far too deeply"),
    ('{"n_embd": 32, "vocab_size": 101, "n_head": 4, "n_layer": 2000}', "n_layers must be at most"),
    ('{"n_embd": Infinity, "vocab_size": 101, "n_head": 4, "n_layer": 2}', "n_embd must be a whole number, got inf"),
    ('{"n_embd": 64.9, "vocab_size": 101, "n_head": 4, "n_layer": 2}', "n_embd must be a whole number, got 64.9"),
    ('{"n_embd": 32, "vocab_size": 101, "n_head": true, "n_layer": 2}', "n_head must be a whole number, got True"),
    ('{"model_type": "' + "m" * 100_000 + '"}', "not GPT-2"),
])  # fmt: skip
def test_hostile_hf_config_json(tmp_path, tiny_model, text, match):
    out = hg.export_hf_gpt2(tiny_model, tmp_path / "hf")
    (out / "config.json").write_text(text)
    with pytest.raises(LabError, match=match) as info:
        hg.load_hf_gpt2(out)
    assert len(str(info.value)) < 400


# ------------------------------------------------------------------------------------------------ verify
def test_verify_checks_layout_and_size(hf_tiny, tmp_path, tiny_model):
    _, folder = hf_tiny
    info = hg.verify_gpt2_file(folder / "model.safetensors")
    assert (info["n_layers"], info["emb_dim"], info["vocab_size"], info["context_length"]) == (2, 64, 1000, 64)
    assert info["file_size"] == (folder / "model.safetensors").stat().st_size
    with pytest.raises(LabError, match="2 blocks of width 64, but gpt2-small has 12 blocks of width 768"):
        hg.verify_gpt2_file(folder / "model.safetensors", "gpt2-small")
    with pytest.raises(LabError, match="Unknown GPT-2 size"):
        hg.verify_gpt2_file(folder / "model.safetensors", "gpt2-huge")
    html = tmp_path / "model.safetensors"
    html.write_text("<html>rate limited</html>")
    with pytest.raises(LabError, match="not a valid safetensors file"):
        hg.verify_gpt2_file(html)
    tensors = load_file(folder / "model.safetensors")
    save_file({k: v for k, v in tensors.items() if "h.1.mlp.c_fc" not in k}, html, metadata={"format": "pt"})
    with pytest.raises(LabError, match=r"not a complete GPT-2 checkpoint: it lacks h\.1\.mlp\.c_fc\.weight"):
        hg.verify_gpt2_file(html)
    with pytest.raises(LabError, match="not GPT-2 weights in Hugging Face's layout"):
        hg.verify_gpt2_file(ck.save(tiny_model, tmp_path / "lab.safetensors"))
