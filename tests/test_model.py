import math

import pytest
import torch

from core.config import GPTConfig
from core.errors import LabError
from core.model import GPTModel, count_parameters
from core.stats import (
    flops_per_token,
    memory_estimate,
    parameter_breakdown,
    shape_trace,
    shortcut_gradient_demo,
    total_parameters,
)


def _meta_model(cfg):
    with torch.device("meta"):  # counts parameters without allocating 650 MB
        return GPTModel(cfg)


def test_gpt2_small_parameter_counts_match_book():
    untied = GPTConfig.preset("gpt2-small")
    tied = untied.replace(tie_weights=True)
    assert count_parameters(_meta_model(untied)) == 163_009_536
    assert count_parameters(_meta_model(tied)) == 124_412_160
    assert total_parameters(untied) == 163_009_536 and total_parameters(tied) == 124_412_160


@pytest.mark.parametrize("name", ["tiny", "mini", "gpt2-medium", "gpt2-xl"])
@pytest.mark.parametrize("tie", [False, True])
@pytest.mark.parametrize("qkv_bias", [False, True])
def test_breakdown_equals_real_model(name, tie, qkv_bias):
    cfg = GPTConfig.preset(name, tie_weights=tie, qkv_bias=qkv_bias)
    assert total_parameters(cfg) == count_parameters(_meta_model(cfg))


def test_breakdown_rows_have_book_components():
    rows = {r["component"]: r for r in parameter_breakdown(GPTConfig.preset("gpt2-small"))}
    assert rows["Token embedding"]["params"] == 50257 * 768
    assert rows["Feed-forward (2 linear layers)"]["params"] == 12 * (768 * 3072 * 2 + 3072 + 768)


def test_memory_and_flops():
    cfg = GPTConfig.preset("gpt2-small")
    mem = memory_estimate(cfg)
    assert mem["weights_bytes"] == 163_009_536 * 4  # the book's 621.83 MB
    assert round(mem["weights_bytes"] / 1024**2, 2) == 621.83
    assert memory_estimate(cfg, "bf16")["weights_bytes"] == 163_009_536 * 2
    assert flops_per_token(cfg)["training"] == 3 * flops_per_token(cfg)["forward"]
    with pytest.raises(LabError):
        memory_estimate(cfg, "fp64")


def test_tied_weights_share_storage(tiny_cfg):
    model = GPTModel(tiny_cfg.replace(tie_weights=True))
    assert model.out_head.weight is model.tok_emb.weight


def test_manual_path_equals_sdpa(tiny_model):
    idx = torch.randint(0, 101, (3, 32), generator=torch.Generator().manual_seed(1))
    fast = tiny_model(idx)
    manual = tiny_model(idx, attn_impl="manual")
    logits, weights = tiny_model.forward_with_attention(idx)
    torch.testing.assert_close(fast, manual, atol=1e-5, rtol=0)
    torch.testing.assert_close(fast, logits, atol=1e-5, rtol=0)
    assert len(weights) == 2 and weights[0].shape == (3, 4, 32, 32)
    torch.testing.assert_close(weights[1].sum(-1), torch.ones(3, 4, 32))
    assert torch.all(weights[0].triu(diagonal=1) == 0)  # no token looks ahead


@pytest.mark.parametrize("impl", ["sdpa", "manual"])
def test_causality(tiny_model, impl):
    gen = torch.Generator().manual_seed(2)
    idx = torch.randint(0, 101, (1, 20), generator=gen)
    base = tiny_model(idx, attn_impl=impl)
    for t in (0, 7, 19):
        changed = idx.clone()
        changed[0, t] = (changed[0, t] + 1) % 101
        out = tiny_model(changed, attn_impl=impl)
        torch.testing.assert_close(out[:, :t], base[:, :t], atol=1e-6, rtol=0)
        assert not torch.allclose(out[:, t], base[:, t])  # and the changed position itself does react


def test_loss_at_init_is_about_ln_vocab():
    torch.manual_seed(0)
    model = GPTModel(GPTConfig.preset("tiny")).eval()
    idx = torch.randint(0, 50257, (4, 64))
    logits = model(idx)
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), idx[:, 1:].flatten())
    assert abs(loss.item() - math.log(50257)) < 0.05


def test_kv_cache_equals_full_forward(tiny_model):
    idx = torch.randint(0, 101, (2, 30), generator=torch.Generator().manual_seed(3))
    full = tiny_model(idx)
    for impl in ("sdpa", "manual"):
        cache = tiny_model.new_cache(2)
        parts = [tiny_model(idx[:, a:b], cache=cache, attn_impl=impl) for a, b in ((0, 11), (11, 12), (12, 30))]
        torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=0)
        assert cache.length == 30


def test_dropout_only_in_training(tiny_cfg):
    torch.manual_seed(0)
    model = GPTModel(tiny_cfg.replace(drop_rate=0.5))
    idx = torch.randint(0, 101, (2, 16))
    model.train()
    assert not torch.allclose(model(idx), model(idx))
    model.eval()
    torch.testing.assert_close(model(idx), model(idx))


@pytest.mark.parametrize(
    "bad, words",
    [
        (torch.zeros(5, dtype=torch.long), "shaped \\(batch, tokens\\)"),
        (torch.zeros(1, 0, dtype=torch.long), "no tokens"),
        (torch.zeros(1, 33, dtype=torch.long), "context length is 32"),
        (torch.full((1, 3), 101), "outside this model's vocabulary"),
        (torch.zeros(1, 3), "must be integers"),
        ([[1, 2]], "shaped"),
    ],
)
def test_bad_input_is_explained(tiny_model, bad, words):
    with pytest.raises(LabError, match=words):
        tiny_model(bad)


def test_cache_overflow_is_explained(tiny_model):
    cache = tiny_model.new_cache(1)
    tiny_model(torch.zeros(1, 30, dtype=torch.long), cache=cache)
    with pytest.raises(LabError, match="32 tokens|33 tokens"):
        tiny_model(torch.zeros(1, 3, dtype=torch.long), cache=cache)


def test_model_rejects_non_config():
    for bad in ([8], 8, "tiny", None):
        with pytest.raises(LabError, match="GPTConfig"):
            GPTModel(bad)
    with pytest.raises(LabError):  # the book's dict form is taken, and checked as a GPTConfig
        GPTModel({"emb_dim": 8, "n_heads": 3})


def test_shape_trace_lists_every_block(tiny_model):
    rows = shape_trace(tiny_model, torch.zeros(1, 5, dtype=torch.long))
    names = [r.name for r in rows]
    assert "trf_blocks.0" in names and "trf_blocks.1.att" in names
    assert dict((r.name, r.output_shape) for r in rows)["trf_blocks.1"] == (1, 5, 32)
    assert rows[-1].output_shape == (1, 5, 101)


def test_shortcuts_keep_gradients_alive():
    g = shortcut_gradient_demo()
    # Without shortcuts the first layer's gradient vanishes compared with the last (book §4.4).
    assert g["without"][0] < g["without"][-1] / 10
    assert g["with"][0] > g["without"][0] * 10


def test_mismatched_cache_is_explained(tiny_model):
    small = tiny_model.new_cache(1, max_len=4)
    tiny_model(torch.tensor([[1, 2, 3]]), cache=small)
    with pytest.raises(LabError, match="room for 4 tokens"):
        tiny_model(torch.tensor([[4, 5]]), cache=small)
    with pytest.raises(LabError, match="holds 3 sequence"):
        tiny_model(torch.tensor([[1, 2, 3]]), cache=tiny_model.new_cache(3))
