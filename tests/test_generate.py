import math
import time

import pytest
import torch

from core.config import GPTConfig
from core.errors import LabError
from core.generate import (
    generate,
    generate_stream,
    generate_text,
    logits_to_probs,
    sampling_distribution,
)
from core.generate_steps import generate_traced
from core.model import GPTModel

CFG = GPTConfig(vocab_size=101, context_length=32, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny tensors gain nothing from two threads, and on a busy 2-core box every parallel op waits for a
    # descheduled thread (milliseconds per op); one thread keeps this file fast and its timings meaningful.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model() -> GPTModel:
    torch.manual_seed(0)
    return GPTModel(CFG).eval()


def _prompt(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, CFG.vocab_size, (batch, length), generator=torch.Generator().manual_seed(seed))


def _book_generate(model, idx, max_new_tokens, context_size):
    """The book's greedy loop (listing 5.4 without top-k): full logits, no cache."""
    for _ in range(max_new_tokens):
        with torch.no_grad():
            logits = model(idx[:, -context_size:])[:, -1, :]
        idx = torch.cat([idx, logits.argmax(dim=-1, keepdim=True)], dim=1)
    return idx


# ------------------------------------------------------------------------------------------- greedy + cache
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("prompt_len, new, context_size", [(1, 12, None), (7, 20, None), (20, 25, None),
                                                           (40, 6, None), (5, 20, 8)])
def test_cached_greedy_equals_uncached_and_book(model, batch, prompt_len, new, context_size):
    # (20, 25) and (5, 20, 8) run past the context, (40, 6) starts with a prompt longer than the context.
    idx = _prompt(batch, prompt_len)
    cached = generate(model, idx, new, context_size=context_size, use_cache=True)
    uncached = generate(model, idx, new, context_size=context_size, use_cache=False)
    book = _book_generate(model, idx, new, context_size or CFG.context_length)
    assert cached.shape == (batch, prompt_len + new)
    assert torch.equal(cached[:, :prompt_len], idx)  # the full prompt is returned, not the cropped one
    assert torch.equal(cached, uncached)
    assert torch.equal(cached, book)


def test_input_forms_and_zero_tokens(model):
    ids = [5, 6, 7]
    expected = generate(model, torch.tensor([ids]), 4)
    assert torch.equal(generate(model, ids, 4), expected)
    assert torch.equal(generate(model, torch.tensor(ids, dtype=torch.int32), 4), expected)
    assert torch.equal(generate(model, ids, 0), torch.tensor([ids]))
    out = generate(model, ids, 3)
    assert out.dtype == torch.int64 and not out.is_inference() and not out.requires_grad


# ---------------------------------------------------------------------------------------------- sampling
def test_filters_that_leave_one_token_equal_greedy(model):
    idx = _prompt(2, 5)
    greedy = generate(model, idx, 15)
    assert torch.equal(generate(model, idx, 15, temperature=1.7, top_k=1, seed=3), greedy)
    assert torch.equal(generate(model, idx, 15, temperature=1.7, top_p=1e-6, seed=3), greedy)
    assert torch.equal(generate(model, idx, 15, temperature=None, top_k=5, seed=9), greedy)


def test_seeds(model):
    idx = _prompt(1, 4)
    kw = dict(temperature=5.0, seed=123)
    first = generate(model, idx, 30, **kw)
    assert torch.equal(generate(model, idx, 30, **kw), first)
    assert torch.equal(generate(model, idx, 30, use_cache=False, **kw), first)
    assert not torch.equal(generate(model, idx, 30, temperature=5.0, seed=124), first)


def test_global_rng_and_training_flags_untouched(model):
    torch.manual_seed(0)
    net = GPTModel(CFG.replace(drop_rate=0.1)).train()
    net.trf_blocks[1].eval()  # a mixed state must come back exactly
    flags = [m.training for m in net.modules()]
    state = torch.get_rng_state()
    generate(net, _prompt(1, 3), 10, temperature=1.0)  # seed=None: fresh private generator
    generate(net, _prompt(1, 3), 10, temperature=1.0, seed=5)
    generate_traced(net, _prompt(1, 3), 3, temperature=1.0, seed=5)
    list(generate_stream(net, _prompt(1, 3), 3, temperature=1.0))
    assert torch.equal(torch.get_rng_state(), state)
    assert [m.training for m in net.modules()] == flags


# ---------------------------------------------------------------------------------- sampling_distribution
def test_top_k_keeps_exactly_k():
    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))
    probs = sampling_distribution(logits, temperature=0.8, top_k=7)
    assert ((probs > 0).sum(-1) == 7).all()
    assert torch.allclose(probs.sum(-1), torch.ones(3))
    kept_ids = (probs > 0).nonzero()[:, 1].view(3, 7)  # nonzero() lists them row by row, ascending
    assert torch.equal(kept_ids, logits.topk(7).indices.sort().values)
    assert torch.equal(sampling_distribution(logits, 1.0, top_k=500) > 0, torch.ones(3, 50, dtype=torch.bool))


