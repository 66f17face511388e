"""Text generation, as in the book's chapter 5: greedy decoding, temperature, top-k, top-p and a KV cache.

The loop is the book's ``generate``: crop the sequence to the context, run the model, keep the last position's
logits, pick the next token, append it, repeat. Three things are added on top:

- **one sampling rule** (:func:`sampling_distribution`) shared by :func:`generate`, :func:`generate_stream`
  and the step-by-step :func:`core.generate_steps.generate_traced`, so the playground shows exactly the
  distribution sampled;
- **a KV cache**: the prompt runs once ("prefill"), then each step feeds only the newest token;
- **a private random generator** per call: the same ``seed`` gives the same text on every device, and the
  global RNG (``torch.manual_seed``) is never touched.

Shape legend: B batch, T tokens, V vocabulary size.

Example:
    >>> import torch
    >>> from core.config import GPTConfig
    >>> from core.model import GPTModel
    >>> model = GPTModel(GPTConfig.preset("tiny"))
    >>> generate(model, torch.tensor([[15496, 11]]), max_new_tokens=3).shape  # prompt + 3 new tokens
    torch.Size([1, 5])
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from core.errors import LabError, check_int, check_number
from core.model import GPTModel

EOT = "<|endoftext|>"


# ------------------------------------------------------------------------------------------- distributions
def logits_to_probs(logits: torch.Tensor, temperature: float | None = 1.0) -> torch.Tensor:
    """``softmax(logits / temperature)`` over the last dimension, in float32.

    Temperature 0 (or None) is the limit of a colder and colder softmax: all probability on the argmax, which
    is what greedy decoding picks.

    Args:
        logits: (V,) or (B, V) scores.
        temperature: > 1 flattens the distribution, < 1 sharpens it.

    Example:
        >>> logits_to_probs(torch.tensor([0.0, 0.0])).tolist()
        [0.5, 0.5]
    """
    t = _check_temperature(temperature)
    logits = logits.float()
    if t == 0.0:
        return _one_hot_argmax(logits).float()
    return torch.softmax(logits / t, dim=-1)


def sampling_distribution(
    logits: torch.Tensor,
    temperature: float | None = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """The distribution the next token is drawn from: temperature, then top-k, then top-p, renormalised.

    The book applies top-k before dividing by the temperature; dividing by a positive number keeps the order
    of the logits, so the set of tokens kept is the same either way. Top-p (nucleus) is measured on the
    temperature-scaled distribution left after top-k, as Hugging Face does.

    Args:
        logits: (V,) or (B, V) raw scores of the next token.
        temperature: 0 or None means greedy: all probability on the argmax.
        top_k: keep only the k largest logits (None: all; more than V: all).
        top_p: keep the smallest set of most likely tokens whose probability adds up to at least ``top_p``
            (always at least the most likely one); None or 1 keeps all.

    Returns:
        Probabilities with the shape of ``logits`` (float32); filtered-out tokens get exactly 0.

    Example:
        >>> p = sampling_distribution(torch.tensor([3.0, 2.0, 1.0, 0.0]), temperature=1.0, top_k=2)
        >>> [round(x, 3) for x in p.tolist()]
        [0.731, 0.269, 0.0, 0.0]
    """
    return _distribution(logits, _check_temperature(temperature), _check_top_k(top_k), _check_top_p(top_p))[0]


def _one_hot_argmax(logits: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, logits.argmax(-1, keepdim=True), True)


def _distribution(
    logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The one implementation of the sampling rule: (probabilities, kept mask), both shaped as ``logits``."""
    logits = logits.float()  # softmax of bf16/fp16 logits loses the small probabilities top-p adds up
    if temperature == 0.0:
        kept = _one_hot_argmax(logits)
        return kept.float(), kept
    scaled = logits / temperature
    kept = torch.ones_like(scaled, dtype=torch.bool)
    if top_k is not None and top_k < scaled.shape[-1]:
        # Scatter the top-k indices rather than compare with the k-th value: exactly k survive even with ties.
        kept = torch.zeros_like(kept).scatter_(-1, scaled.topk(top_k, dim=-1).indices, True)
    if top_p is not None and top_p < 1.0:
        probs = torch.softmax(scaled.masked_fill(~kept, -math.inf), dim=-1)
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # Mass strictly above each token; a token is in the nucleus while that mass is still short of top_p,
        # so the most likely token (mass above = 0) is always kept. A shifted cumsum avoids cumsum-p rounding.
        zero = torch.zeros_like(sorted_probs[..., :1])
        above = torch.cat([zero, sorted_probs[..., :-1].cumsum(-1)], dim=-1)
        kept &= torch.zeros_like(kept).scatter_(-1, order, above < top_p)
    return torch.softmax(scaled.masked_fill(~kept, -math.inf), dim=-1), kept


