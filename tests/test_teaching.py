"""The helpers behind the Attention, Architecture and Generation pages (attention_steps, stats, generate_steps)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from core.attention import book_example_inputs
from core.attention_steps import (
    MAX_ATTENTION_TOKENS,
    MAX_TEACHING_WORDS,
    model_attention,
    row_sums,
    sentence_inputs,
    teaching_steps,
)
from core.config import GPTConfig
from core.errors import LabError
from core.model import GPTModel
from core.stats import architecture_report, layernorm_example, meta_shape_trace, shape_trace
from core.tokenizers import get_tokenizer
from ui.format import format_bytes, format_si
from views.attention_prose import DISPLAY_STEPS, STAGES, step_note, step_title


@pytest.fixture(scope="module")
def gpt2_tiny() -> GPTModel:
    """The app's default model: the tiny preset (GPT-2 vocabulary) at random init."""
    torch.manual_seed(123)
    return GPTModel(GPTConfig.preset("tiny")).eval()


@pytest.fixture(scope="module")
def gpt2_tok():
    return get_tokenizer("gpt2")


# --- Part 1 -------------------------------------------------------------------------------------------------


def test_book_inputs_by_default():
    inp = sentence_inputs()
    words, x = book_example_inputs()
    assert inp.words == words
    assert torch.equal(inp.x, x)
    assert not inp.truncated


def test_own_sentence_same_word_same_vector():
    inp = sentence_inputs("The cat saw the dog.", d_in=4, seed=7)
    assert inp.words == ["The", "cat", "saw", "the", "dog", "."]
    assert inp.x.shape == (6, 4)
    assert torch.equal(inp.x[0], inp.x[3])  # "The" and "the"
    assert not torch.equal(inp.x[1], inp.x[2])
    assert float(inp.x.min()) >= 0.0 and float(inp.x.max()) < 1.0
    again = sentence_inputs("a dog", d_in=4, seed=7)
    assert torch.equal(again.x[1], inp.x[4])  # a word's vector does not depend on the sentence


def test_long_sentence_is_truncated_quickly():
    start = time.perf_counter()
    inp = sentence_inputs("word " * 200_000)  # 1 MB
    assert time.perf_counter() - start < 1.0
    assert inp.truncated and len(inp.words) == MAX_TEACHING_WORDS


@pytest.mark.parametrize("text", ["", "   \n\t ", "\u3000"])
def test_empty_sentence_is_a_lab_error(text):
    with pytest.raises(LabError, match="empty"):
        sentence_inputs(text)


@pytest.mark.parametrize("kwargs", [{"text": 5}, {"text": "a b", "d_in": 0}, {"text": "a b", "d_in": True}])
def test_sentence_inputs_validation(kwargs):
    with pytest.raises(LabError):
        sentence_inputs(**kwargs)


def test_teaching_steps_reproduce_the_book():
    _, x = book_example_inputs()
    steps = teaching_steps(x)
    assert list(steps) == list(STAGES)
    np.testing.assert_allclose(steps["simplified"]["context"][1], [0.4419, 0.6515, 0.5683], atol=1e-4)
    np.testing.assert_allclose(steps["qkv"]["context"][1], [0.3061, 0.8210], atol=1e-4)  # book 3.4.1
    for stage, data in steps.items():
        np.testing.assert_allclose(row_sums(data["weights"]), 1.0, atol=1e-6)
        assert all(s in data for s in DISPLAY_STEPS[stage])
        for step in data:
            assert step_title(stage, step) and step_note(stage, step)


def test_causal_and_multihead_steps():
    _, x = book_example_inputs()
    steps = teaching_steps(x, d_out=2, n_heads=3, dropout=0.5, seed=123)
    causal = steps["causal"]
    assert np.isneginf(causal["masked"][np.triu_indices(6, 1)]).all()
    assert (causal["weights"][np.triu_indices(6, 1)] == 0).all()
    dropped = causal["dropped"]
    assert (dropped == 0).sum() > (causal["weights"] == 0).sum()  # dropout zeroed some weights
    kept = dropped != 0
    np.testing.assert_allclose(dropped[kept], 2 * causal["weights"][kept], rtol=1e-6)  # scaled by 1/(1-p)
    mh = steps["multihead"]
    assert mh["weights"].shape == (3, 6, 6) and mh["context"].shape == (6, 6) and mh["output"].shape == (6, 6)
    assert "dropped" not in mh  # the multi-head stage shows inference
    # Head 1 uses the single-head projections: same weights as the causal stage.
    np.testing.assert_allclose(mh["weights"][0], causal["weights"], atol=1e-6)
    np.testing.assert_array_equal(mh["context"][:, :2], mh["head_context"][0])  # heads side by side
    no_drop = teaching_steps(x, d_out=2, n_heads=3)
    head0, causal0 = no_drop["multihead"]["head_context"][0], no_drop["causal"]["context"]
    np.testing.assert_allclose(head0, causal0, atol=1e-6)


