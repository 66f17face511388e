"""Small torch helpers behind the Attention and Architecture pages: plain numbers and numpy arrays out.

The pages never do tensor math themselves; they call one function here and render what comes back:

- :func:`sentence_inputs` turns the book's six words, or any sentence, into a (T, d_in) embedding matrix.
- :func:`teaching_steps` runs the book's four attention stages (3.3–3.6) on it and returns every intermediate.
- :func:`model_attention` runs a real :class:`core.model.GPTModel` and returns its attention weights per
  layer and head.
- :func:`architecture_report` gathers parameter, memory and FLOP counts plus a shape trace for a config; the
  trace runs on PyTorch's ``meta`` device, so even GPT-2 XL is traced without allocating a single weight.
- :func:`layernorm_example` reproduces the book's §4.2 LayerNorm example.

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
from core.config import GPTConfig
from core.errors import LabError
from core.stats import flops_per_token, layernorm_demo, memory_estimate, parameter_breakdown, shape_trace

MAX_TEACHING_WORDS = 10  # a 10 × 10 heatmap with values in every cell is still readable
MAX_ATTENTION_TOKENS = 48  # more labels than this on an axis become unreadable
MAX_SCAN_CHARS = 4_000  # only this much of a long paste is tokenized: the rest could never be shown anyway

#: The four teaching stages of :func:`teaching_steps`, in order, with their tab titles.
STAGES: dict[str, str] = {
    "simplified": "1 · Simplified",
    "qkv": "2 · Query, key, value",
    "causal": "3 · Causal + dropout",
    "multihead": "4 · Multi-head",
}

#: One sentence under each intermediate, per stage (``"*"`` applies to every stage without its own sentence).
STEP_NOTES: dict[str, dict[str, str]] = {
    "simplified": {
        "scores": "Each cell is the dot product of the row token's embedding with the column token's: "
        "the more similar two vectors, the larger the score.",
        "weights": "Softmax turns each row of scores into attention weights: all positive, each row summing "
        "to 1.",
        "context": "Each token's context vector is the weighted sum of all embeddings, using its row of "
        "weights.",
    },
    "causal": {
        "weights": "Softmax over the allowed positions only: the first token can attend to nothing but "
        "itself.",
        "context": "Context = dropped weights @ values: each token mixes the values of itself and earlier "
        "tokens.",
    },
    "multihead": {
        "weights": "Every head has its own query, key and value projections, so each one learns its own "
        "pattern (head 1 here is exactly the single head of the previous tab); rows still sum to 1.",
        "context": "The heads' context vectors side by side: H heads × D features each = one row per token.",
        "head_context": "Each head's own context vectors: its weights @ its values, D features per token.",
        "output": "Output = concatenated context @ W_out: the output projection mixes what the heads found.",
    },
    "*": {
        "queries": "Queries = x @ W_query: what each token is looking for.",
        "keys": "Keys = x @ W_key: what each token offers to be matched against.",
        "values": "Values = x @ W_value: the content a token passes on when others attend to it.",
        "scores": "Scores = queries @ keysᵀ: how well each token's query (row) matches every token's key "
        "(column).",
        "scaled": "Dividing by √d_k keeps the scores small, so softmax does not saturate into a single 1.",
        "masked": "Scores above the diagonal belong to future tokens: they become −∞, so softmax gives them "
        "weight 0.",
        "weights": "Softmax of each row: the attention weights, all positive, each row summing to 1.",
        "dropped": "Dropout (training only) zeroes each weight with probability p and scales the survivors "
        "by 1/(1−p), so rows no longer sum to exactly 1 but keep the same expected value.",
        "context": "Context = weights @ values: each token's new vector mixes the values it attends to.",
    },
}


#: A short heading per intermediate (``"*"`` for all stages, overridden per stage).
STEP_TITLES: dict[str, dict[str, str]] = {
    "simplified": {"scores": "Scores = x · xᵀ", "context": "Context = weights · x"},
    "multihead": {"weights": "Attention weights of every head", "head_context": "Context of every head",
                  "context": "Heads concatenated"},
    "*": {
        "queries": "Queries Q = x · W_query", "keys": "Keys K = x · W_key",
        "values": "Values V = x · W_value",
        "scores": "Scores = Q · Kᵀ", "scaled": "Scaled = scores ÷ √d_k", "masked": "Masked: future → −∞",
        "weights": "Weights = softmax(row)", "dropped": "After dropout", "context": "Context = weights · V",
        "output": "Output = context · W_out",
    },
}

#: The intermediates each stage shows (the multi-head stage has more, e.g. per-head queries, kept for tests).
DISPLAY_STEPS: dict[str, tuple[str, ...]] = {
    "simplified": ("scores", "weights", "context"),
    "qkv": ("queries", "keys", "values", "scores", "scaled", "weights", "context"),
    "causal": ("scores", "scaled", "masked", "weights", "dropped", "context"),
    "multihead": ("weights", "context", "output"),
}


def step_title(stage: str, step: str) -> str:
    """The heading of ``step`` within ``stage``, e.g. ``"Scores = Q · Kᵀ"``."""
    return STEP_TITLES.get(stage, {}).get(step) or STEP_TITLES["*"].get(step, step)


def step_note(stage: str, step: str) -> str:
    """The sentence explaining ``step`` (``"scores"``, ``"weights"`` …) within ``stage`` (a key of STAGES)."""
    return STEP_NOTES.get(stage, {}).get(step) or STEP_NOTES["*"].get(step, "")


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
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= hi:
            raise LabError(f"{name} must be a whole number from 1 to {hi}, got {value!r}.")
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
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= hi:
            raise LabError(f"{name} must be a whole number from 1 to {hi}, got {value!r}; try 2.")
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


# --- Architecture page -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchitectureReport:
    """Everything the Architecture page shows about one config (plain numbers and rows)."""

    cfg: GPTConfig
    total_untied: int
    total_tied: int
    breakdown: list[dict]  # parameter_breakdown(cfg) rows
    memory: list[dict]  # per dtype: {"dtype", "weights_bytes", "training_bytes"}
    flops: dict[str, int]  # {"forward", "training"} per token
    trace: list[dict]  # {"module", "type", "output shape", "parameters"}


def architecture_report(cfg: GPTConfig, n_tokens: int = 4, batch_size: int = 1) -> ArchitectureReport:
    """Parameter counts (tied and untied), memory, FLOPs and a shape trace of one forward pass of ``cfg``.

    The shape trace builds the model on the ``meta`` device: tensors there have shapes but no storage, so
    forward hooks see every real output shape while no memory is allocated and no arithmetic is done.

    Example:
        >>> r = architecture_report(GPTConfig.preset("gpt2-small"))
        >>> r.total_untied, r.total_tied
        (163009536, 124412160)
    """
    if not isinstance(cfg, GPTConfig):
        raise LabError(f"architecture_report needs a GPTConfig, got {type(cfg).__name__}.")
    for name, value in (("n_tokens", n_tokens), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise LabError(f"{name} must be a positive whole number, got {value!r}.")
    if n_tokens > cfg.context_length:
        raise LabError(
            f"The traced input has {n_tokens} tokens but the context length is {cfg.context_length}; "
            "use fewer tokens."
        )
    untied = memory_estimate(cfg.replace(tie_weights=False))["parameters"]
    tied = memory_estimate(cfg.replace(tie_weights=True))["parameters"]
    memory = [{"dtype": d, **{k: v for k, v in memory_estimate(cfg, d).items() if k != "parameters"}}
              for d in ("fp32", "bf16")]
    trace = meta_shape_trace(cfg, n_tokens, batch_size)
    breakdown, flops = parameter_breakdown(cfg), flops_per_token(cfg)
    return ArchitectureReport(cfg, untied, tied, breakdown, memory, flops, trace)


def meta_shape_trace(
    cfg: GPTConfig, n_tokens: int = 4, batch_size: int = 1, collapse: bool = True
) -> list[dict]:
    """Output shape of every module (3 levels deep) in one forward pass, computed on the ``meta`` device.

    With ``collapse``, blocks 1…N−1 are summarised in one row (their parameters summed): they repeat block 0's
    shapes exactly.
    """
    from core.model import GPTModel

    with torch.device("meta"):
        model = GPTModel(cfg).eval()
    # The input check reads token values to compare with the vocabulary; meta tensors have no values, and
    # this input is all zeros by construction, so the check is skipped for this private, throwaway instance.
    model._check_input = lambda idx, offset: None  # type: ignore[method-assign]
    idx = torch.zeros(batch_size, n_tokens, dtype=torch.long, device="meta")  # (B, T)
    rows = shape_trace(model, idx)
    out: list[dict] = []
    for r in rows:
        parts = r.name.split(".")
        if collapse and parts[0] == "trf_blocks" and len(parts) > 1 and parts[1] != "0":
            if parts[1] == "1" and len(parts) == 2:
                n = cfg.n_layers - 1
                name = "trf_blocks.1" if n == 1 else f"trf_blocks.1 … trf_blocks.{n}"
                out.append({"module": name,
                            "type": f"{n} × {r.kind}",
                            "output shape": _shape(r.output_shape), "parameters": n * r.params})
            continue
        out.append(
            {"module": r.name, "type": r.kind, "output shape": _shape(r.output_shape), "parameters": r.params}
        )
    return out


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def format_bytes(n: int | float) -> str:
    """Bytes in binary units: ``format_bytes(1536)`` → ``'1.5 KiB'``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - the loop always returns


