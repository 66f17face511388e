"""Self-attention step by step, as the book's chapter 3 builds it, returning every intermediate tensor.

Four teaching functions, each one step further than the last:

1. :func:`simplified_self_attention`: no weights, scores are dot products of the inputs themselves (3.3).
2. :func:`self_attention_qkv`: trainable query/key/value projections and scaling by sqrt(d_k) (3.4).
3. :func:`causal_attention`: a mask hides future tokens; dropout on the attention weights (3.5).
4. :func:`multi_head_attention`: several heads side by side, then an output projection (3.6).

Projection matrices follow the book's section 3.4.1: ``queries = x @ W_query`` with ``W_query`` of shape
(d_in, d_out). (An ``nn.Linear`` stores the transpose, so pass ``linear.weight.T``.) The functions do not wrap
anything in ``no_grad``; call ``.to_numpy()`` on the result to get detached arrays for display.

Shape legend: B batch (optional: a 2-D ``x`` gives results without it), T tokens, d_in input size,
d_out output size, H heads, D head size (d_out // H).

Example:
    >>> words, x = book_example_inputs()
    >>> steps = simplified_self_attention(x)
    >>> [round(v, 4) for v in steps.context[1].tolist()]
    [0.4419, 0.6515, 0.5683]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import torch

from core.errors import LabError, check_int, check_number


@dataclass(frozen=True)
class AttentionSteps:
    """The intermediates of one attention computation; ``None`` where the variant has no such step.

    queries/keys (…, T, d_k), values (…, T, d_v); scores, scaled, masked, weights, dropped (…, T, T);
    context (…, T, d_v), where … is B for a batched input and nothing otherwise.
    """

    queries: torch.Tensor | None = None
    keys: torch.Tensor | None = None
    values: torch.Tensor | None = None
    scores: torch.Tensor | None = None
    scaled: torch.Tensor | None = None
    masked: torch.Tensor | None = None
    weights: torch.Tensor | None = None
    dropped: torch.Tensor | None = None
    context: torch.Tensor | None = None

    def to_numpy(self) -> dict[str, np.ndarray]:
        """The steps that apply, in order, as detached float arrays (for tables and heatmaps)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = value.detach().cpu().float().numpy()
        return out


@dataclass(frozen=True)
class MultiHeadSteps(AttentionSteps):
    """:class:`AttentionSteps` per head plus the concatenation and the output projection.

    queries/keys/values (…, H, T, D); scores … dropped (…, H, T, T); head_context (…, H, T, D);
    context (…, T, d_out) is the heads concatenated; output (…, T, d_out) after ``@ W_out + b_out``.
    """

    head_context: torch.Tensor | None = None
    output: torch.Tensor | None = None


def book_example_inputs() -> tuple[list[str], torch.Tensor]:
    """The book's six words "Your journey starts with one step" with their 3-D embeddings, (6, 3)."""
    words = ["Your", "journey", "starts", "with", "one", "step"]
    x = torch.tensor(
        [
            [0.43, 0.15, 0.89],  # Your
            [0.55, 0.87, 0.66],  # journey
            [0.57, 0.85, 0.64],  # starts
            [0.22, 0.58, 0.33],  # with
            [0.77, 0.25, 0.10],  # one
            [0.05, 0.80, 0.55],  # step
        ]
    )
    return words, x