@pytest.mark.parametrize("top_p, nucleus", [(0.3, [0]), (0.7, [0, 1]), (0.8, [0, 1, 2]), (0.95, [0, 1, 2, 3]),
                                            (1.0, [0, 1, 2, 3])])
def test_top_p_keeps_minimal_nucleus(top_p, nucleus):
    probs = torch.tensor([0.5, 0.25, 0.15, 0.1])  # cumulative 0.5, 0.75, 0.9, 1.0
    out = sampling_distribution(probs.log(), temperature=1.0, top_p=top_p)
    assert (out > 0).nonzero().flatten().tolist() == nucleus
    assert torch.allclose(out[nucleus], probs[nucleus] / probs[nucleus].sum())


def test_top_p_after_top_k_and_order_of_tokens():
    logits = torch.tensor([1.0, 4.0, 2.0, 3.0])  # unsorted on purpose
    # After top-3 the renormalised probabilities of 4, 3, 2 are 0.665, 0.245, 0.090.
    kept = sampling_distribution(logits, 1.0, top_k=3, top_p=0.5) > 0
    assert kept.tolist() == [False, True, False, False]
    kept = sampling_distribution(logits, 1.0, top_k=3, top_p=0.8) > 0
    assert kept.tolist() == [False, True, False, True]


def test_temperature():
    logits = torch.tensor([[2.0, 0.5, -1.0, 0.0], [0.0, 1.0, 2.0, 3.0]])
    for t in (0.5, 1.0, 2.0):
        assert torch.allclose(sampling_distribution(logits, t), torch.softmax(logits / t, -1))
        assert torch.allclose(logits_to_probs(logits, t), torch.softmax(logits / t, -1))
    flat = sampling_distribution(logits, 1e4)
    assert torch.allclose(flat, torch.full_like(flat, 0.25), atol=1e-3)
    greedy = sampling_distribution(logits, 0.0)
    assert greedy.tolist() == [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
    assert torch.equal(sampling_distribution(logits[0], None), greedy[0])


# ---------------------------------------------------------------------------------------------------- eos
def _always(token: int) -> GPTModel:
    """A model whose every prediction is ``token``: constant final-norm output, head row aligned with it."""
    torch.manual_seed(0)
    net = GPTModel(CFG).eval()
    with torch.no_grad():
        net.final_norm.scale.zero_()
        net.final_norm.shift.fill_(1.0)
        net.out_head.weight[token] += 1.0
    return net


def test_eos_stops_one_sequence():
    net = _always(7)
    out = generate(net, [1, 2, 3], 10, eos_id=7)
    assert out.tolist() == [[1, 2, 3, 7]]
    assert generate(net, [1, 2, 3], 10, eos_id=8).shape == (1, 13)
    assert list(generate_stream(net, [1, 2, 3], 10, eos_id=7)) == [7]
    assert generate_traced(net, [1, 2, 3], 10, eos_id=7).new_ids == [7]


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("pick", ["in every row", "third of row 0"])
def test_eos_pads_finished_rows_in_a_batch(model, use_cache, pick):
    idx, new = _prompt(3, 6, seed=0), 20
    free = generate(model, idx, new)[:, 6:].tolist()
    common = set(free[0]).intersection(*free[1:])
    if pick == "in every row" and common:  # every row stops, at different steps: generation ends early
        eos = min(common, key=lambda t: max(row.index(t) for row in free))
    else:  # row 0 stops and is padded while the others run to max_new_tokens
        eos = free[0][2]
    firsts = [row.index(eos) + 1 if eos in row else new for row in free]
    length = new if eos not in sum(free, []) else max(firsts)
    expected = [row[:f] + [eos] * (length - f) for row, f in zip(free, firsts)]
    out = generate(model, idx, new, eos_id=eos, use_cache=use_cache)
    assert out[:, 6:].tolist() == expected


# ------------------------------------------------------------------------------------------ traced/stream
@pytest.mark.parametrize("kw", [dict(), dict(temperature=1.3, top_k=20, top_p=0.9, seed=11),
                                dict(temperature=2.0, seed=5, use_cache=False)])
def test_traced_and_stream_match_generate(model, kw):
    idx = _prompt(1, 25)  # 25 + 12 > 32: the trace also crosses the context limit
    out = generate(model, idx, 12, **kw)[0].tolist()
    trace = generate_traced(model, idx, 12, n_candidates=5, **kw)
    assert trace.prompt_ids + trace.new_ids == out
    assert list(generate_stream(model, idx, 12, **kw)) == out[25:]
    assert [s.position for s in trace.steps] == list(range(25, 37))
    assert [s.chosen_id for s in trace.steps] == trace.new_ids


def test_trace_probabilities(model):
    idx = _prompt(1, 6)
    trace = generate_traced(model, idx, 6, temperature=1.5, top_k=30, top_p=0.8, seed=2, n_candidates=8)
    ids = trace.prompt_ids + trace.new_ids
    for step in trace.steps:
        with torch.no_grad():
            logits = model(torch.tensor([ids[: step.position]]))[0, -1]
        raw = sampling_distribution(logits, 1.0)
        final = sampling_distribution(logits, 1.5, top_k=30, top_p=0.8)
        assert math.isclose(float(raw.sum()), 1.0, abs_tol=1e-5)
        cand = {c.id: c for c in step.candidates}
        assert step.chosen_id in cand and 8 <= len(cand) <= 9
        assert sum(c.prob_final for c in step.candidates) <= 1.0 + 1e-6
        assert step.chosen_prob > 0 and math.isclose(cand[step.chosen_id].prob_final, step.chosen_prob)
        assert 1 <= step.n_kept <= 30 and step.n_kept == int((final > 0).sum())
        assert 0.0 <= step.entropy <= math.log(step.n_kept) + 1e-5
        for c in step.candidates:
            assert math.isclose(c.prob_raw, float(raw[c.id]), rel_tol=1e-4)
            assert math.isclose(c.prob_final, float(final[c.id]), rel_tol=1e-4, abs_tol=1e-7)
            assert c.kept == (c.prob_final > 0)
        logits_sorted = [c.logit for c in step.candidates[:8]]
        assert logits_sorted == sorted(logits_sorted, reverse=True)


def test_greedy_trace(model):
    trace = generate_traced(model, [3, 4], 3)
    step = trace.steps[0]
    assert step.chosen_prob == 1.0 and step.n_kept == 1 and step.entropy == 0.0 and step.chosen_rank == 1
    assert step.candidates[0].id == step.chosen_id and 0 < step.chosen_prob_raw < 1


def test_generate_text():
    from core.tokenizers import get_tokenizer

    torch.manual_seed(0)
    net = GPTModel(GPTConfig.preset("tiny"))
    tok = get_tokenizer("gpt2")
    text = generate_text(net, tok, "Every effort moves you", 5, temperature=1.0, seed=0)
    assert text.startswith("Every effort moves you") and len(tok.encode(text, allowed_special="all")) >= 5
    with pytest.raises(LabError):
        generate_text(net, tok, "", 5)


# ------------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("args, kw", [
    (([1, 2], -1), {}),
    (([1, 2], 2.5), {}),
    (([1, 2], True), {}),
    (([1, 2], 3), dict(temperature=-0.1)),
    (([1, 2], 3), dict(temperature=float("nan"))),
    (([1, 2], 3), dict(top_k=0)),
    (([1, 2], 3), dict(top_k=2.0)),
    (([1, 2], 3), dict(top_p=0.0)),
    (([1, 2], 3), dict(top_p=1.5)),
    (([], 3), {}),
    ((torch.zeros(1, 0, dtype=torch.long), 3), {}),
    (([1, 101], 3), {}),
    (([-1, 2], 3), {}),
    (([1, 2], 3), dict(context_size=33)),
    (([1, 2], 3), dict(context_size=0)),
    ((torch.tensor([[1.0, 2.0]]), 3), {}),
    ((torch.ones(1, 2, 2, dtype=torch.long), 3), {}),
    (([[1, 2], [3]], 3), {}),
    (("hello", 3), {}),
    (([1, 2], 3), dict(eos_id=101)),
    (([1, 2], 3), dict(seed=-1)),
    (([1, 2], 3), dict(use_cache="yes")),
])
def test_bad_input_raises_lab_error(model, args, kw):
    with pytest.raises(LabError):
        generate(model, *args, **kw)


