"""Training speed outside a run: the one-step function ``bench/`` times, and the short probe behind the
pre-flight panel's time estimate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

from core.config import GPTConfig
from core.distributed import _autocast_dtype, _resolve_device
from core.errors import check_int
from core.model import GPTModel
from core.train_config import TrainSettings
from core.train_data import calc_loss_batch
from core.train_step import adamw, autocast, train_step


def make_train_step(
    model: torch.nn.Module,
    lr: float = 4e-4,
    weight_decay: float = 0.1,
    grad_clip: float | None = 1.0,
    precision: str = "auto",
) -> Callable[[torch.Tensor, torch.Tensor], float]:
    """One optimizer step as a function ``step(inputs, targets) -> loss``, using what the device offers.

    ``precision="auto"`` turns on bf16 autocast where the hardware computes bf16 natively (CUDA with bf16
    support; CPUs with AVX-512 BF16 or AMX), and plain fp32 elsewhere. The loss is always computed in fp32.
    The :class:`Trainer` runs the same sequence of operations; this standalone form is what ``bench/`` times.

    Example:
        >>> step = make_train_step(GPTModel(GPTConfig.preset("tiny")))  # doctest: +SKIP
        >>> step(x, y)  # doctest: +SKIP
        10.83
    """
    device = next(model.parameters()).device
    if precision == "auto":
        precision = "bf16-autocast" if _native_bf16(device) else "fp32"
    amp, _ = _autocast_dtype(precision, device)
    opt = adamw(model.parameters(), lr=lr, weight_decay=weight_decay)

    def step(inputs: torch.Tensor, targets: torch.Tensor) -> float:
        result = train_step(
            model, opt, inputs, targets, loss_fn=calc_loss_batch, grad_clip=grad_clip or None,
            autocast_dtype=amp, device=device,
        )  # fmt: skip
        return result.loss.item()

    return step


def _native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


PROBE_MIN_S = 3.0  # what the Pretraining page times at least: a tiny model's 2 steps take a fraction of a second


def probe_speed(model_cfg: GPTConfig, settings: TrainSettings, steps: int = 3, min_seconds: float = 0.0,
                max_steps: int = 30) -> float:
    """Measure training throughput in tokens/s over a few steps on random tokens (for the UI's time estimate).

    One warm-up step is not timed; then at least ``steps`` steps are, and more (up to ``max_steps``) until
    ``min_seconds`` have passed, so a small model's estimate does not rest on a fraction of a second. The global
    RNG is restored afterwards, so a running job is not disturbed.

    Example:
        >>> probe_speed(GPTConfig.preset("tiny"), TrainSettings(batch_size=4), steps=2) > 0  # doctest: +SKIP
        True
    """
    return probe_speeds(model_cfg, settings, steps, min_seconds, max_steps, evaluation=False)["train"]


def probe_speeds(model_cfg: GPTConfig, settings: TrainSettings, steps: int = 3, min_seconds: float = 0.0,
                 max_steps: int = 30, evaluation: bool = True) -> dict[str, float]:
    """Tokens/s of training steps (``"train"``, as :func:`probe_speed`) and, with ``evaluation``, of the
    validation loss's forward passes (``"eval"``, timed for at least a third of ``min_seconds``): an evaluation
    batch costs about half a training step on a small model, not the third a rule of thumb gives."""
    steps = check_int(steps, "steps", low=1, fix="measure at least one step")
    device = _resolve_device(settings.device)
    amp, _ = _autocast_dtype(settings.precision, device)
    ctx = min(settings.context_length or model_cfg.context_length, model_cfg.context_length)
    tokens = settings.batch_size * ctx
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        model = GPTModel(model_cfg).to(device).train()
        opt = adamw(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
        gen = torch.Generator().manual_seed(0)
        ids = torch.randint(0, model_cfg.vocab_size, (settings.batch_size, ctx + 1), generator=gen).to(device)
        step = partial(train_step, model, opt, ids[:, :-1], ids[:, 1:], loss_fn=calc_loss_batch,
                       grad_clip=settings.grad_clip or math.inf, autocast_dtype=amp, device=device)
        out = {"train": tokens / _seconds_per_call(step, device, steps, min_seconds, max_steps)}
        if evaluation:
            model.eval()

            @torch.no_grad()
            def forward() -> None:
                with autocast(device, amp):
                    calc_loss_batch(ids[:, :-1], ids[:, 1:], model, device)

            out["eval"] = tokens / _seconds_per_call(forward, device, 2, min_seconds / 3, 3 * max_steps)
    return out


def _seconds_per_call(call: Callable[[], object], device: torch.device, at_least: int, min_seconds: float,
                      at_most: int) -> float:
    """Mean wall time of ``call`` after one untimed warm-up: ``at_least`` calls, more until ``min_seconds``."""
    call()  # warm-up: first-call allocations and kernel choices
    _sync(device)
    start, done = time.perf_counter(), 0
    while done < at_least or (done < max(at_least, at_most) and time.perf_counter() - start < min_seconds):
        call()
        _sync(device)
        done += 1
    return max(time.perf_counter() - start, 1e-9) / done


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
