"""Tests for core.attention: the book's worked numbers, the mask, dropout, heads and the error messages."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from core.attention import (
    AttentionSteps,
    MultiHeadSteps,
    book_example_inputs,
    causal_attention,
    multi_head_attention,
    random_projections,
    self_attention_qkv,
    simplified_self_attention,
)
from core.errors import LabError


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def book_x() -> torch.Tensor:
    return book_example_inputs()[1]


# --- the book's numbers -------------------------------------------------------------------------------------


def test_book_example_inputs():
    words, x = book_example_inputs()
    assert words == ["Your", "journey", "starts", "with", "one", "step"]
    assert x.shape == (6, 3) and x.dtype == torch.float32
    assert torch.equal(x[1], torch.tensor([0.55, 0.87, 0.66]))


def test_simplified_attention_matches_book(book_x):
    steps = simplified_self_attention(book_x)
    expected_weights = torch.tensor([0.1385, 0.2379, 0.2333, 0.1240, 0.1082, 0.1581])
    torch.testing.assert_close(steps.weights[1], expected_weights, atol=1e-4, rtol=0)
    torch.testing.assert_close(steps.context[1], torch.tensor([0.4419, 0.6515, 0.5683]), atol=1e-4, rtol=0)
    torch.testing.assert_close(steps.scores[1, 1], torch.tensor(0.55**2 + 0.87**2 + 0.66**2))
    assert steps.queries is steps.scaled is steps.masked is steps.dropped is None


def test_qkv_attention_matches_book(book_x):
    # The book draws its three (3, 2) matrices with torch.manual_seed(123) and torch.rand, in this order.
    steps = self_attention_qkv(book_x, *random_projections(3, 2, seed=123))
    torch.testing.assert_close(steps.queries[1], torch.tensor([0.4306, 1.4551]), atol=1e-4, rtol=0)
    torch.testing.assert_close(steps.scores[1, 1], torch.tensor(1.8524), atol=1e-4, rtol=0)
    expected_weights = torch.tensor([0.1500, 0.2264, 0.2199, 0.1311, 0.0906, 0.1820])
    torch.testing.assert_close(steps.weights[1], expected_weights, atol=1e-4, rtol=0)
    torch.testing.assert_close(steps.context[1], torch.tensor([0.3061, 0.8210]), atol=1e-4, rtol=0)
    assert steps.masked is None and steps.dropped is None


def test_random_projections_are_reproducible_and_private():
    torch.manual_seed(0)
    expected = torch.rand(2)
    torch.manual_seed(0)
    first = random_projections(5, 4, seed=7)
    assert torch.equal(torch.rand(2), expected)  # global RNG untouched
    again = random_projections(5, 4, seed=7)
    other = random_projections(5, 4, seed=8)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], other[0])
    assert not torch.equal(first[0], first[1])  # three different matrices
    assert all(w.shape == (5, 4) for w in first)


# --- properties of each step --------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(6, 3), (2, 7, 5)])
def test_rows_sum_to_one(shape):
    x = rand(*shape)
    W = random_projections(shape[-1], 4, seed=1)
    all_steps = [
        simplified_self_attention(x),
        self_attention_qkv(x, *W),
        causal_attention(x, *W),
        multi_head_attention(x, *W, torch.eye(4), n_heads=2),
    ]
    for steps in all_steps:
        torch.testing.assert_close(steps.weights.sum(-1), torch.ones(steps.weights.shape[:-1]))


def test_scaled_is_scores_over_sqrt_dk(book_x):
    W = random_projections(3, 5, seed=2)
    for steps in (self_attention_qkv(book_x, *W), causal_attention(book_x, *W)):
        torch.testing.assert_close(steps.scaled, steps.scores / math.sqrt(5))
        torch.testing.assert_close(steps.scores, steps.queries @ steps.keys.T)


def test_causal_weights_are_zero_above_diagonal(book_x):
    steps = causal_attention(book_x, *random_projections(3, 2))
    above = torch.ones(6, 6, dtype=torch.bool).triu(diagonal=1)
    assert torch.all(steps.weights[above] == 0)
    assert torch.all(steps.weights[~above] > 0)
    assert torch.all(steps.masked[above] == float("-inf"))
    assert torch.equal(steps.masked[~above], steps.scaled[~above])
    assert steps.weights[0, 0] == 1.0  # the first token can only look at itself


def test_causal_equals_renormalised_unmasked_weights(book_x):
    # The book's first attempt: softmax, zero the future, renormalise. The -inf mask gives the same result.
    W = random_projections(3, 2)
    full = self_attention_qkv(book_x, *W).weights
    tril = full.tril()
    torch.testing.assert_close(causal_attention(book_x, *W).weights, tril / tril.sum(-1, keepdim=True))


def test_batched_causal_equals_each_item():
    x = rand(3, 5, 4)
    W = random_projections(4, 6, seed=3)
    batched = causal_attention(x, *W)
    assert batched.weights.shape == (3, 5, 5) and batched.context.shape == (3, 5, 6)
    for b in range(3):
        torch.testing.assert_close(batched.context[b], causal_attention(x[b], *W).context)


def test_dropout_zero_changes_nothing(book_x):
    steps = causal_attention(book_x, *random_projections(3, 2), dropout=0.0, seed=1)
    assert torch.equal(steps.dropped, steps.weights)
    torch.testing.assert_close(steps.context, steps.weights @ steps.values)


def test_dropout_half_keeps_about_half_and_doubles_them():
    x = 0.1 * rand(64, 8)  # small inputs give spread-out weights, so row sums average out smoothly
    steps = causal_attention(x, *random_projections(8, 8), dropout=0.5, seed=123)
    live = steps.weights > 0  # the lower triangle: 64 * 65 / 2 = 2080 weights
    kept = live & (steps.dropped != 0)
    assert 0.45 < kept.sum() / live.sum() < 0.55
    torch.testing.assert_close(steps.dropped[kept], 2 * steps.weights[kept])
    torch.testing.assert_close(steps.context, steps.dropped @ steps.values)
    # The expected value is unchanged: on average a row of dropped weights still sums to about 1.
    assert abs(steps.dropped.sum(-1).mean() - 1) < 0.1


def test_dropout_is_reproducible_with_a_seed_and_keeps_global_rng(book_x):
    W = random_projections(3, 2)
    torch.manual_seed(0)
    expected = torch.rand(2)
    torch.manual_seed(0)
    a = causal_attention(book_x, *W, dropout=0.5, seed=5).dropped
    assert torch.equal(torch.rand(2), expected)
    b = causal_attention(book_x, *W, dropout=0.5, seed=5).dropped
    c = causal_attention(rand(40, 3), *W, dropout=0.5, seed=6).dropped
    d = causal_attention(rand(40, 3), *W, dropout=0.5, seed=7).dropped
    assert torch.equal(a, b) and not torch.equal(c, d)


# --- multi-head ---------------------------------------------------------------------------------------------


def test_one_head_equals_causal_attention_then_projection(book_x):
    W = random_projections(3, 4, seed=4)
    W_out, b_out = rand(4, 4, seed=5), rand(4, seed=6)
    single = causal_attention(book_x, *W)
    multi = multi_head_attention(book_x, *W, W_out, b_out, n_heads=1)
    torch.testing.assert_close(multi.weights[0], single.weights)
    torch.testing.assert_close(multi.context, single.context)
    torch.testing.assert_close(multi.output, single.context @ W_out + b_out)


def sdpa_reference(x, W_q, W_k, W_v, W_out, b_out, n_heads):
    b, t, _ = x.shape
    d_out = W_q.shape[1]

    def heads(m):
        return m.view(b, t, n_heads, d_out // n_heads).transpose(1, 2)  # (B, T, d_out) -> (B, H, T, D)

    ctx = F.scaled_dot_product_attention(heads(x @ W_q), heads(x @ W_k), heads(x @ W_v), is_causal=True)
    return ctx.transpose(1, 2).reshape(b, t, d_out) @ W_out + b_out  # (B, H, T, D) -> (B, T, d_out)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("n_heads", "d_out"), [(1, 8), (2, 8), (4, 8), (3, 12)])
def test_multi_head_equals_sdpa(n_heads, d_out, dtype):
    x = rand(2, 9, 5).to(dtype)
    W = [w.to(dtype) for w in random_projections(5, d_out, seed=n_heads)]
    W_out, b_out = rand(d_out, d_out, seed=9).to(dtype), rand(d_out, seed=10).to(dtype)
    steps = multi_head_attention(x, *W, W_out, b_out, n_heads=n_heads)
    assert isinstance(steps, MultiHeadSteps)
    assert steps.weights.shape == (2, n_heads, 9, 9)
    assert steps.head_context.shape == (2, n_heads, 9, d_out // n_heads)
    assert steps.context.shape == steps.output.shape == (2, 9, d_out)
    expected = sdpa_reference(x, *W, W_out, b_out, n_heads)
    # Same maths, different summation order: float64 agrees to 1e-6 easily; float32 outputs of size ~5 carry
    # rounding of a few 1e-7 per operation, so they get 1e-5.
    tol = 1e-6 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(steps.output, expected, atol=tol, rtol=0)


def test_heads_are_concatenated_side_by_side():
    x = rand(7, 6)
    steps = multi_head_attention(x, *random_projections(6, 6), torch.eye(6), n_heads=3)
    assert steps.weights.shape == (3, 7, 7)  # no batch dimension in, none out
    for h in range(3):
        torch.testing.assert_close(steps.context[:, 2 * h : 2 * h + 2], steps.head_context[h])
    torch.testing.assert_close(steps.output, steps.context)  # identity projection, no bias


def test_multi_head_matches_the_model(tiny_cfg):
    from core.model import MultiHeadAttention

    torch.manual_seed(0)
    att = MultiHeadAttention(tiny_cfg).eval()
    x = rand(2, 5, tiny_cfg.emb_dim)
    with torch.no_grad():
        expected, _ = att(x)
        W = (att.W_query.weight.T, att.W_key.weight.T, att.W_value.weight.T)  # nn.Linear stores Wᵀ
        steps = multi_head_attention(
            x, *W, att.out_proj.weight.T, att.out_proj.bias, n_heads=tiny_cfg.n_heads
        )
    torch.testing.assert_close(steps.output, expected, atol=1e-5, rtol=1e-5)


# --- results ------------------------------------------------------------------------------------------------


def test_steps_are_frozen_and_convert_to_numpy(book_x):
    W = [w.requires_grad_() for w in random_projections(3, 2)]
    steps = causal_attention(book_x, *W, dropout=0.2, seed=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        steps.weights = None
    arrays = steps.to_numpy()
    assert list(arrays) == [f.name for f in dataclasses.fields(AttentionSteps)]
    assert arrays["weights"].shape == (6, 6)
    assert list(simplified_self_attention(book_x).to_numpy()) == ["scores", "weights", "context"]


# --- errors -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "fragment"),
    [
        (torch.ones(3), "x must have shape \\(tokens, d_in\\)"),
        (torch.ones(1, 2, 3, 4), "got \\(1, 2, 3, 4\\)"),
        (torch.ones(4, 3, dtype=torch.long), "floating-point embeddings"),
        ([[0.1, 0.2, 0.3]], "x must be a tensor"),
        (torch.ones(0, 3), "no tokens"),
    ],
)
def test_bad_x(x, fragment):
    W = random_projections(3, 2)
    for call in (
        lambda: simplified_self_attention(x),
        lambda: self_attention_qkv(x, *W),
        lambda: causal_attention(x, *W),
        lambda: multi_head_attention(x, *W, torch.eye(2), n_heads=1),
    ):
        with pytest.raises(LabError, match=fragment):
            call()


def test_bad_projection_shapes(book_x):
    W_q, W_k, W_v = random_projections(3, 4)
    with pytest.raises(LabError, match=r"W_query must have shape \(3, d_out\).*got \(5, 4\)"):
        self_attention_qkv(book_x, torch.ones(5, 4), W_k, W_v)
    with pytest.raises(LabError, match=r"W_key must have shape \(3, 4\) because keys are compared"):
        causal_attention(book_x, W_q, torch.ones(3, 2), W_v)
    with pytest.raises(LabError, match=r"W_value must have shape \(3, d_out\)"):
        causal_attention(book_x, W_q, W_k, torch.ones(4))
    with pytest.raises(LabError, match="W_query must have shape .* got list"):
        causal_attention(book_x, [[1.0]], W_k, W_v)
    self_attention_qkv(book_x, W_q, W_k, torch.ones(3, 7))  # values may be wider than queries in one head


def test_bad_multi_head_arguments(book_x):
    W = random_projections(3, 4)
    with pytest.raises(LabError, match="d_out = 4 is not divisible by n_heads = 3"):
        multi_head_attention(book_x, *W, torch.eye(4), n_heads=3)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(LabError, match="n_heads must be a (positive )?whole number"):
            multi_head_attention(book_x, *W, torch.eye(4), n_heads=bad)
    with pytest.raises(LabError, match=r"W_out must have shape \(4, 4\)"):
        multi_head_attention(book_x, *W, torch.eye(3), n_heads=2)
    with pytest.raises(LabError, match=r"W_value must have shape \(3, 4\)"):
        multi_head_attention(book_x, W[0], W[1], torch.ones(3, 6), torch.eye(4), n_heads=2)
    with pytest.raises(LabError, match=r"b_out must have shape \(4,\)"):
        multi_head_attention(book_x, *W, torch.eye(4), torch.zeros(3), n_heads=2)


@pytest.mark.parametrize("dropout", [1.0, -0.1, 1.5, "0.1", None])
def test_bad_dropout(book_x, dropout):
    W = random_projections(3, 2)
    with pytest.raises(LabError, match=r"dropout must be (a finite number )?between 0 and 1 \(exclusive of 1\)"):
        causal_attention(book_x, *W, dropout=dropout)
    with pytest.raises(LabError, match=r"dropout must be (a finite number )?between 0 and 1 \(exclusive of 1\)"):
        multi_head_attention(book_x, *W, torch.eye(2), n_heads=1, dropout=dropout)


def test_bad_seed_and_sizes(book_x):
    with pytest.raises(LabError, match="seed must be a whole number"):
        causal_attention(book_x, *random_projections(3, 2), dropout=0.1, seed="x")
    with pytest.raises(LabError, match="d_out must be a positive whole number"):
        random_projections(3, 0)
    with pytest.raises(ValueError):  # LabError is a ValueError
        random_projections(-1, 2)