@dataclass
class _Plan:
    """The validated arguments of one generation call."""

    idx: torch.Tensor  # (B, T) int64 on the model's device
    max_new_tokens: int
    context_size: int
    temperature: float  # 0.0 means greedy
    top_k: int | None
    top_p: float | None
    eos_id: int | None
    gen: torch.Generator  # the call's own random generator (CPU)
    use_cache: bool

    def next_token(self, logits: torch.Tensor) -> torch.Tensor:
        """Pick one token per row of ``logits`` (B, V) → (B,)."""
        if self.temperature == 0.0:
            return logits.argmax(dim=-1)
        probs, _ = _distribution(logits, self.temperature, self.top_k, self.top_p)
        # Sample on the CPU with the call's own generator: the same seed gives the same tokens on any device.
        return torch.multinomial(probs.cpu(), 1, generator=self.gen).squeeze(-1).to(logits.device)


# ---------------------------------------------------------------------------------------------- the loop
def _last_logits(model: GPTModel, idx: torch.Tensor, cache: Any) -> torch.Tensor:
    """Logits of the last position only (B, V): the head on one position instead of T saves T·C·V work."""
    hidden = model(idx, cache=cache, return_hidden=True)[:, -1]  # (B, C)
    return model.out_head(hidden).float()


def _decode(model: GPTModel, plan: _Plan) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(logits (B, V), next ids (B,))`` per new token. The caller holds eval and inference mode."""
    idx, max_new_tokens, context_size, eos_id = plan.idx, plan.max_new_tokens, plan.context_size, plan.eos_id
    if max_new_tokens == 0:
        return
    seq = idx  # (B, T)
    window = idx[:, -context_size:]  # the book's idx[:, -context_size:]
    max_len = min(context_size, window.shape[1] + max_new_tokens)  # the most the cache will ever hold
    cache = model.new_cache(idx.shape[0], max_len) if plan.use_cache else None
    logits = _last_logits(model, window, cache)  # prefill: the whole (cropped) prompt at once
    done = torch.zeros(idx.shape[0], dtype=torch.bool, device=idx.device)
    for step in range(max_new_tokens):
        nxt = plan.next_token(logits)  # (B,)
        if eos_id is not None:
            nxt = nxt.masked_fill(done, eos_id)  # finished rows are padded with eos
            done |= nxt == eos_id
        yield logits, nxt
        seq = torch.cat([seq, nxt[:, None]], dim=1)
        if step + 1 == max_new_tokens or (eos_id is not None and bool(done.all())):
            return
        if cache is not None and cache.length < context_size:
            logits = _last_logits(model, nxt[:, None], cache)  # one token; its keys/values join the cache
        else:
            # The window has to slide. Positions are absolute, so every cached key/value was computed at a
            # position it no longer has: drop the cache, re-run the last context_size tokens (the book's loop)
            cache = None
            logits = _last_logits(model, seq[:, -context_size:], None)


@contextmanager
def _generation_mode(model: GPTModel) -> Iterator[None]:
    """Eval mode (no dropout) and no autograd inside; every module's training flag is restored afterwards."""
    flags = [m.training for m in model.modules()]
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        for m, flag in zip(model.modules(), flags):
            m.training = flag


