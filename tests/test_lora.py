"""LoRA: the book's parameter count, B = 0 at init, frozen base weights, merge == unmerged, clear errors."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from core.config import GPTConfig
from core.errors import LabError
from core.lora import (
    LoRALinear,
    apply_lora,
    lora_layers,
    lora_parameter_counts,
    lora_target_names,
    merge_lora,
    remove_lora,
    unmerge_lora,
)
from core.model import GPTModel


@pytest.fixture
def meta_gpt2_small() -> GPTModel:
    """GPT-2 small without memory: parameters on the meta device have shapes but no storage."""
    with torch.device("meta"):
        return GPTModel(GPTConfig.preset("gpt2-small"))


@pytest.fixture
def ids(tiny_cfg) -> torch.Tensor:
    return torch.randint(0, tiny_cfg.vocab_size, (2, 12), generator=torch.Generator().manual_seed(1))


def test_book_count_for_the_spam_classifier(meta_gpt2_small):
    model = meta_gpt2_small
    model.out_head = nn.Linear(768, 2, device="meta")  # the chapter 6 classification head
    model.requires_grad_(False)
    names = apply_lora(model, rank=16, alpha=16)
    counts = lora_parameter_counts(model)
    assert counts["trainable"] == 2_666_528  # appendix E's figure
    assert counts["lora"] == counts["trainable"]
    assert counts["total"] == counts["lora"] + counts["base_frozen"]
    assert len(names) == 12 * 6 + 1 and names[-1] == "out_head"


def test_rank_error_names_the_layer(meta_gpt2_small):
    with pytest.raises(LabError) as err:
        apply_lora(meta_gpt2_small, rank=1024, alpha=16)
    assert str(err.value) == (
        "rank 1024 is larger than the layer trf_blocks.0.att.W_query (768 → 768); choose a rank ≤ 768."
    )
    assert not lora_layers(meta_gpt2_small)  # nothing was wrapped before the error


@pytest.mark.parametrize("rank, alpha", [(0, 16), (-2, 16), (2.5, 16), (4, 0), (4, -1.0)])
def test_bad_rank_or_alpha(tiny_model, rank, alpha):
    with pytest.raises(LabError):
        apply_lora(tiny_model, rank=rank, alpha=alpha)


def test_unknown_pattern_lists_available_layers(tiny_model):
    with pytest.raises(LabError, match=r"'\*\.attn\.c_attn'.*trf_blocks\.0\.att\.W_query"):
        apply_lora(tiny_model, rank=2, alpha=2, targets=["*.att.W_key", "*.attn.c_attn"])
    assert not lora_layers(tiny_model)


def test_target_names_and_patterns(tiny_model, tiny_cfg):
    names = lora_target_names(tiny_model)
    per_block = ["att.W_query", "att.W_key", "att.W_value", "att.out_proj", "ff.layers.0", "ff.layers.2"]
    expected = [f"trf_blocks.{i}.{n}" for i in range(tiny_cfg.n_layers) for n in per_block] + ["out_head"]
    assert names == expected
    wrapped = apply_lora(tiny_model, rank=2, alpha=4, targets=["*.ff.layers.*", "out_head"])
    assert wrapped == [n for n in expected if ".ff." in n or n == "out_head"]
    assert isinstance(tiny_model.trf_blocks[1].ff.layers[2], LoRALinear)
    left = lora_target_names(tiny_model)
    assert left == [n for n in expected if n not in wrapped]  # wrapped layers (and their .base) are gone


def test_lora_linear_shapes_and_init():
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(24, 10), rank=4, alpha=8)
    assert layer.A.shape == (4, 24) and layer.B.shape == (10, 4)
    assert layer.scale == 2.0
    assert torch.equal(layer.B, torch.zeros(10, 4))
    # The book's kaiming_uniform_(a=sqrt(5)) on an (in, rank) matrix: bound 1 / sqrt(rank).
    assert layer.A.abs().max() <= 1 / math.sqrt(4)
    assert layer.A.abs().max() > 0.5 / math.sqrt(4)
    layer.B.data.normal_()
    assert torch.allclose(layer.delta_weight(), 2.0 * layer.B @ layer.A)
    with pytest.raises(LabError):
        LoRALinear(nn.Conv1d(2, 2, 1), rank=1, alpha=1)


def test_init_logits_equal_base_model(tiny_model, ids):
    base = copy.deepcopy(tiny_model)
    apply_lora(tiny_model, rank=4, alpha=8)
    with torch.no_grad():
        assert torch.equal(tiny_model(ids), base(ids))


def _train_steps(model, ids, steps=2):
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(steps):
        logits = model(ids[:, :-1])
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def test_training_moves_only_lora_parameters(tiny_model, ids):
    apply_lora(tiny_model, rank=4, alpha=8)
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    _train_steps(tiny_model, ids)
    after = tiny_model.state_dict()
    for name, value in after.items():
        if name.endswith((".A", ".B")):
            assert not torch.equal(value, before[name]), name
        else:
            assert torch.equal(value, before[name]), name
    trainable = {n for n, p in tiny_model.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith((".A", ".B")) for n in trainable)


def test_merge_unmerge_and_remove(tiny_model, ids):
    original = copy.deepcopy(tiny_model)
    apply_lora(tiny_model, rank=4, alpha=8)
    _train_steps(tiny_model, ids)
    weights = {n: m.base.weight.clone() for n, m in lora_layers(tiny_model).items()}
    with torch.no_grad():
        unmerged = tiny_model(ids)
        assert merge_lora(tiny_model) == len(weights)
        assert all(m.merged for m in lora_layers(tiny_model).values())
        assert torch.allclose(tiny_model(ids), unmerged, atol=1e-5)
        merge_lora(tiny_model)  # merging twice must not add the update twice
        assert torch.allclose(tiny_model(ids), unmerged, atol=1e-5)
        unmerge_lora(tiny_model)
        for name, layer in lora_layers(tiny_model).items():
            assert torch.allclose(layer.base.weight, weights[name], atol=1e-6)
        assert torch.allclose(tiny_model(ids), unmerged, atol=1e-5)

        dropped = copy.deepcopy(tiny_model)
        assert len(remove_lora(dropped, merge=False)) == len(weights)
        assert torch.allclose(dropped(ids), original(ids), atol=1e-6)  # update thrown away

        remove_lora(tiny_model, merge=True)
        assert not lora_layers(tiny_model)
        assert type(tiny_model.trf_blocks[0].att.W_query) is nn.Linear
        assert torch.allclose(tiny_model(ids), unmerged, atol=1e-5)  # update kept in the plain weights


def test_counts_without_freezing(tiny_model):
    total = sum(p.numel() for p in tiny_model.parameters())
    apply_lora(tiny_model, rank=2, alpha=2, targets="out_head", freeze_base=False)
    counts = lora_parameter_counts(tiny_model)
    assert counts["lora"] == 2 * (32 + 101)
    assert counts["total"] == total + counts["lora"]
    assert counts["trainable"] == counts["total"] and counts["base_frozen"] == 0