def test_dropout_zero_keeps_weights():
    _, x = book_example_inputs()
    causal = teaching_steps(x, dropout=0.0)["causal"]
    np.testing.assert_array_equal(causal["dropped"], causal["weights"])


@pytest.mark.parametrize("kwargs", [{"d_out": 0}, {"n_heads": 0}, {"n_heads": 99}, {"dropout": 1.0}])
def test_teaching_steps_validation(kwargs):
    _, x = book_example_inputs()
    with pytest.raises(LabError):
        teaching_steps(x, **kwargs)


def test_teaching_steps_needs_a_matrix():
    with pytest.raises(LabError, match="matrix"):
        teaching_steps(torch.zeros(1, 2, 3))


# --- Part 2 -------------------------------------------------------------------------------------------------


def test_model_attention_matches_the_model(gpt2_tiny, gpt2_tok):
    att = model_attention(gpt2_tiny, gpt2_tok, "Every effort moves you")
    ids = gpt2_tok.encode("Every effort moves you")
    assert att.ids == ids and len(att.tokens) == len(ids) and not att.truncated
    cfg = gpt2_tiny.cfg
    assert att.weights.shape == (cfg.n_layers, cfg.n_heads, len(ids), len(ids))
    assert att.weights.dtype == np.float32
    np.testing.assert_allclose(row_sums(att.weights), 1.0, atol=1e-5)
    with torch.no_grad():
        _, ref = gpt2_tiny.forward_with_attention(torch.tensor([ids]))
    np.testing.assert_allclose(att.weights[1], ref[1][0].numpy(), atol=1e-6)
    assert att.tokens[1] == "·effort"


def test_model_attention_truncates_long_text(gpt2_tiny, gpt2_tok):
    start = time.perf_counter()
    att = model_attention(gpt2_tiny, gpt2_tok, "hello world " * 90_000)  # ~1 MB
    assert time.perf_counter() - start < 5.0
    assert att.truncated and att.weights.shape[-1] == min(MAX_ATTENTION_TOKENS, gpt2_tiny.cfg.context_length)
    short = model_attention(gpt2_tiny, gpt2_tok, "one two three four five six", max_tokens=3)
    assert short.truncated and short.weights.shape[-1] == 3


def test_model_attention_keeps_training_flag(gpt2_tiny, gpt2_tok):
    gpt2_tiny.train()
    try:
        model_attention(gpt2_tiny, gpt2_tok, "Hi")
        assert gpt2_tiny.training
    finally:
        gpt2_tiny.eval()


@pytest.mark.parametrize("text", ["", "  \n "])
def test_model_attention_empty(gpt2_tiny, gpt2_tok, text):
    with pytest.raises(LabError, match="empty"):
        model_attention(gpt2_tiny, gpt2_tok, text)


def test_model_attention_vocabulary_mismatch(tiny_model, gpt2_tok):
    with pytest.raises(LabError, match="vocabulary"):
        model_attention(tiny_model, gpt2_tok, "Every effort moves you")  # vocab 101


# --- Architecture -------------------------------------------------------------------------------------------


def test_architecture_report_gpt2_small():
    r = architecture_report(GPTConfig.preset("gpt2-small"), n_tokens=4, batch_size=2)
    assert (r.total_untied, r.total_tied) == (163_009_536, 124_412_160)
    assert sum(row["params"] for row in r.breakdown) == r.total_untied
    assert [m["dtype"] for m in r.memory] == ["fp32", "bf16"]
    assert r.memory[0]["weights_bytes"] == 4 * r.total_untied
    assert r.trace[0] == {"module": "tok_emb", "type": "Embedding", "output shape": "(2, 4, 768)",
                          "parameters": 50257 * 768}
    assert r.trace[-1]["output shape"] == "(2, 4, 50257)"
    collapsed = [row for row in r.trace if row["module"].startswith("trf_blocks.1 …")]
    assert collapsed and collapsed[0]["module"] == "trf_blocks.1 … trf_blocks.11"


