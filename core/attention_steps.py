"""The Attention page's computations: the book's four attention stages (3.3–3.6) on the book's six words or any
sentence, every intermediate kept, and the attention weights of a real model per layer and head.

Kept beside :mod:`core.attention` (the modules themselves) so each file stays one concern.

Shape legend: T tokens, d_in embedding size, D head size, H heads, L layers.

Example:
    >>> inp = sentence_inputs()
    >>> inp.words[:3], tuple(inp.x.shape)
    (['Your', 'journey', 'starts'], (6, 3))
    >>> steps = teaching_steps(inp.x)
    >>> [round(v, 4) for v in steps["simplified"]["context"][1].tolist()]
    [0.4419, 0.6515, 0.5683]
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from core.attention import (
    book_example_inputs,
    causal_attention,
    multi_head_attention,
    random_projections,
    self_attention_qkv,
    simplified_self_attention,
)
from core.errors import LabError, check_int

MAX_TEACHING_WORDS = 10  # a 10 × 10 heatmap with values in every cell is still readable
MAX_ATTENTION_TOKENS = 48  # more labels than this on an axis become unreadable
MAX_SCAN_CHARS = 4_000  # only this much of a long paste is tokenized: the rest could never be shown anyway


# --- Part 1: the book's four stages -------------------------------------------------------------------------


@dataclass(frozen=True)
class TeachingInput:
    """Words and their embeddings for the step-by-step view.

    Attributes:
        words: the T words (labels for the heatmap axes).
        x: (T, d_in) float embeddings.
        source: a sentence saying where the vectors come from, for a caption.
        truncated: True when the sentence had more than ``max_words`` words (only the first ones are used).
    """

    words: list[str]
    x: torch.Tensor
    source: str
    truncated: bool = False


def sentence_inputs(
    text: str | None = None, d_in: int = 3, seed: int = 123, max_words: int = MAX_TEACHING_WORDS
) -> TeachingInput:
    """The book's "Your journey starts with one step" (``text=None``) or any sentence as (T, d_in) embeddings.

    A sentence is split into words and punctuation marks. Each distinct word (case-insensitive) gets a fixed
    random vector, uniform in [0, 1) like the book's, drawn from a generator seeded by ``seed`` and the word
    itself: the same word always gets the same vector, in any sentence. Only the first ``max_words`` are kept.

    Example:
        >>> a = sentence_inputs("the cat saw the dog")
        >>> bool((a.x[0] == a.x[3]).all()), tuple(a.x.shape)
        (True, (5, 3))
    """
    if text is None:
        words, x = book_example_inputs()
        return TeachingInput(words, x, "the book's hand-picked 3-D embeddings (section 3.3)")
    if not isinstance(text, str):
        raise LabError(f"The sentence must be text, got {type(text).__name__}.")
    for name, value, hi in (("d_in", d_in, 64), ("max_words", max_words, 1000)):
        check_int(value, name, low=1, high=hi)
    scan = text[:MAX_SCAN_CHARS]  # a 1 MB paste costs no more than a short sentence
    words_all = re.findall(r"\w+|[^\w\s]", scan)
    if not words_all:
        raise LabError("The sentence is empty; type a few words, or pick the book's example.")
    words = words_all[:max_words]
    truncated = len(words_all) > max_words or len(text) > len(scan)
    rows = []
    for w in words:
        gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + zlib.crc32(w.lower().encode("utf-8")))
        rows.append(torch.rand(d_in, generator=gen))
    source = (
        f"a fixed random {d_in}-D vector per word (uniform in [0, 1), seed {seed}): the same word always "
        "gets the same vector, but similar words are not close — a trained embedding layer would learn that"
    )
    return TeachingInput(words, torch.stack(rows), source, truncated)  # x: (T, d_in)


def teaching_steps(
    x: torch.Tensor, d_out: int = 2, n_heads: int = 2, dropout: float = 0.0, seed: int = 123
) -> dict[str, dict[str, np.ndarray]]:
    """Run the book's four attention stages on ``x`` and return every intermediate as numpy arrays.

    Args:
        x: (T, d_in) embeddings, e.g. ``sentence_inputs().x``.
        d_out: width of the queries, keys and values of one head (the book uses 2).
        n_heads: heads of the multi-head stage; each head has width ``d_out``, so the stage outputs
            ``n_heads * d_out`` features, and head 1 uses the same projections as the single-head stages.
        dropout: dropout probability of the causal stage (the multi-head stage shows inference: no dropout).
        seed: seeds the projections and the dropout pattern. With seed 123 and the book's inputs, the Q/K/V
            stage reproduces the book's section 3.4.1 numbers.

    Returns:
        ``{stage: {step: array}}`` for the stages of :data:`STAGES`, steps in computation order.
        T × T matrices: ``scores``, ``scaled``, ``masked`` (``-inf`` above the diagonal), ``weights`` and
        ``dropped``; the multi-head stage adds a leading H axis to them.

    Example:
        >>> _, x = book_example_inputs()
        >>> steps = teaching_steps(x, n_heads=3)
        >>> steps["multihead"]["weights"].shape, steps["multihead"]["output"].shape
        ((3, 6, 6), (6, 6))
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 2:
        raise LabError("x must be a (tokens, d_in) matrix of embeddings; use sentence_inputs(...).x.")
    for name, value, hi in (("d_out", d_out, 64), ("n_heads", n_heads, 16)):
        check_int(value, name, low=1, high=hi, fix="try 2")
    d_in = x.shape[1]
    W_q, W_k, W_v = random_projections(d_in, d_out, seed)  # (d_in, D) each
    with torch.no_grad():
        out = {
            "simplified": simplified_self_attention(x).to_numpy(),
            "qkv": self_attention_qkv(x, W_q, W_k, W_v).to_numpy(),
            "causal": causal_attention(x, W_q, W_k, W_v, dropout=dropout, seed=seed).to_numpy(),
        }
        # Head h > 0 gets its own projections; head 0 reuses the single-head ones, side by side along d_out.
        extra = [random_projections(d_in, d_out, seed + h) for h in range(1, n_heads)]
        W_qh, W_kh, W_vh = (torch.cat([w[i] for w in [(W_q, W_k, W_v), *extra]], dim=1) for i in range(3))
        width = n_heads * d_out
        gen = torch.Generator().manual_seed(seed + 1000)
        bound = 1 / math.sqrt(width)  # nn.Linear's default init range
        W_out = torch.rand(width, width, generator=gen) * 2 * bound - bound  # (H·D, H·D)
        mh = multi_head_attention(x, W_qh, W_kh, W_vh, W_out, n_heads=n_heads).to_numpy()
    order = ["queries", "keys", "values", "scores", "scaled", "masked", "weights", "dropped", "head_context",
             "context", "output"]
    out["multihead"] = {k: mh[k] for k in order if k in mh and k != "dropped"}  # no dropout at inference
    return {stage: {k: v[k] for k in order if k in v} for stage, v in out.items()}