def _prepare(
    model, idx, max_new_tokens, context_size=None, temperature=0.0, top_k=None, top_p=None, eos_id=None, seed=None,
    use_cache=True,
) -> _Plan:
    """Validate every argument of a generation call; LabError on bad input."""
    if not isinstance(model, GPTModel):
        raise LabError(f"Generation needs a core.model.GPTModel, got {type(model).__name__}; build one.")
    vocab, context = model.cfg.vocab_size, model.cfg.context_length
    idx = _as_batch(idx, vocab, model.device)
    max_new_tokens = check_int(max_new_tokens, "max_new_tokens", low=0, fix="use 0 or more new tokens")
    if context_size is None:
        context_size = context
    context_size = check_int(context_size, "context_size", low=1, fix="use at least 1 token of context")
    if context_size > context:
        raise LabError(
            f"context_size is {context_size} but the model has {context} positions; use {context} or fewer."
        )
    if eos_id is not None:
        eos_id = check_int(eos_id, "eos_id", low=0, fix="pass a token id of the model's vocabulary")
        if eos_id >= vocab:
            raise LabError(f"eos_id {eos_id} is outside the vocabulary of {vocab:,} ids; use the tokenizer's "
                           "<|endoftext|> id.")
    gen = torch.Generator()
    if seed is None:
        gen.seed()  # fresh entropy from the OS; the global RNG stays untouched
    else:
        seed = check_int(seed, "seed", low=0, fix="use a non-negative whole number")
        if seed >= 2**64:
            raise LabError(f"seed must be below 2**64, got {seed}; use a smaller whole number.")
        gen.manual_seed(seed)
    if not isinstance(use_cache, bool):
        raise LabError(f"use_cache must be True or False, got {use_cache!r}.")
    return _Plan(idx, max_new_tokens, context_size, _check_temperature(temperature), _check_top_k(top_k),
                 _check_top_p(top_p), eos_id, gen, use_cache)


def generate(
    model: GPTModel,
    idx: torch.Tensor | Sequence[int],
    max_new_tokens: int,
    context_size: int | None = None,
    temperature: float | None = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | None = None,
    seed: int | None = None,
    use_cache: bool = True,
) -> torch.Tensor:
    """Continue each sequence in ``idx`` by up to ``max_new_tokens`` tokens (the book's ``generate``).

    Args:
        model: the GPT; it runs in eval mode for the call and gets its training flags back afterwards.
        idx: token ids (B, T); a 1-D tensor or a list of ints is one sequence (B = 1).
        max_new_tokens: how many tokens to add (fewer if every sequence reaches ``eos_id``).
        context_size: the model sees only the last ``context_size`` tokens (default: its context length).
        temperature: 0 or None → greedy (argmax); > 0 → sample from ``softmax(logits / temperature)``.
        top_k, top_p: filters applied before sampling, see :func:`sampling_distribution`.
        eos_id: stop token. Unlike the book (which drops it and stops), the eos token is kept in the output,
            and in a batch the sequences that are done are padded with it until all are done.
        seed: seed of the call's own random generator (None: a fresh random one); greedy ignores it.
        use_cache: run the prompt once and then one token per step (KV cache). Greedy output is the same as
            without it; past the context length it falls back to re-running the last ``context_size`` tokens.

    Returns:
        (B, T + n_new) int64 tensor on the model's device: the full input followed by the new tokens.

    Raises:
        LabError: bad ids, shapes, lengths or sampling settings.

    Example:
        >>> from core.config import GPTConfig
        >>> from core.model import GPTModel
        >>> model = GPTModel(GPTConfig(vocab_size=20000, context_length=16, emb_dim=32, n_heads=2, n_layers=1))
        >>> out = generate(model, [15496, 11], max_new_tokens=4, temperature=0.8, top_k=50, seed=1)
        >>> out.shape
        torch.Size([1, 6])
    """
    plan = _prepare(
        model, idx, max_new_tokens, context_size, temperature, top_k, top_p, eos_id, seed, use_cache
    )
    with _generation_mode(model):
        new = [nxt for _, nxt in _decode(model, plan)]
    # Built outside inference mode so the result can feed a training step later.
    return torch.cat([plan.idx, torch.stack(new, dim=1)], dim=1) if new else plan.idx.clone()


def generate_stream(
    model: GPTModel, idx: torch.Tensor | Sequence[int], max_new_tokens: int, **options: Any
) -> Iterator[int]:
    """Like :func:`generate` for one sequence, but yield each new token id as soon as it is chosen.

    ``options`` are :func:`generate`'s keyword arguments (``context_size``, ``temperature``, ``top_k``, ``top_p``,
    ``eos_id``, ``seed``, ``use_cache``), with the same defaults.

    Eval and inference mode are held only while a token is being computed, so code between two tokens (a UI
    update) runs with the model as the caller left it. The eos token, if reached, is the last one yielded.

    Example:
        >>> from core.config import GPTConfig
        >>> from core.model import GPTModel
        >>> model = GPTModel(GPTConfig(vocab_size=20000, context_length=16, emb_dim=32, n_heads=2, n_layers=1))
        >>> ids = list(generate_stream(model, [15496, 11], max_new_tokens=3))
        >>> len(ids)
        3
    """
    plan = _prepare(model, idx, max_new_tokens, **options)
    _one_sequence(plan.idx, "generate_stream")
    return _stream(model, _decode(model, plan))  # validated now, at the call, not at the first next()


