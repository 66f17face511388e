"""core.train_step: the one optimizer step equals the hand-written book sequence, and its guard stops it."""

from __future__ import annotations

import math

import torch

from core.config import GPTConfig
from core.model import GPTModel
from core.train import calc_loss_batch, make_train_step
from core.train_step import adamw, train_step

CFG = GPTConfig.preset("tiny", vocab_size=97)


def _model_and_batch():
    model = GPTModel(CFG)
    model.reset_parameters(seed=3)
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, CFG.vocab_size, (4, 17), generator=gen)
    return model, ids[:, :-1], ids[:, 1:]


def _by_hand(model, x, y, clip):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    for _ in range(3):
        loss = calc_loss_batch(x, y, model, "cpu")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
    return loss.detach(), norm


def test_step_equals_a_hand_written_adamw_step():
    a, x, y = _model_and_batch()
    b, _, _ = _model_and_batch()
    want_loss, want_norm = _by_hand(a, x, y, 0.5)
    opt = torch.optim.AdamW(b.parameters(), lr=1e-3, weight_decay=0.1)
    for _ in range(3):
        result = train_step(b, opt, x, y, loss_fn=calc_loss_batch, grad_clip=0.5, device="cpu")
    assert result.applied and torch.equal(result.loss, want_loss) and torch.equal(result.grad_norm, want_norm)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_without_clip_there_is_no_norm_and_make_train_step_matches():
    a, x, y = _model_and_batch()
    b, _, _ = _model_and_batch()
    opt = adamw(a.parameters(), lr=4e-4, weight_decay=0.1)  # the optimizer every loop of the lab builds
    assert train_step(a, opt, x, y, loss_fn=calc_loss_batch).grad_norm is None
    step = make_train_step(b, grad_clip=None, precision="fp32")
    assert isinstance(step(x, y), float)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_a_false_guard_leaves_the_weights_alone():
    model, x, y = _model_and_batch()
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    seen = []

    def guard(what, value):
        seen.append(what)
        return what != "gradient norm"

    result = train_step(model, opt, x, y, loss_fn=calc_loss_batch, grad_clip=math.inf, guard=guard)
    assert seen == ["loss", "gradient norm"] and not result.applied
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))
    result = train_step(model, opt, x, y, loss_fn=calc_loss_batch, guard=lambda what, value: False)
    assert not result.applied and result.grad_norm is None


def test_the_labs_adamw_is_fused_on_cpu_and_follows_torchs_default_adamw():
    a, x, y = _model_and_batch()
    b, _, _ = _model_and_batch()
    fast = adamw(a.parameters(), lr=1e-3, weight_decay=0.1)
    assert fast.defaults["fused"] is True
    plain = torch.optim.AdamW(b.parameters(), lr=1e-3, weight_decay=0.1)
    for _ in range(5):
        train_step(a, fast, x, y, loss_fn=calc_loss_batch)
        train_step(b, plain, x, y, loss_fn=calc_loss_batch)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa, pb, atol=1e-6)
