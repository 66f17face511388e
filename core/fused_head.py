"""The output head and its cross-entropy in one pass, a block of rows at a time.

For the small presets most of a training step is the last layer: ``hidden @ W.T`` makes a (B·T, 50,257) matrix of
logits (200 MB for a mini batch), the cross-entropy reads it twice, its backward writes a gradient of the same size,
and two more matrix multiplies read that. :func:`linear_cross_entropy` computes the same loss and the same gradients
a block of ``chunk_rows`` rows at a time, in one reused buffer, and works the gradient out during the forward pass
(the softmax minus the one-hot target is all the backward needs), so the full logits never exist. Same numbers as
``F.cross_entropy(hidden @ W.T, targets, ignore_index=-100)`` up to float rounding (tests/test_fused_head.py);
measured speed in bench/README.md ("Training step").

Under bf16 autocast the two matrix multiplies run in bf16 and the softmax in fp32 (as autocast does for
``cross_entropy``). Every loss the lab trains with goes through :func:`next_token_loss`, which takes this path for
the project's own :class:`core.model.GPTModel` with a plain linear head, and the book's path (logits, then
``F.cross_entropy``) for any other model.

Example:
    >>> import torch
    >>> h, w = torch.randn(6, 4, requires_grad=True), torch.randn(10, 4)
    >>> t = torch.tensor([1, 2, 3, -100, 5, 6])
    >>> fused = linear_cross_entropy(h, w, t, chunk_rows=4)
    >>> book = torch.nn.functional.cross_entropy(h @ w.T, t)
    >>> bool(torch.allclose(fused, book))
    True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IGNORE_INDEX = -100
CHUNK_ROWS = 256  # 256 × 50,257 fp32 logits ≈ 51 MB: large enough for fast matrix multiplies, reused every block


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, ignore_index, chunk_rows, compute_dtype):
        want_h, want_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        loss, grad_h, grad_w = _blocks(hidden, weight, targets, ignore_index, chunk_rows, compute_dtype,
                                       want_h, want_w)
        ctx.save_for_backward(grad_h, grad_w)
        ctx.has = (grad_h is not None, grad_w is not None)
        return loss

    @staticmethod
    def backward(ctx, grad_out):
        grad_h, grad_w = ctx.saved_tensors
        has_h, has_w = ctx.has
        return (grad_h * grad_out.to(grad_h.dtype) if has_h else None,
                grad_w * grad_out.to(grad_w.dtype) if has_w else None, None, None, None, None)


def _blocks(hidden, weight, targets, ignore_index, chunk_rows, compute_dtype, want_h, want_w):
    """The mean loss over kept rows and, where wanted, d loss / d hidden and d loss / d weight."""
    n = hidden.shape[0]
    keep = targets != ignore_index
    acc = torch.float64 if compute_dtype == torch.float64 else torch.float32  # softmax and sums: fp32 at least
    scale = 1.0 / keep.sum().clamp(min=1).to(acc)  # a tensor: no host sync on a GPU
    safe = torch.where(keep, targets, torch.zeros_like(targets))
    w_c = weight.to(compute_dtype)
    h_c = hidden.to(compute_dtype)
    buf = torch.empty((min(chunk_rows, max(n, 1)), weight.shape[0]), dtype=acc, device=hidden.device)
    grad_h = torch.empty_like(hidden) if want_h else None
    grad_w = torch.zeros_like(weight, dtype=acc) if want_w else None
    total = torch.zeros((), dtype=acc, device=hidden.device)
    for start in range(0, n, chunk_rows):
        stop = min(start + chunk_rows, n)
        rows, t, k = h_c[start:stop], safe[start:stop], keep[start:stop]
        logits = buf[: stop - start]
        if compute_dtype == acc:
            torch.mm(rows, w_c.t(), out=logits)
        else:
            logits.copy_(rows @ w_c.t())
        picked = logits.gather(1, t[:, None]).squeeze(1)
        top = logits.amax(dim=1, keepdim=True)
        probs = logits.sub_(top).exp_()  # in place: exp(logit - max)
        sums = probs.sum(dim=1)
        total += ((sums.log() + top.squeeze(1) - picked) * k).sum()
        if not (want_h or want_w):
            continue
        probs.mul_((k.to(acc) * scale / sums)[:, None])  # softmax / count on kept rows, 0 elsewhere
        probs[torch.arange(stop - start, device=probs.device), t] -= k.to(acc) * scale
        g = probs if compute_dtype == acc else probs.to(compute_dtype)
        if want_h:
            grad_h[start:stop] = (g @ w_c).to(hidden.dtype)
        if want_w:
            if compute_dtype == acc:
                grad_w.addmm_(g.t(), rows)
            else:
                grad_w.add_(g.t() @ rows)  # a bf16 product, accumulated in fp32
    if grad_w is not None:
        grad_w = grad_w.to(weight.dtype)
    return total * scale, grad_h, grad_w


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                         ignore_index: int = IGNORE_INDEX, chunk_rows: int = CHUNK_ROWS) -> torch.Tensor:
    """``F.cross_entropy(hidden @ weight.T, targets, ignore_index=...)`` without the full logits matrix.

    Args:
        hidden: (N, C) final-norm outputs. weight: (V, C), the head's weight. targets: (N,) token ids, with
            ``ignore_index`` for rows that do not count.
        chunk_rows: rows per block.

    Returns the mean loss over the rows that count (0 when none does, not the NaN of 0 / 0).
    """
    if hidden.dim() != 2 or weight.dim() != 2 or targets.shape != hidden.shape[:1]:
        raise ValueError(f"linear_cross_entropy needs (N, C), (V, C) and (N,), got {tuple(hidden.shape)}, "
                         f"{tuple(weight.shape)} and {tuple(targets.shape)}")
    device_type = hidden.device.type
    compute = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else weight.dtype
    with torch.autocast(device_type, enabled=False):
        return _LinearCrossEntropy.apply(hidden, weight, targets, ignore_index, max(1, int(chunk_rows)), compute)


def fused_head(model: nn.Module) -> nn.Linear | None:
    """The plain linear head the fused loss can use, or None (another model, a LoRA-wrapped or biased head)."""
    from core.model import GPTModel

    inner = getattr(model, "module", model)  # DistributedDataParallel keeps the model in .module
    head = getattr(inner, "out_head", None) if isinstance(inner, GPTModel) else None
    return head if type(head) is nn.Linear and head.bias is None else None


def next_token_loss(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                    ignore_index: int = IGNORE_INDEX, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of ``model``'s next-token predictions for (B, T) ``inputs`` against (B, T) ``targets``.

    ``reduction="mean"`` averages over the targets that count; ``"sum"`` adds them up. The project's GPT takes the
    fused path; any other model is scored the book's way, from its full logits.
    """
    head = fused_head(model)
    if head is None:
        logits = model(inputs)
        out = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=ignore_index,
                              reduction="sum")
        count = (targets != ignore_index).sum()
        return out if reduction == "sum" else out / count.clamp(min=1)
    hidden = model(inputs, return_hidden=True)  # (B, T, C): the final norm's output
    mean = linear_cross_entropy(hidden.flatten(0, 1), head.weight, targets.flatten(), ignore_index)
    return mean if reduction == "mean" else mean * (targets != ignore_index).sum()