def random_projections(
    d_in: int, d_out: int, seed: int = 123
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Reproducible W_query, W_key, W_value, each (d_in, d_out), uniform in [0, 1) like the book's rand.

    A private generator keeps the global RNG untouched. With the book's seed 123, ``d_in=3, d_out=2`` gives
    the book's matrices of section 3.4.1.

    Example:
        >>> W_q, W_k, W_v = random_projections(3, 2, seed=123)
        >>> W_q.shape
        torch.Size([3, 2])
    """
    for name, value in (("d_in", d_in), ("d_out", d_out)):
        check_int(value, name, low=1, fix="try a size such as 3")
    gen = torch.Generator().manual_seed(int(seed))
    return tuple(torch.rand(d_in, d_out, generator=gen) for _ in range(3))  # type: ignore[return-value]


# --- checks ------------------------------------------------------------------------------------------


def _check_x(x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise LabError(f"x must be a tensor of embeddings, got {type(x).__name__}; wrap it in torch.tensor.")
    if x.ndim not in (2, 3):
        raise LabError(
            f"x must have shape (tokens, d_in) or (batch, tokens, d_in), got {tuple(x.shape)}; "
            "add or remove a batch dimension."
        )
    if not x.is_floating_point():
        raise LabError(
            f"x must hold floating-point embeddings, got {x.dtype}; "
            "pass token ids through an embedding layer first."
        )
    if x.shape[-2] == 0:
        raise LabError("x has no tokens; attention needs at least one token to attend to.")
    return x


def _check_w(name: str, w: torch.Tensor, d_in: int, d_out: int | None = None, why: str = "") -> None:
    """Raise unless ``w`` is a (d_in, d_out) matrix; ``d_out=None`` accepts any width."""
    fits = isinstance(w, torch.Tensor) and w.ndim == 2 and w.shape[0] == d_in and d_out in (None, w.shape[1])
    if not fits:
        expected = f"({d_in}, {'d_out' if d_out is None else d_out})"
        shape = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
        why = why or f"its first size must equal x's embedding size {d_in}"
        raise LabError(f"{name} must have shape {expected} because {why}, got {shape}; fix its shape.")


def _check_dropout(dropout: float, seed: int | None) -> float:
    if seed is not None:
        check_int(seed, "seed", fix="try 123, or None")
    return check_number(dropout, "dropout", low=0, high=1, high_open=True, fix="try 0.1")


def _project(x, W_query, W_key, W_value):
    d_in = x.shape[-1]
    _check_w("W_query", W_query, d_in)
    _check_w("W_key", W_key, d_in, W_query.shape[1], "keys are compared with queries by a dot product")
    _check_w("W_value", W_value, d_in)
    return x @ W_query, x @ W_key, x @ W_value  # (…, T, d_out) each


def _drop(weights: torch.Tensor, p: float, seed: int | None) -> torch.Tensor:
    """Zero each weight with probability p and scale the survivors by 1 / (1 - p).

    The scaling keeps every weight's *expected* value unchanged, so the model sees the same average signal
    in training (with dropout) and at inference (without it). That is why kept entries grow: p = 0.5 doubles
    them.
    """
    if p == 0.0:
        return weights
    gen = torch.Generator(device=weights.device).manual_seed(seed) if seed is not None else None
    keep = torch.rand(weights.shape, generator=gen, device=weights.device) >= p
    return weights * keep / (1.0 - p)


def _causal_steps(q, k, v, dropout: float, seed: int | None) -> tuple[torch.Tensor, ...]:
    """scores → scaled → masked → weights → dropped → context for (…, T, d) queries/keys/values."""
    t = q.shape[-2]
    scores = q @ k.transpose(-2, -1)  # (…, T, T): row i holds token i's dot product with every token
    scaled = scores / math.sqrt(k.shape[-1])  # keeps softmax from saturating when d_k is large
    future = torch.ones(t, t, dtype=torch.bool, device=q.device).triu(diagonal=1)  # True above the diagonal
    masked = scaled.masked_fill(future, float("-inf"))  # exp(-inf) = 0: future tokens get no weight
    weights = torch.softmax(masked, dim=-1)
    dropped = _drop(weights, dropout, seed)
    return scores, scaled, masked, weights, dropped, dropped @ v  # context (…, T, d_v)


# --- the four steps ----------------------------------------------------------------------------------


def simplified_self_attention(x: torch.Tensor) -> AttentionSteps:
    """Attention without trainable weights: each token mixes all tokens, weighted by similarity (book 3.3).

    Args:
        x: embeddings, (T, d_in) or (B, T, d_in).

    Returns:
        ``scores = x @ xᵀ`` (…, T, T), ``weights = softmax(scores)`` (rows sum to 1) and
        ``context = weights @ x``. No scaling, masking or dropout in this first version, as in the book.

    Example:
        >>> _, x = book_example_inputs()
        >>> simplified_self_attention(x).weights.shape
        torch.Size([6, 6])
    """
    x = _check_x(x)
    scores = x @ x.transpose(-2, -1)  # (…, T, T)
    weights = torch.softmax(scores, dim=-1)
    return AttentionSteps(scores=scores, weights=weights, context=weights @ x)  # context (…, T, d_in)


def self_attention_qkv(
    x: torch.Tensor, W_query: torch.Tensor, W_key: torch.Tensor, W_value: torch.Tensor
) -> AttentionSteps:
    """Scaled dot-product attention with query, key and value projections (book 3.4), no mask.

    Args:
        x: embeddings, (T, d_in) or (B, T, d_in).
        W_query, W_key, W_value: (d_in, d_out) projections.

    Returns:
        queries/keys/values (…, T, d_out); ``scores = Q Kᵀ``; ``scaled = scores / sqrt(d_k)``;
        ``weights = softmax(scaled)``; ``context = weights @ V``.

    Example:
        >>> _, x = book_example_inputs()
        >>> steps = self_attention_qkv(x, *random_projections(3, 2, seed=123))
        >>> [round(v, 4) for v in steps.context[1].tolist()]
        [0.3061, 0.821]
    """
    x = _check_x(x)
    q, k, v = _project(x, W_query, W_key, W_value)
    scores = q @ k.transpose(-2, -1)  # (…, T, T)
    scaled = scores / math.sqrt(k.shape[-1])
    weights = torch.softmax(scaled, dim=-1)
    return AttentionSteps(
        queries=q, keys=k, values=v, scores=scores, scaled=scaled, weights=weights, context=weights @ v
    )


def causal_attention(
    x: torch.Tensor,
    W_query: torch.Tensor,
    W_key: torch.Tensor,
    W_value: torch.Tensor,
    dropout: float = 0.0,
    seed: int | None = None,
) -> AttentionSteps:
    """Causal (masked) attention with dropout on the weights (book 3.5): no token can look ahead.

    Args:
        x: embeddings, (T, d_in) or (B, T, d_in).
        W_query, W_key, W_value: (d_in, d_out) projections.
        dropout: probability p of zeroing each attention weight. Kept weights are multiplied by 1 / (1 - p) so
            their expected value stays the same; at inference p is 0 and ``dropped == weights``.
        seed: makes the dropout pattern reproducible (a private generator; the global RNG is untouched).

    Returns:
        The steps of :func:`self_attention_qkv` plus ``masked`` (``-inf`` above the diagonal) and ``dropped``;
        ``context = dropped @ V``.

    Example:
        >>> _, x = book_example_inputs()
        >>> w = causal_attention(x, *random_projections(3, 2)).weights
        >>> bool((w.triu(diagonal=1) == 0).all())
        True
    """
    x = _check_x(x)
    p = _check_dropout(dropout, seed)
    q, k, v = _project(x, W_query, W_key, W_value)
    scores, scaled, masked, weights, dropped, context = _causal_steps(q, k, v, p, seed)
    return AttentionSteps(q, k, v, scores, scaled, masked, weights, dropped, context)


def _check_heads(x: torch.Tensor, W_query: torch.Tensor, W_value: torch.Tensor, W_out: torch.Tensor,
                 b_out: torch.Tensor | None, n_heads: int) -> int:
    """Check the multi-head shapes against ``x``; return d_out."""
    check_int(n_heads, "n_heads", low=1, fix="try 2")
    _check_w("W_query", W_query, x.shape[-1])
    d_out = W_query.shape[1]
    if d_out % n_heads:
        raise LabError(
            f"d_out = {d_out} is not divisible by n_heads = {n_heads}; pick a head count that divides it."
        )
    _check_w("W_value", W_value, x.shape[-1], d_out, "every head's values must match its queries in width")
    _check_w("W_out", W_out, d_out, d_out, f"it maps the d_out = {d_out} concatenated features to d_out")
    if b_out is not None and (not isinstance(b_out, torch.Tensor) or tuple(b_out.shape) != (d_out,)):
        shape = tuple(b_out.shape) if isinstance(b_out, torch.Tensor) else type(b_out).__name__
        raise LabError(f"b_out must have shape ({d_out},) to match W_out, got {shape}; or leave it out.")
    return d_out


def multi_head_attention(
    x: torch.Tensor,
    W_query: torch.Tensor,
    W_key: torch.Tensor,
    W_value: torch.Tensor,
    W_out: torch.Tensor,
    b_out: torch.Tensor | None = None,
    *,
    n_heads: int,
    dropout: float = 0.0,
    seed: int | None = None,
) -> MultiHeadSteps:
    """Causal multi-head attention (book 3.6): split d_out into H heads, attend in each, concatenate, project.

    Args:
        x: embeddings, (T, d_in) or (B, T, d_in).
        W_query, W_key, W_value: (d_in, d_out) projections; d_out must be divisible by ``n_heads``.
        W_out: (d_out, d_out) output projection; b_out: optional (d_out,) bias.
        n_heads: number of heads H; each head works on D = d_out // H features.
        dropout, seed: as in :func:`causal_attention`.

    Returns:
        Per-head steps (…, H, T, T), ``head_context`` (…, H, T, D), ``context`` (…, T, d_out) with the heads
        side by side, and ``output = context @ W_out + b_out``.

    Example:
        >>> _, x = book_example_inputs()
        >>> W_q, W_k, W_v = random_projections(3, 4)
        >>> steps = multi_head_attention(x, W_q, W_k, W_v, torch.eye(4), n_heads=2)
        >>> steps.weights.shape, steps.output.shape
        (torch.Size([2, 6, 6]), torch.Size([6, 4]))
    """
    x = _check_x(x)
    p = _check_dropout(dropout, seed)
    d_out = _check_heads(x, W_query, W_value, W_out, b_out, n_heads)
    q, k, v = _project(x, W_query, W_key, W_value)

    head_dim = d_out // n_heads
    lead, t = x.shape[:-2], x.shape[-2]

    def split(m: torch.Tensor) -> torch.Tensor:
        # Each head gets its own D consecutive features; moving H before T lets one matmul serve all heads.
        return m.reshape(*lead, t, n_heads, head_dim).transpose(-3, -2)  # (…, T, d_out) -> (…, H, T, D)

    q, k, v = split(q), split(k), split(v)
    scores, scaled, masked, weights, dropped, head_context = _causal_steps(q, k, v, p, seed)
    context = head_context.transpose(-3, -2).reshape(*lead, t, d_out)  # (…, H, T, D) -> (…, T, d_out)
    output = context @ W_out  # (…, T, d_out)
    if b_out is not None:
        output = output + b_out
    return MultiHeadSteps(
        q, k, v, scores, scaled, masked, weights, dropped, context, head_context=head_context, output=output
    )