def row_sums(weights: np.ndarray) -> np.ndarray:
    """Sum of each row of an attention matrix (…, T, T) → (…, T); attention weights give all ones."""
    return np.asarray(weights, dtype=np.float64).sum(axis=-1)


# --- Part 2: the active model ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelAttention:
    """Attention weights of a real model for one text.

    Attributes:
        tokens: display label of each of the T tokens (whitespace made visible).
        ids: the T token ids.
        weights: (L, H, T, T) float32 attention weights, every row summing to 1.
        n_tokens: tokens the (scanned part of the) text had before truncation to T.
        truncated: True when the text was cut, to ``max_tokens`` tokens or to its first characters.
    """

    tokens: list[str]
    ids: list[int]
    weights: np.ndarray
    n_tokens: int
    truncated: bool


def model_attention(
    model: nn.Module, tokenizer, text: str, max_tokens: int = MAX_ATTENTION_TOKENS
) -> ModelAttention:
    """Tokenize ``text``, run ``model.forward_with_attention`` once, and return the weights as numpy.

    Only the first ``min(max_tokens, context_length)`` tokens are used (a long paste is cut first to
    ``MAX_SCAN_CHARS`` characters, so a 1 MB text costs no more than a short one). The model is not modified.

    Example:
        >>> from core.config import GPTConfig
        >>> from core.model import GPTModel
        >>> from core.tokenizers import get_tokenizer
        >>> model = GPTModel(GPTConfig.preset("tiny")).eval()
        >>> att = model_attention(model, get_tokenizer("gpt2"), "Hi there")
        >>> att.tokens, att.weights.shape
        (['Hi', '·there'], (2, 4, 2, 2))
    """
    if not isinstance(text, str) or not text.strip():
        raise LabError("The sentence is empty; type a few words to see where the model looks.")
    cut_chars = len(text) > MAX_SCAN_CHARS
    spans = tokenizer.spans(text[:MAX_SCAN_CHARS], disallowed_special=())
    limit = min(int(max_tokens), model.cfg.context_length)
    kept = spans[:limit]
    ids = [s.id for s in kept]
    if max(ids) >= model.cfg.vocab_size:
        raise LabError(
            f"Token id {max(ids)} is outside this model's vocabulary of {model.cfg.vocab_size:,} ids; "
            "pick a model built for the GPT-2 tokenizer."
        )
    was_training = model.training
    model.eval()  # dropout off: the weights shown are the ones used at inference
    try:
        with torch.no_grad():
            idx = torch.tensor([ids], device=model.device)
            _, weights = model.forward_with_attention(idx)  # L × (1, H, T, T)
    finally:
        model.train(was_training)
    arr = torch.stack([w[0] for w in weights]).float().cpu().numpy()  # (L, H, T, T)
    return ModelAttention([s.display for s in kept], ids, arr, len(spans), cut_chars or len(spans) > limit)