def test_bad_input_other_entry_points(model):
    with pytest.raises(LabError):
        generate_traced(model, _prompt(2, 3), 3)  # one sequence only
    with pytest.raises(LabError):
        generate_traced(model, [1], 3, n_candidates=0)
    with pytest.raises(LabError):
        generate_stream(model, [1], 3, top_p=2.0)  # raised at the call, not at the first next()
    with pytest.raises(LabError):
        generate(torch.nn.Linear(2, 2), [1], 3)
    with pytest.raises(LabError):
        sampling_distribution(torch.zeros(4), temperature=-1.0)


# -------------------------------------------------------------------------------------------------- speed
def test_cache_is_faster():
    # A small vocabulary: with GPT-2's 50,257 ids the output head (the same work with or without a cache)
    # dominates every step of the tiny model, and the gap the cache makes would drown in noise.
    torch.manual_seed(0)
    net = GPTModel(GPTConfig.preset("tiny", vocab_size=1000, context_length=256)).eval()
    idx = torch.tensor([[1, 2, 3, 4]])
    times = {True: math.inf, False: math.inf}
    for _ in range(2):  # best of two, interleaved; CPU time, so other jobs on the shared machine don't count
        for use_cache in (True, False):
            start = time.process_time()
            generate(net, idx, 200, use_cache=use_cache)
            times[use_cache] = min(times[use_cache], time.process_time() - start)
    assert times[True] < times[False]
