"""One optimizer step, the sequence every training loop of the lab runs (the book's chapters 5-7).

Forward pass (optionally under autocast), backward pass, optional gradient clipping, AdamW step. The pretraining
:class:`core.train.Trainer`, :func:`core.train.make_train_step`, :func:`core.train.probe_speed`,
:func:`core.classify.train_classifier` and :func:`core.instruct.train_instruct` all call :func:`train_step`, so
the order of operations (and therefore the numbers) is written once.

The step makes no host synchronisation of its own: the loss and the gradient norm come back as tensors and the
caller decides when to read them (``.item()``). A caller that must look at a value *before* the weights change
(the NaN guards) passes ``guard``; returning False from it skips the rest of the step.

Example:
    >>> import torch
    >>> model = torch.nn.Linear(2, 1)
    >>> opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    >>> mse = lambda x, y, m, d: torch.nn.functional.mse_loss(m(x), y)
    >>> result = train_step(model, opt, torch.ones(4, 2), torch.zeros(4, 1), loss_fn=mse, grad_clip=1.0)
    >>> result.applied, result.loss.shape, result.grad_norm.shape
    (True, torch.Size([]), torch.Size([]))
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

LossFn = Callable[[Any, Any, torch.nn.Module, Any], torch.Tensor]
Guard = Callable[[str, torch.Tensor], bool]


@dataclass(frozen=True)
class StepResult:
    """What one :func:`train_step` did.

    Attributes:
        loss: the batch loss, a detached 0-d tensor on the model's device.
        grad_norm: the total gradient norm before clipping (0-d tensor), or None when ``grad_clip`` was None.
        applied: False when ``guard`` stopped the step before the optimizer changed the weights.
    """

    loss: torch.Tensor
    grad_norm: torch.Tensor | None
    applied: bool = True


def autocast(device: torch.device | str, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``dtype`` on ``device``'s type, or a no-op context when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def adamw(params: Any, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW for every training loop of the lab: the fused kernel (one pass over each parameter) on CPU and CUDA,
    about 4× faster than the default on the mini preset's 6.6 M parameters; the default implementation elsewhere.
    Same update rule either way (the fused kernel rounds differently, within float tolerance)."""
    params = list(params)
    device = params[0].device.type if params else "cpu"
    fused = device in ("cpu", "cuda") and all(p.is_floating_point() and p.device.type == device for p in params)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused or None)


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs: Any,
    targets: Any,
    *,
    loss_fn: LossFn,
    grad_clip: float | None = None,
    autocast_dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    forward_model: torch.nn.Module | None = None,
    guard: Guard | None = None,
) -> StepResult:
    """Forward, backward, clip, step: one update of ``optimizer``'s parameters.

    Args:
        model: the module whose parameters are clipped.
        optimizer: steps the parameters (its learning rate is set by the caller).
        inputs, targets: one batch, e.g. (B, L) token ids twice; passed to ``loss_fn`` as they are.
        loss_fn: ``loss_fn(inputs, targets, forward_model, device) -> 0-d loss tensor``.
        grad_clip: clip the total gradient norm to this value (``math.inf`` measures without clipping);
            None skips clipping and the norm.
        autocast_dtype: run the forward pass under autocast with this dtype (None: as is).
        device: where the model lives (default: its first parameter's device).
        forward_model: the module to call for the forward pass (e.g. a DDP wrapper of ``model``).
        guard: ``guard(what, value) -> bool`` called with ``("loss", loss)`` after the forward pass and
            ``("gradient norm", norm)`` after clipping; False ends the step before the weights change.

    Returns:
        A :class:`StepResult`; nothing is read back to the host here.
    """
    device = device if device is not None else next(model.parameters()).device
    with autocast(device, autocast_dtype):
        loss = loss_fn(inputs, targets, forward_model or model, device)
    if guard is not None and not guard("loss", loss.detach()):
        return StepResult(loss.detach(), None, applied=False)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()  # under DDP this also averages the gradients over ranks
    norm = None
    if grad_clip is not None:
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        if guard is not None and not guard("gradient norm", norm):
            return StepResult(loss.detach(), norm, applied=False)
    optimizer.step()
    return StepResult(loss.detach(), norm)