def test_meta_trace_equals_real_trace(tiny_cfg, tiny_model):
    idx = torch.tensor([[1, 2, 3], [4, 5, 6]])
    real = shape_trace(tiny_model, idx)
    meta = meta_shape_trace(tiny_cfg, n_tokens=3, batch_size=2, collapse=False)
    assert [(m["module"], m["output shape"], m["parameters"]) for m in meta] == [
        (r.name, "(" + ", ".join(map(str, r.output_shape)) + ")", r.params) for r in real
    ]


def test_meta_trace_of_gpt2_xl_is_fast():
    start = time.perf_counter()
    rows = meta_shape_trace(GPTConfig.preset("gpt2-xl"), n_tokens=2)
    assert time.perf_counter() - start < 10.0
    assert rows[-1]["output shape"] == "(1, 2, 50257)"


@pytest.mark.parametrize("kwargs", [{"n_tokens": 0}, {"n_tokens": 65}, {"batch_size": 0}])
def test_architecture_report_validation(kwargs):
    with pytest.raises(LabError):
        architecture_report(GPTConfig.preset("tiny"), **kwargs)  # tiny: context 64


def test_bad_config_is_a_lab_error():
    with pytest.raises(LabError, match="divisible by n_heads"):
        GPTConfig.preset("gpt2-small", n_heads=7)


def test_formatting():
    assert format_bytes(512) == "512 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(4 * 163_009_536) == "621.8 MiB"
    assert format_si(6_662_272, "FLOP") == "6.66 MFLOP"
    assert format_si(12) == "12"


def test_layernorm_example_matches_the_book():
    state = torch.random.get_rng_state()
    ln = layernorm_example()
    assert torch.equal(state, torch.random.get_rng_state())  # the global RNG is untouched
    np.testing.assert_allclose(ln["mean_before"], [0.1324, 0.2170], atol=1e-4)
    np.testing.assert_allclose(ln["mean_after"], 0.0, atol=1e-6)
    np.testing.assert_allclose(ln["var_after"], 1.0, atol=1e-2)
    assert ln["input"].shape == ln["output"].shape == (2, 6)


# --- Generation ---------------------------------------------------------------------------------------------


def test_playground_generate(gpt2_tiny, gpt2_tok):
    import core.generate as gen
    from core.generate_steps import playground_generate

    prompt = "Every effort moves you"
    run = playground_generate(gpt2_tiny, gpt2_tok, prompt, max_new_tokens=5, temperature=0.0, top_k=5)
    assert len(run.pieces) == len(run.probs) == len(run.trace.steps) == 5
    assert run.prompt == "Every effort moves you" and not run.prompt_truncated
    greedy = gen.generate(gpt2_tiny, torch.tensor([gpt2_tok.encode("Every effort moves you")]), 5)
    assert [s.chosen_id for s in run.trace.steps] == greedy[0, -5:].tolist()
    assert run.text == gpt2_tok.decode(greedy[0].tolist())
    settings = {"temperature": 1.5, "top_k": 0, "top_p": 0.9, "seed": 1}
    sampled = playground_generate(gpt2_tiny, gpt2_tok, "Every", 4, **settings)
    again = playground_generate(gpt2_tiny, gpt2_tok, "Every", 4, **settings)
    assert sampled.pieces == again.pieces  # the seed makes sampling reproducible
    assert all(0.0 < p <= 1.0 for p in sampled.probs)


def test_playground_generate_bad_input(gpt2_tiny, gpt2_tok):
    from core.generate_steps import playground_generate

    with pytest.raises(LabError, match="empty"):
        playground_generate(gpt2_tiny, gpt2_tok, "   ")
    with pytest.raises(LabError, match="max_new_tokens"):
        playground_generate(gpt2_tiny, gpt2_tok, "Hi", max_new_tokens=0)
    run = playground_generate(gpt2_tiny, gpt2_tok, "word " * 200_000, max_new_tokens=1, temperature=0)
    assert run.prompt_truncated and len(gpt2_tok.encode(run.prompt)) <= gpt2_tiny.cfg.context_length - 1
