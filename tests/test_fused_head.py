"""The fused head + cross-entropy gives the book's numbers: same loss, same gradients, same training curve."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from core.config import GPTConfig
from core.fused_head import fused_head, linear_cross_entropy, next_token_loss
from core.lora import replace_linear_with_lora
from core.model import GPTModel
from core.train_data import calc_loss_batch
from core.train_step import adamw


def _reference(h, w, t, ignore_index=-100):
    return F.cross_entropy(h @ w.T, t, ignore_index=ignore_index)


@pytest.mark.parametrize("chunk", [1, 3, 4, 7, 256])
def test_loss_and_gradients_match_cross_entropy_for_any_block_size(chunk):
    torch.manual_seed(0)
    h = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(11, 5, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0, 10, 3, -100, 4, 4, 9])
    ref = _reference(h, w, t)
    gh, gw = torch.autograd.grad(ref * 2.5, (h, w))  # a scaled upstream gradient, as a loss weight gives
    got = linear_cross_entropy(h, w, t, chunk_rows=chunk)
    fh, fw = torch.autograd.grad(got * 2.5, (h, w))
    assert got.item() == pytest.approx(ref.item(), rel=1e-12)
    assert torch.allclose(fh, gh, atol=1e-12) and torch.allclose(fw, gw, atol=1e-12)
    assert fh[3].abs().max() == 0  # an ignored row gets no gradient


def test_hand_computed_case():
    # Two rows, three classes, all-zero weights: every logit 0, so each row's loss is ln 3.
    h, w = torch.ones(2, 2), torch.zeros(3, 2, requires_grad=True)
    loss = linear_cross_entropy(h, w, torch.tensor([0, 2]))
    assert loss.item() == pytest.approx(math.log(3))
    loss.backward()
    # d/dW = mean over rows of (softmax - onehot) ⊗ h = ((1/3 - 1/2·[row picks it]) for each class) ⊗ (1, 1)
    assert torch.allclose(w.grad, torch.tensor([[-1 / 6, -1 / 6], [1 / 3, 1 / 3], [-1 / 6, -1 / 6]]))


def test_all_rows_ignored_is_zero_not_nan_and_empty_input_works():
    h, w = torch.randn(3, 4, requires_grad=True), torch.randn(6, 4, requires_grad=True)
    loss = linear_cross_entropy(h, w, torch.full((3,), -100))
    loss.backward()
    assert loss.item() == 0.0 and h.grad.abs().max() == 0 and w.grad.abs().max() == 0
    assert linear_cross_entropy(torch.randn(0, 4), torch.randn(6, 4), torch.zeros(0, dtype=torch.long)).item() == 0


def test_wrong_shapes_are_refused_with_a_sentence():
    with pytest.raises(ValueError, match=r"needs \(N, C\), \(V, C\) and \(N,\)"):
        linear_cross_entropy(torch.randn(2, 3, 4), torch.randn(5, 4), torch.zeros(2, dtype=torch.long))


def test_no_grad_evaluation_gives_the_same_loss():
    torch.manual_seed(1)
    h, w, t = torch.randn(9, 8), torch.randn(30, 8), torch.randint(0, 30, (9,))
    with torch.no_grad():
        assert linear_cross_entropy(h, w, t, chunk_rows=4).item() == pytest.approx(_reference(h, w, t).item(), 1e-6)


def test_bf16_autocast_matches_fp32_within_bf16_tolerance():
    torch.manual_seed(2)
    h = torch.randn(64, 32, requires_grad=True)
    w = (torch.randn(500, 32) * 0.1).requires_grad_()
    t = torch.randint(0, 500, (64,))
    ref = _reference(h, w, t)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = linear_cross_entropy(h.to(torch.bfloat16), w, t, chunk_rows=16)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(ref.item(), rel=2e-2)
    got.backward()
    assert w.grad.dtype == torch.float32 and h.grad.dtype == torch.float32


def _model(seed=0, **over):
    torch.manual_seed(seed)
    return GPTModel(GPTConfig.preset("tiny", vocab_size=300, context_length=16, **over))


def test_the_project_gpt_takes_the_fused_path_and_other_models_the_logits_path():
    model = _model()
    assert fused_head(model) is model.out_head
    assert fused_head(torch.nn.Linear(3, 3)) is None
    replace_linear_with_lora(model, rank=2, alpha=4)
    assert fused_head(model) is None  # a LoRA-wrapped head is no plain linear layer
    x = torch.randint(0, 300, (2, 16))
    loss = next_token_loss(model, x, x)  # the logits path still scores it
    assert loss.item() == pytest.approx(F.cross_entropy(model(x).flatten(0, 1), x.flatten()).item(), rel=1e-6)


def test_calc_loss_batch_equals_the_books_formula_on_the_project_gpt():
    model, x, y = _model(), torch.randint(0, 300, (3, 16)), torch.randint(0, 300, (3, 16))
    book = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
    assert calc_loss_batch(x, y, model, "cpu").item() == pytest.approx(book.item(), rel=1e-6)
    assert next_token_loss(model, x, y, reduction="sum").item() == pytest.approx(book.item() * 48, rel=1e-6)


def test_twenty_training_steps_follow_the_books_loss_curve():
    """Same init, same batches: the fused loss and the book's loss give the same curve (fp32, tight)."""
    start = torch.randint(0, 280, (20, 4, 1), generator=torch.Generator().manual_seed(3))
    x = start + torch.arange(17)  # counting sequences: learnable, so the curve falls
    curves = []
    for fused in (True, False):
        model = _model(seed=5, tie_weights=True)
        opt = adamw(model.parameters(), lr=3e-3, weight_decay=0.1)
        curve = []
        for batch in x:
            if fused:
                loss = calc_loss_batch(batch[:, :-1], batch[:, 1:], model, "cpu")
            else:
                loss = F.cross_entropy(model(batch[:, :-1]).flatten(0, 1), batch[:, 1:].flatten())
            opt.zero_grad()
            loss.backward()
            opt.step()
            curve.append(loss.item())
        curves.append(curve)
    assert curves[0][-1] < curves[0][0] - 0.5  # it learns
    assert max(abs(a - b) for a, b in zip(*curves)) < 1e-4
