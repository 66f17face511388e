"""Token and position embeddings, looked at from outside: lookups, projections, neighbours, similarities.

The Embeddings page calls these functions and renders what comes back (numpy arrays and plain lists); the math
lives here so it can be tested and reused from a notebook.

- :func:`embed_ids` is the book's section 2.8: token embeddings (1, T, C) + position embeddings (T, C).
- :func:`pca` projects vectors onto their 2 or 3 directions of largest variance (``torch.linalg.svd``).
- :func:`nearest_neighbours` ranks rows of an embedding matrix by cosine similarity to one row.
- :func:`position_similarity` is the cosine similarity between the first positions' vectors.
- :func:`most_frequent_tokens` picks the N most common ids of a token stream (for a projection of a corpus).

Shape legend: V vocabulary size, P context length (positions), C embedding size, T tokens, N vectors, k components.

Example:
    >>> import torch
    >>> from core.config import GPTConfig
    >>> from core.model import GPTModel
    >>> model = GPTModel(GPTConfig.preset("tiny"))
    >>> lookup = embed_ids(model, [15496, 11, 995])
    >>> lookup.token_embeddings.shape, lookup.position_embeddings.shape, lookup.input_embeddings.shape
    ((1, 3, 64), (3, 64), (1, 3, 64))
    >>> pca(torch.randn(20, 64), n_components=2).coords.shape
    (20, 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from core.config import PRESETS, GPTConfig
from core.errors import LabError, check_int

MAX_POSITIONS = 64  # a 64 × 64 similarity heatmap is still readable


# ------------------------------------------------------------------------------------------------ validation
def _matrix(vectors: Any, name: str = "vectors") -> torch.Tensor:
    """``vectors`` (a tensor, array or nested list) as a finite float32 (N, C) tensor, else a LabError."""
    try:
        m = torch.as_tensor(np.asarray(vectors) if not isinstance(vectors, torch.Tensor) else vectors)
    except (TypeError, ValueError, RuntimeError):
        raise LabError(f"{name} must be a 2-D array of numbers, got {type(vectors).__name__}.") from None
    if m.ndim != 2:
        raise LabError(f"{name} must be a 2-D matrix (one vector per row), got shape {tuple(m.shape)}.")
    if m.dtype == torch.bool or not (m.is_floating_point() or m.dtype in (torch.int32, torch.int64)):
        raise LabError(f"{name} must hold numbers, got {m.dtype}; convert them to floats.")
    m = m.detach().to(torch.float32)
    if not bool(torch.isfinite(m).all()):
        raise LabError(f"{name} contains NaN or infinite values; the model's weights are broken or unset.")
    return m


def _embedding_weight(layer_or_weight: Any, name: str) -> torch.Tensor:
    if isinstance(layer_or_weight, nn.Embedding):
        layer_or_weight = layer_or_weight.weight
    return _matrix(layer_or_weight, name)


def _layers(model: Any) -> tuple[nn.Embedding, nn.Embedding]:
    tok, pos = getattr(model, "tok_emb", None), getattr(model, "pos_emb", None)
    if not isinstance(tok, nn.Embedding) or not isinstance(pos, nn.Embedding):
        raise LabError(
            f"Expected a GPT model with tok_emb and pos_emb embedding layers, got {type(model).__name__}; "
            "pass a core.model.GPTModel."
        )
    return tok, pos


# ------------------------------------------------------------------------------------------------ lookups
@dataclass(frozen=True)
class EmbeddingLookup:
    """The book's section 2.8 for one sequence, as numpy arrays.

    Attributes:
        ids: (1, T) token ids, a batch of one.
        token_embeddings: (1, T, C) rows of the token-embedding matrix, one per id.
        position_embeddings: (T, C) rows 0 … T-1 of the position-embedding matrix.
        input_embeddings: (1, T, C) their sum (broadcast over the batch): what the first block receives.
        n_tokens: how many ids were given (T is smaller when they did not fit the context).
    """

    ids: np.ndarray
    token_embeddings: np.ndarray
    position_embeddings: np.ndarray
    input_embeddings: np.ndarray
    n_tokens: int

    @property
    def truncated(self) -> bool:
        return self.ids.shape[1] < self.n_tokens


def embed_ids(model: Any, ids: Sequence[int] | torch.Tensor) -> EmbeddingLookup:
    """Look up token and position embeddings for one sequence and add them (the model's first step).

    Args:
        model: a :class:`core.model.GPTModel` (anything with ``tok_emb`` and ``pos_emb`` ``nn.Embedding``).
        ids: token ids, shape (T,). Only the first ``context_length`` are used: there are no more positions.

    Returns:
        An :class:`EmbeddingLookup`.

    Raises:
        LabError: no ids, or an id the model's vocabulary does not have.

    Example:
        >>> from core.config import GPTConfig
        >>> from core.model import GPTModel
        >>> embed_ids(GPTModel(GPTConfig.preset("tiny")), [40, 367]).input_embeddings.shape
        (1, 2, 64)
    """
    tok_emb, pos_emb = _layers(model)
    ids_t = torch.as_tensor(list(ids) if not isinstance(ids, torch.Tensor) else ids, dtype=torch.long).flatten()
    n = ids_t.numel()
    if n == 0:
        raise LabError("There are no tokens to embed; type a sentence with at least one word.")
    vocab = tok_emb.num_embeddings
    if int(ids_t.min()) < 0 or int(ids_t.max()) >= vocab:
        raise LabError(
            f"Token id {int(ids_t.max())} is outside this model's vocabulary of {vocab:,} ids; the model was "
            "made for another tokenizer, so encode the text with the tokenizer it was trained with."
        )
    ids_t = ids_t[: pos_emb.num_embeddings].unsqueeze(0)  # (1, T): a batch of one sequence
    t = ids_t.shape[1]
    with torch.no_grad():
        tok = tok_emb(ids_t)  # (1, T, C)
        pos = pos_emb(torch.arange(t, device=ids_t.device))  # (T, C): one vector per position 0 … T-1
        x = tok + pos  # (1, T, C): the position vectors broadcast over the batch dimension
    return EmbeddingLookup(ids_t.numpy(), tok.float().numpy(), pos.float().numpy(), x.float().numpy(), n)


def token_vectors(model_or_weight: Any, ids: Sequence[int]) -> np.ndarray:
    """Rows ``ids`` of a token-embedding matrix, shape (N, C) (from a model, an ``nn.Embedding`` or a matrix)."""
    layer = _layers(model_or_weight)[0] if hasattr(model_or_weight, "tok_emb") else model_or_weight
    w = _embedding_weight(layer, "The token-embedding matrix")  # (V, C)
    idx = _ids(ids, w.shape[0])
    return w[idx].numpy()  # (N, C)


def _ids(ids: Any, vocab: int) -> torch.Tensor:
    try:
        idx = torch.as_tensor(list(ids) if not isinstance(ids, torch.Tensor) else ids, dtype=torch.long)
    except (TypeError, ValueError, RuntimeError):
        raise LabError(f"Token ids must be whole numbers, got {ids!r}.") from None
    if idx.ndim != 1 or idx.numel() == 0:
        raise LabError("Pass at least one token id, as a flat list such as [40, 367].")
    if int(idx.min()) < 0 or int(idx.max()) >= vocab:
        raise LabError(f"Token ids must be between 0 and {vocab - 1:,} for this vocabulary of {vocab:,} ids.")
    return idx


# ------------------------------------------------------------------------------------------------ projection
@dataclass(frozen=True)
class Projection:
    """Vectors projected onto their principal components.

    Attributes:
        coords: (N, k) coordinates of each vector along the k directions of largest variance.
        explained_variance_ratio: (k,) share of the total variance each direction holds, largest first.
        components: (k, C) the directions themselves (unit vectors).
    """

    coords: np.ndarray
    explained_variance_ratio: np.ndarray
    components: np.ndarray


def pca(vectors: Any, n_components: int = 2) -> Projection:
    """Principal component analysis: the k orthogonal directions along which the vectors vary most.

    Centre the rows, take the SVD ``X = U S Vᵀ``: the rows of ``Vᵀ`` are the directions, ``U S`` the
    coordinates and ``S² / (N - 1)`` the variance along each. Signs are fixed (largest loading positive) so the
    picture does not flip between runs.

    Args:
        vectors: (N, C) one vector per row; N ≥ 2.
        n_components: k, usually 2 or 3; at most min(N, C).

    Returns:
        A :class:`Projection`.

    Example:
        >>> p = pca([[0.0, 0.0], [2.0, 0.1], [4.0, -0.1]], n_components=2)
        >>> [round(float(r), 3) for r in p.explained_variance_ratio]
        [0.998, 0.002]
    """
    x = _matrix(vectors)
    n, c = x.shape
    if n < 2:
        raise LabError(f"A projection needs at least 2 vectors, got {n}; pick more tokens.")
    k = check_int(n_components, "n_components", low=1, fix="use 2 or 3 for a picture")
    if k > min(n, c):
        raise LabError(
            f"Cannot find {k} directions in {n} vectors of size {c}; use at most {min(n, c)} components."
        )
    centred = x - x.mean(dim=0, keepdim=True)  # (N, C)
    u, s, vh = torch.linalg.svd(centred.double(), full_matrices=False)  # (N, r), (r,), (r, C)
    u, s, vh = u[:, :k], s[:k], vh[:k]
    # Each direction's sign is arbitrary; make its largest loading positive so plots are reproducible.
    signs = torch.sign(vh.gather(1, vh.abs().argmax(dim=1, keepdim=True))).squeeze(1)  # (k,)
    signs[signs == 0] = 1.0
    vh, u = vh * signs[:, None], u * signs[None, :]
    variance = s**2 / (n - 1)  # (k,)
    total = centred.double().pow(2).sum() / (n - 1)
    ratio = variance / total if float(total) > 0 else torch.zeros_like(variance)
    return Projection((u * s).float().numpy(), ratio.float().numpy(), vh.float().numpy())


# ------------------------------------------------------------------------------------------------ similarity
def cosine_similarity_matrix(vectors: Any) -> np.ndarray:
    """(N, N) cosine similarity between every pair of rows: 1 = same direction, 0 = unrelated, -1 = opposite.

    Example:
        >>> cosine_similarity_matrix([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]]).round(3).tolist()
        [[1.0, 0.0, -1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 1.0]]
    """
    unit = torch.nn.functional.normalize(_matrix(vectors), dim=1)  # (N, C), each row of length 1
    return (unit @ unit.T).clamp(-1.0, 1.0).numpy()  # (N, N)


def nearest_neighbours(
    weight: Any,
    query: int,
    k: int = 10,
    candidates: Sequence[int] | None = None,
    include_self: bool = False,
) -> list[tuple[int, float]]:
    """The ``k`` rows of an embedding matrix most similar (cosine) to row ``query``.

    Args:
        weight: (V, C) embedding matrix, or an ``nn.Embedding`` (e.g. ``model.tok_emb``).
        query: the row (token id) to compare with.
        k: how many neighbours to return.
        candidates: only rank these rows (e.g. tokens that occur in a corpus); default all rows.
        include_self: keep ``query`` itself in the ranking (it is always first, at similarity 1).

    Returns:
        ``[(id, similarity), …]``, most similar first; ties go to the smaller id.

    Example:
        >>> nearest_neighbours([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]], query=0, k=2, include_self=True)[0]
        (0, 1.0)
    """
    w = _embedding_weight(weight, "The embedding matrix")  # (V, C)
    v = w.shape[0]
    q = _ids([query], v)[0]
    k = check_int(k, "k", low=1, fix="ask for at least one neighbour")
    rows = torch.arange(v) if candidates is None else torch.unique(_ids(candidates, v))  # (M,) sorted
    if not include_self:
        rows = rows[rows != q]
    if rows.numel() == 0:
        raise LabError("There are no other tokens to compare with; pick a larger set of candidates.")
    unit = torch.nn.functional.normalize(w, dim=1)  # (V, C)
    sims = (unit[rows] @ unit[q]).clamp(-1.0, 1.0)  # (M,)
    # Stable sort on the negated similarity keeps ties in id order (rows are sorted).
    order = torch.sort(-sims, stable=True).indices[:k]
    return [(int(rows[i]), round(float(sims[i]), 6)) for i in order]


def position_similarity(model_or_weight: Any, n_positions: int = MAX_POSITIONS) -> np.ndarray:
    """(n, n) cosine similarity between the position vectors of positions 0 … n-1.

    A trained model's neighbouring positions get similar vectors (a bright band along the diagonal); at
    random init every off-diagonal value is close to 0.

    Args:
        model_or_weight: a GPT model (its ``pos_emb``), an ``nn.Embedding`` or a (P, C) matrix.
        n_positions: how many positions to compare; capped at the context length P.
    """
    layer = _layers(model_or_weight)[1] if hasattr(model_or_weight, "pos_emb") else model_or_weight
    w = _embedding_weight(layer, "The position-embedding matrix")  # (P, C)
    n = check_int(n_positions, "n_positions", low=1, fix="compare at least one position")
    return cosine_similarity_matrix(w[: min(n, w.shape[0])])


def most_frequent_tokens(ids: Sequence[int] | torch.Tensor, n: int) -> list[tuple[int, int]]:
    """The ``n`` most frequent ids of a token stream as ``[(id, count), …]``, most frequent first.

    Ties go to the smaller id, so the choice is deterministic.

    Example:
        >>> most_frequent_tokens([5, 3, 5, 7, 3, 5], n=2)
        [(5, 3), (3, 2)]
    """
    n = check_int(n, "n", low=1, fix="pick at least one token")
    idx = torch.as_tensor(list(ids) if not isinstance(ids, torch.Tensor) else ids, dtype=torch.long).flatten()
    if idx.numel() == 0:
        raise LabError("The token stream is empty; encode a non-empty text first.")
    if int(idx.min()) < 0:
        raise LabError("Token ids must not be negative.")
    values, counts = torch.unique(idx, return_counts=True)  # both (U,), values sorted ascending
    order = torch.sort(-counts, stable=True).indices[:n]  # stable: equal counts stay in id order
    return [(int(values[i]), int(counts[i])) for i in order]


def matching_preset(cfg: Any) -> str | None:
    """The name of the preset with the same sizes as ``cfg`` (vocabulary, context, width, heads, depth), if any.

    Used to compare a trained model with the same architecture at random init. Dropout, biases and weight
    tying do not change the embedding matrices' shapes, so they are ignored.

    Example:
        >>> from core.config import GPTConfig
        >>> matching_preset(GPTConfig.preset("tiny", drop_rate=0.1)), matching_preset(GPTConfig(emb_dim=24))
        ('tiny', None)
    """
    fields = ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers")
    if not isinstance(cfg, GPTConfig):
        raise LabError(f"Expected a GPTConfig, got {type(cfg).__name__}; pass model.cfg.")
    for name in PRESETS:
        preset = GPTConfig.preset(name)
        if all(getattr(preset, f) == getattr(cfg, f) for f in fields):
            return name
    return None
