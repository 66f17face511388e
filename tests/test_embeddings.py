"""core.embeddings: lookups, PCA, cosine neighbours, position similarity, frequent tokens, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.config import GPTConfig
from core.embeddings import (
    cosine_similarity_matrix,
    embed_ids,
    matching_preset,
    most_frequent_tokens,
    nearest_neighbours,
    pca,
    position_similarity,
    token_vectors,
)
from core.errors import LabError


def test_embed_ids_shapes_and_sum(tiny_model):
    look = embed_ids(tiny_model, [5, 7, 9, 5])
    assert look.ids.shape == (1, 4)
    assert look.token_embeddings.shape == (1, 4, 32)
    assert look.position_embeddings.shape == (4, 32)
    assert look.input_embeddings.shape == (1, 4, 32)
    np.testing.assert_allclose(look.input_embeddings, look.token_embeddings + look.position_embeddings[None])
    # Same id → same token vector; the row is the embedding matrix's row.
    np.testing.assert_array_equal(look.token_embeddings[0, 0], look.token_embeddings[0, 3])
    np.testing.assert_array_equal(look.token_embeddings[0, 1], tiny_model.tok_emb.weight[7].detach().numpy())
    assert not look.truncated


def test_embed_ids_truncates_to_context(tiny_model):
    look = embed_ids(tiny_model, list(range(50)))  # context_length is 32
    assert look.ids.shape == (1, 32) and look.n_tokens == 50 and look.truncated


@pytest.mark.parametrize("ids, match", [([], "no tokens"), ([101], "outside"), ([-1], "outside")])
def test_embed_ids_bad_input(tiny_model, ids, match):
    with pytest.raises(LabError, match=match):
        embed_ids(tiny_model, ids)
    with pytest.raises(LabError, match="tok_emb"):
        embed_ids(object(), [1])


def test_pca_shape_variance_order_and_reconstruction():
    gen = torch.Generator().manual_seed(0)
    # Three directions with very different spreads: PCA must find them in order of variance.
    x = torch.randn(200, 3, generator=gen) * torch.tensor([10.0, 3.0, 0.5])
    x = x @ torch.linalg.qr(torch.randn(3, 3, generator=gen))[0].T  # rotate into arbitrary axes
    x = torch.cat([x, torch.zeros(200, 5)], dim=1) + 7.0  # (200, 8), off-centre
    p = pca(x, n_components=3)
    assert p.coords.shape == (200, 3) and p.components.shape == (3, 8)
    r = p.explained_variance_ratio
    assert r[0] > r[1] > r[2] > 0 and abs(float(r.sum()) - 1.0) < 1e-4  # the 3 directions hold all variance
    assert np.all(np.diff(p.coords.var(axis=0)) < 0)
    np.testing.assert_allclose(p.components @ p.components.T, np.eye(3), atol=1e-5)  # orthonormal
    centred = (x - x.mean(0)).numpy()
    np.testing.assert_allclose(p.coords @ p.components, centred, atol=1e-3)  # nothing lost in 3 components
    np.testing.assert_allclose(pca(x, 3).coords, p.coords)  # deterministic signs


def test_pca_2d_matches_torch_pca_lowrank_variances():
    x = torch.randn(60, 16, generator=torch.Generator().manual_seed(1))
    p = pca(x, 2)
    _, s, _ = torch.pca_lowrank(x, q=16, center=True)  # q = full rank: exact, not approximate
    np.testing.assert_allclose(p.coords.var(axis=0, ddof=1), (s[:2] ** 2 / 59).numpy(), rtol=1e-3)


def test_pca_identical_vectors_have_zero_ratio():
    p = pca(np.ones((5, 4)), 2)
    assert np.all(p.explained_variance_ratio == 0) and np.all(np.isfinite(p.coords))


@pytest.mark.parametrize(
    "vectors, k, match",
    [
        (np.zeros((1, 4)), 2, "at least 2 vectors"),
        (np.zeros((5, 4)), 5, "at most 4"),
        (np.zeros((5, 4)), 0, "n_components must be a positive whole number"),
        (np.zeros((5, 4)), 2.5, "whole number"),
        (np.zeros(4), 1, "2-D"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), 1, "NaN"),
        ("text", 1, "2-D"),
    ],
)
def test_pca_bad_input(vectors, k, match):
    with pytest.raises(LabError, match=match):
        pca(vectors, k)


def test_cosine_neighbour_of_a_vector_is_itself():
    w = torch.randn(50, 8, generator=torch.Generator().manual_seed(2))
    for q in (0, 17, 49):
        best, sim = nearest_neighbours(w, q, k=3, include_self=True)[0]
        assert best == q and sim == pytest.approx(1.0, abs=1e-5)
    others = nearest_neighbours(w, 17, k=5)
    assert 17 not in [i for i, _ in others] and len(others) == 5
    sims = [s for _, s in others]
    assert sims == sorted(sims, reverse=True)
    full = cosine_similarity_matrix(w)
    assert others[0][1] == pytest.approx(float(np.delete(full[17], 17).max()), abs=1e-5)


def test_neighbours_scaling_candidates_and_embedding_layer():
    w = torch.tensor([[1.0, 0.0], [10.0, 0.1], [0.0, 1.0], [-1.0, 0.0]])
    assert nearest_neighbours(w, 0, k=1)[0][0] == 1  # cosine ignores length
    assert nearest_neighbours(w, 0, k=1, candidates=[2, 3])[0] == (2, 0.0)
    assert nearest_neighbours(torch.nn.Embedding.from_pretrained(w), 0, k=4)[-1] == (3, -1.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"query": 9}, "between 0 and 3"), ({"query": 0, "k": 0}, "k must be a positive whole number"),
     ({"query": 0, "candidates": [0]}, "no other tokens"), ({"query": 0, "candidates": [7]}, "between 0 and 3")],
)
def test_neighbours_bad_input(kwargs, match):
    with pytest.raises(LabError, match=match):
        nearest_neighbours(torch.eye(4), **kwargs)


def test_position_similarity(tiny_model):
    sim = position_similarity(tiny_model, 100)  # capped at the context length 32
    assert sim.shape == (32, 32)
    np.testing.assert_allclose(np.diag(sim), 1.0, atol=1e-5)
    np.testing.assert_allclose(sim, sim.T, atol=1e-6)
    assert position_similarity(tiny_model.pos_emb, 8).shape == (8, 8)
    with pytest.raises(LabError, match="n_positions must be a positive whole number"):
        position_similarity(tiny_model, 0)


def test_most_frequent_tokens_and_token_vectors(tiny_model):
    assert most_frequent_tokens([5, 3, 5, 7, 3, 5, 9], 3) == [(5, 3), (3, 2), (7, 1)]
    assert most_frequent_tokens(torch.tensor([2, 2, 1]), 10) == [(2, 2), (1, 1)]
    with pytest.raises(LabError, match="empty"):
        most_frequent_tokens([], 3)
    with pytest.raises(LabError, match="n must be a positive whole number"):
        most_frequent_tokens([1], 0)
    v = token_vectors(tiny_model, [3, 1])
    np.testing.assert_array_equal(v[1], tiny_model.tok_emb.weight[1].detach().numpy())
    with pytest.raises(LabError, match="between 0 and 100"):
        token_vectors(tiny_model, [101])


def test_matching_preset():
    assert matching_preset(GPTConfig.preset("mini", qkv_bias=True)) == "mini"
    assert matching_preset(GPTConfig.preset("gpt2-small", tie_weights=True)) == "gpt2-small"
    assert matching_preset(GPTConfig.preset("tiny", emb_dim=32)) is None
    with pytest.raises(LabError, match="GPTConfig"):
        matching_preset({"emb_dim": 64})
