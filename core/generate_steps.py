"""Generation one step at a time, for the Generation page: at every new token, the distribution before and after
temperature / top-k / top-p, the candidates kept, and the token drawn (:func:`generate_traced`), and the
playground run that colours each token of a continuation by its probability (:func:`playground_generate`).

Same decoding loop and the same tokens as :func:`core.generate.generate` for the same settings and seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from core.attention_steps import MAX_SCAN_CHARS
from core.errors import LabError, check_int
from core.generate import (
    _decode,
    _distribution,
    _generation_mode,
    _one_sequence,
    _Plan,
    _prepare,
    logits_to_probs,
    sampling_distribution,  # noqa: F401
)
from core.model import GPTModel


# ---------------------------------------------------------------------------------------- step-by-step trace
@dataclass
class Candidate:
    """One possible next token and its probability at each stage of the sampling rule."""

    id: int
    logit: float
    prob_raw: float  # softmax of the raw logits (temperature 1)
    prob_temp: float  # softmax(logits / temperature), before top-k/top-p
    prob_final: float  # after temperature, top-k and top-p, renormalised; 0 if filtered out
    kept: bool  # survived top-k and top-p


@dataclass
class StepTrace:
    """What happened at one generation step."""

    position: int  # index of the chosen token in the full sequence (prompt + new)
    chosen_id: int
    chosen_prob: float  # under the final sampling distribution (1.0 for greedy)
    chosen_prob_raw: float  # under the plain softmax of the raw logits
    chosen_rank: int  # 1 = the token with the highest raw logit
    entropy: float  # of the final distribution, in nats (0 for greedy)
    n_kept: int  # tokens that survive top-k/top-p (1 for greedy)
    candidates: list[Candidate] = field(default_factory=list)  # top n by raw logit (+ the chosen one if not)


@dataclass
class GenerationTrace:
    """A whole generation, step by step; ``prompt_ids + new_ids`` is what :func:`generate` returns."""

    prompt_ids: list[int]
    new_ids: list[int]
    steps: list[StepTrace]


def generate_traced(
    model: GPTModel,
    idx: torch.Tensor | Sequence[int],
    max_new_tokens: int,
    temperature: float | None = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    eos_id: int | None = None,
    n_candidates: int = 10,
    context_size: int | None = None,
    use_cache: bool = True,
) -> GenerationTrace:
    """:func:`generate` for one sequence, recording the next-token distribution at every step.

    The tokens are exactly those :func:`generate` returns with the same arguments and seed.

    Args:
        n_candidates: how many of the highest-logit tokens each step lists.
        Others: as in :func:`generate`.

    Example:
        >>> from core.config import GPTConfig
        >>> from core.model import GPTModel
        >>> model = GPTModel(GPTConfig(vocab_size=20000, context_length=16, emb_dim=32, n_heads=2, n_layers=1))
        >>> trace = generate_traced(model, [15496, 11], 2, temperature=1.0, top_k=5, seed=0)
        >>> len(trace.steps), trace.steps[0].n_kept
        (2, 5)
    """
    plan = _prepare(
        model, idx, max_new_tokens, context_size, temperature, top_k, top_p, eos_id, seed, use_cache
    )
    n_candidates = check_int(n_candidates, "n_candidates", low=1, fix="list at least 1 candidate")
    prompt = _one_sequence(plan.idx, "generate_traced")
    trace = GenerationTrace(prompt_ids=prompt[0].tolist(), new_ids=[], steps=[])
    with _generation_mode(model):
        for logits, nxt in _decode(model, plan):
            chosen = int(nxt[0])
            position = len(trace.prompt_ids) + len(trace.new_ids)
            trace.steps.append(_trace_step(logits[0], chosen, position, plan, n_candidates))
            trace.new_ids.append(chosen)
    return trace


def _trace_step(
    logits: torch.Tensor, chosen: int, position: int, plan: _Plan, n_candidates: int
) -> StepTrace:
    """The statistics of one step from its logits (V,)."""
    raw = torch.softmax(logits, dim=-1)
    temp = logits_to_probs(logits, plan.temperature)
    final, kept = _distribution(logits, plan.temperature, plan.top_k, plan.top_p)  # what next_token sampled
    nz = final[final > 0]
    ids = logits.topk(min(n_candidates, logits.shape[-1])).indices.tolist()
    if chosen not in ids:
        ids.append(chosen)
    pick = torch.tensor(ids, device=logits.device)
    columns = zip(ids, logits[pick].tolist(), raw[pick].tolist(), temp[pick].tolist(), final[pick].tolist(),
                  kept[pick].tolist())
    return StepTrace(
        position=position,
        chosen_id=chosen,
        chosen_prob=float(final[chosen]),
        chosen_prob_raw=float(raw[chosen]),
        chosen_rank=int((logits > logits[chosen]).sum()) + 1,
        entropy=float(-(nz * nz.log()).sum()),
        n_kept=int(kept.sum()),
        candidates=[Candidate(*c) for c in columns],
    )




# ------------------------------------------------------------------------------------------------ playground


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
        >>> from core.config import GPTConfig
        >>> from core.model import GPTModel
        >>> from core.tokenizers import get_tokenizer
        >>> model = GPTModel(GPTConfig.preset("tiny")).eval()
        >>> run = playground_generate(model, get_tokenizer("gpt2"), "Hello", max_new_tokens=3, temperature=0)
        >>> len(run.pieces), len(run.probs)
        (3, 3)
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise LabError("The prompt is empty; type a few words for the model to continue.")
    check_int(max_new_tokens, "max_new_tokens", low=1)
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
