"""core.model_spec: one spec dict means one model, for the pages, the CLI and the tests alike."""

from __future__ import annotations

import os

import pytest
import torch

from core.checkpoint import save
from core.config import GPTConfig
from core.model import GPTModel
from core.model_spec import (
    DEFAULT_MODEL,
    build_model,
    default_runs_dir,
    describe_spec,
    run_checkpoint,
    spec_stamp,
    spec_tokenizer,
)


def test_a_preset_is_the_books_seeded_init_and_leaves_the_global_rng_alone():
    torch.manual_seed(7)
    expected_next = torch.rand(3)
    torch.manual_seed(7)
    a = build_model(DEFAULT_MODEL)
    assert torch.equal(torch.rand(3), expected_next), "building a preset must not reseed the global RNG"
    torch.manual_seed(123)
    by_hand = GPTModel(GPTConfig.preset("tiny", drop_rate=0.0))
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), by_hand.state_dict().values()))
    assert not a.training and spec_stamp(DEFAULT_MODEL) == 0.0
    other = build_model({**DEFAULT_MODEL, "seed": 5})
    assert not torch.equal(other.tok_emb.weight, a.tok_emb.weight)


def test_a_run_spec_loads_its_checkpoint_and_its_recorded_tokenizer(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMLAB_RUNS_DIR", str(tmp_path))
    assert default_runs_dir() == tmp_path
    spec = {"kind": "run", "run_id": "r1"}
    assert run_checkpoint(spec) == tmp_path / "r1" / "model.safetensors" and spec_stamp(spec) == 0.0
    model = GPTModel(GPTConfig.preset("tiny", vocab_size=300))
    save(model, run_checkpoint(spec), extra={"tokenizer": "char"})
    loaded = build_model(spec)
    assert torch.equal(loaded.tok_emb.weight, model.tok_emb.weight)
    stamp = spec_stamp(spec)
    assert stamp > 0
    os.utime(run_checkpoint(spec), (stamp + 10, stamp + 10))  # a new checkpoint: a new cache key
    assert spec_stamp(spec) == stamp + 10
    assert describe_spec(spec) == "trained run 'r1'"
    assert spec_tokenizer(DEFAULT_MODEL, 50257).n_vocab == 50257


def test_unknown_kinds_are_refused():
    with pytest.raises(ValueError, match="Unknown model kind 'zip'"):
        build_model({"kind": "zip"})
    assert describe_spec({"kind": "zip"}) == "unknown model"


def test_the_tied_head_note_shows_only_for_a_tied_model():
    from core.config import GPTConfig
    from core.model import GPTModel
    from core.model_spec import tied_head_note

    assert tied_head_note(GPTModel(GPTConfig.preset("tiny"))) is None
    note = tied_head_note(GPTModel(GPTConfig.preset("tiny", tie_weights=True)))
    assert note and "the book loads a separate copy" in note