def format_si(n: int | float, unit: str = "") -> str:
    """A count with an SI prefix: ``format_si(6_662_272, "FLOP")`` → ``'6.66 MFLOP'``."""
    value = float(n)
    for prefix, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:,.2f} {prefix}{unit}"
    return f"{value:,.0f} {unit}".rstrip()


def layernorm_example(seed: int = 123) -> dict[str, np.ndarray]:
    """The book's §4.2 example: two 5-feature inputs through Linear(5, 6) + ReLU, then normalised.

    The global RNG is seeded inside a fork, as the book does with ``torch.manual_seed(123)``, then restored.

    Returns:
        ``input`` (2, 6) activations, ``output`` (2, 6) normalised, and per-row ``mean_before``,
        ``var_before``, ``mean_after`` (≈ 0) and ``var_after`` (≈ 1).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        batch = torch.randn(2, 5)  # (2 examples, 5 features)
        layer = nn.Sequential(nn.Linear(5, 6), nn.ReLU())
        with torch.no_grad():
            out = layer(batch)  # (2, 6)
    return {k: v.numpy() for k, v in layernorm_demo(out).items()}


# --- Generation playground ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlaygroundRun:
    """One generation from a text prompt, ready to display.

    Attributes:
        prompt: the prompt text the model saw (the decoded, possibly shortened prompt).
        pieces: the text of each generated token (decoded one by one, so a character split across two tokens
            shows as ``�``).
        probs: the probability the model itself gave each chosen token (plain softmax of the logits, before
            temperature/top-k/top-p): how expected the token was, comparable between greedy and sampled runs.
        trace: the full :class:`core.generate.GenerationTrace` (candidates per step, entropy …).
        prompt_truncated: True when the prompt was cut to fit the model's context.
    """

    prompt: str
    pieces: list[str]
    probs: list[float]
    trace: object
    prompt_truncated: bool = False

    @property
    def text(self) -> str:
        return self.prompt + "".join(self.pieces)


def playground_generate(
    model: nn.Module,
    tokenizer,
    prompt: str,
    max_new_tokens: int = 20,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = 123,
    n_candidates: int = 10,
) -> PlaygroundRun:
    """Encode ``prompt``, run :func:`core.generate.generate_traced`, and decode each new token.

    ``top_k`` of 0 or None and ``top_p`` of 1.0 or None switch those filters off; temperature 0 is greedy.
    The prompt keeps its last tokens when it is longer than the model's context allows (a long paste is first
    cut to its last ``MAX_SCAN_CHARS`` characters). The model is not modified.

    Example:
        >>> from core.model import GPTModel
        >>> from core.tokenizers import get_tokenizer
        >>> model = GPTModel(GPTConfig.preset("tiny")).eval()
        >>> run = playground_generate(model, get_tokenizer("gpt2"), "Hello", max_new_tokens=3, temperature=0)
        >>> len(run.pieces), len(run.probs)
        (3, 3)
    """
    from core.generate import generate_traced

    if not isinstance(prompt, str) or not prompt.strip():
        raise LabError("The prompt is empty; type a few words for the model to continue.")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise LabError(f"max_new_tokens must be a positive whole number, got {max_new_tokens!r}.")
    cut = len(prompt) > MAX_SCAN_CHARS
    ids = tokenizer.encode(prompt[-MAX_SCAN_CHARS:], disallowed_special=())
    room = model.cfg.context_length - 1  # leave room for at least one new token in the window
    if room < 1:
        raise LabError("This model's context holds a single token; it cannot continue a prompt.")
    if len(ids) > room:
        ids, cut = ids[-room:], True
    if max(ids) >= model.cfg.vocab_size:
        raise LabError(
            f"Token id {max(ids)} is outside this model's vocabulary of {model.cfg.vocab_size:,} ids; "
            "pick a model built for the GPT-2 tokenizer."
        )
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            idx = torch.tensor([ids], device=model.device)  # (1, T)
            trace = generate_traced(
                model, idx, max_new_tokens, temperature=float(temperature), top_k=top_k or None,
                top_p=top_p if top_p is not None and top_p < 1.0 else None, seed=seed, eos_id=None,
                n_candidates=n_candidates,
            )
    finally:
        model.train(was_training)
    pieces = [tokenizer.decode([s.chosen_id]) for s in trace.steps]
    probs = [float(s.chosen_prob_raw) for s in trace.steps]
    return PlaygroundRun(tokenizer.decode(ids), pieces, probs, trace, cut)