def _stream(model: GPTModel, steps: Iterator[tuple[torch.Tensor, torch.Tensor]]) -> Iterator[int]:
    while True:
        with _generation_mode(model):
            step = next(steps, None)
        if step is None:
            return
        yield int(step[1][0])


def generate_text(model: GPTModel, tokenizer: Any, prompt: str, max_new_tokens: int, **kw: Any) -> str:
    """Text in, text out: the book's ``token_ids_to_text(generate(model, text_to_token_ids(prompt), …))``.

    Args:
        model: the GPT.
        tokenizer: anything with ``encode(text, allowed_special=…)`` and ``decode(ids)``; ``<|endoftext|>``
            in the prompt is encoded as the special token.
        prompt: the start of the text.
        max_new_tokens: how many tokens to add.
        **kw: the other arguments of :func:`generate` (temperature, top_k, top_p, eos_id, seed, …).

    Returns:
        The decoded prompt followed by the continuation (the full text, as in the book).

    Example:
        >>> generate_text(model, get_tokenizer("gpt2"), "Every effort moves you", 5, seed=0)  # doctest: +SKIP
        'Every effort moves you …'
    """
    if not isinstance(prompt, str):
        raise LabError(f"The prompt must be text (str), got {type(prompt).__name__}.")
    ids = tokenizer.encode(prompt, allowed_special={EOT})
    if not ids:
        raise LabError("The prompt is empty; type at least one word (or <|endoftext|>) to start from.")
    out = generate(model, torch.tensor([ids]), max_new_tokens, **kw)
    return tokenizer.decode(out[0].tolist())


# ------------------------------------------------------------------------------------------------ checks
def _check_temperature(temperature: Any) -> float:
    if temperature is None:
        return 0.0
    return check_number(temperature, "temperature", low=0, fix="use 0 for greedy or e.g. 0.7 to sample")


def _check_top_k(top_k: Any) -> int | None:
    return None if top_k is None else check_int(top_k, "top_k", low=1, fix="use None to keep every token")


def _check_top_p(top_p: Any) -> float | None:
    if top_p is None:
        return None
    return check_number(top_p, "top_p", low=0, high=1, low_open=True, fix="use e.g. 0.9 (None: all)")


def _as_batch(idx: Any, vocab_size: int, device: torch.device) -> torch.Tensor:
    """Token ids as a (B, T) int64 tensor on ``device``; a list or 1-D tensor becomes one sequence."""
    if isinstance(idx, (list, tuple)):
        try:
            idx = torch.tensor(idx)
        except (TypeError, ValueError, RuntimeError):
            msg = "The prompt must be a list of token ids or a list of equal-length lists of them."
            raise LabError(msg) from None
    if not isinstance(idx, torch.Tensor):
        raise LabError(f"The prompt must be a tensor or list of token ids, got {type(idx).__name__}.")
    if idx.dim() == 1:
        idx = idx[None]  # (T,) -> (1, T)
    if idx.dim() != 2:
        shape = tuple(idx.shape)
        raise LabError(f"The prompt must be shaped (batch, tokens), got {shape}; pass one sequence as [ids].")
    if idx.numel() == 0:
        raise LabError("The prompt is empty; give at least one token id (e.g. the <|endoftext|> id).")
    if idx.dtype == torch.bool or idx.is_floating_point() or idx.is_complex():
        raise LabError(f"Token ids must be integers, got {idx.dtype}; convert with ids.long().")
    lo, hi = int(idx.min()), int(idx.max())
    if lo < 0 or hi >= vocab_size:
        bad = hi if hi >= vocab_size else lo
        raise LabError(f"Token id {bad} is outside this model's vocabulary of {vocab_size:,} ids; use the "
                       "tokenizer the model was built for.")
    return idx.to(device=device, dtype=torch.long)


def _one_sequence(idx: torch.Tensor, name: str) -> torch.Tensor:
    if idx.shape[0] != 1:
        raise LabError(f"{name} follows one sequence, got a batch of {idx.shape[0]}; pass a single prompt.")
    return idx
