"""The simple training loop that the book's chapters 6 and 7 reuse from chapter 5's ``train_model_simple``.

Classification (:func:`core.classify.train_classifier`) and instruction fine-tuning
(:func:`core.instruct.train_instruct`) differ only in how a batch becomes a loss and in what they record;
the loop itself (seed once, AdamW over the trainable parameters, an optional stop, a step cap, evaluate at
step 1 and every ``eval_every`` steps) is :func:`run_epochs`, and the optimizer step is
:func:`core.train_step.train_step`, the same one the pretraining :class:`core.train.Trainer` takes.

Under ``torchrun`` (a process group is initialised) every process takes the same batches in the same order (the
same seed), trains on its slice of each (:func:`rank_slice`) and DDP averages the gradients: the global batch is
``batch_size``, split across the processes. Evaluations run in full on every process.

Example:
    >>> import torch
    >>> model = torch.nn.Linear(2, 1)
    >>> loader = [(torch.ones(4, 2), torch.zeros(4, 1))] * 3
    >>> mse = lambda x, y, m, d: torch.nn.functional.mse_loss(m(x), y)
    >>> seen = []
    >>> progress = run_epochs(model, loader, batch_fn=lambda b, d: (b[0], b[1], mse, len(b[0])),
    ...                       on_eval=lambda p, epoch: seen.append(p.steps), eval_every=2, lr=0.1)
    >>> progress.steps, progress.seen, seen
    (3, 12, [1, 2])
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import nn

from core.distributed import _dist_info, any_rank
from core.errors import LabError
from core.train_step import LossFn, adamw, train_step

BatchFn = Callable[[Any, torch.device], tuple[Any, Any, LossFn, int]]


def finite_loss(step: int, what: str, loss: torch.Tensor) -> bool:
    """The fine-tuning loops' NaN guard for :func:`core.train_step.train_step`: raise when the loss is not finite.

    Raises:
        LabError: the loss at ``step`` (1-based) is NaN or infinite.
    """
    value = loss.item()
    if not math.isfinite(value):
        kind = "NaN" if math.isnan(value) else "infinite"
        raise LabError(f"The training loss became {kind} at step {step}; lower the learning rate (the book uses "
                       "5e-5) or check the data, and start again.")
    return True


def batches_in_eval_mode(loader: Iterable, model: nn.Module, num_batches: int | None) -> Iterator[Any]:
    """The first ``num_batches`` batches of ``loader`` (all when None), with ``model`` in eval mode meanwhile.

    The model's training flag is restored when the iteration ends (or is abandoned). Wrap the caller in
    ``torch.no_grad()``: this only chooses batches and the mode.
    """
    was_training = model.training
    model.eval()
    try:
        for i, batch in enumerate(loader):
            if num_batches is not None and i >= num_batches:
                break
            yield batch
    finally:
        model.train(was_training)


@dataclass
class LoopProgress:
    """Where :func:`run_epochs` is: updates taken, examples (or tokens) seen, the current epoch."""

    steps: int = 0
    seen: int = 0
    epoch: int = 0
    stopped: bool = False
    start: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        """Seconds since the loop started."""
        return time.perf_counter() - self.start


@dataclass
class LoopResult:
    """What a fine-tuning loop returns; ``records`` are plain dicts ready for a DataFrame."""

    records: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    stopped: bool = False
    elapsed_s: float = 0.0


def _optimizer(model: nn.Module, lr: float, weight_decay: float, hint: str) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise LabError(f"The model has no trainable parameters; {hint}")
    return adamw(params, lr=lr, weight_decay=weight_decay)


def data_parallel(model: nn.Module, device: torch.device, world: int) -> nn.Module:
    """The module a step calls: ``model`` itself, or under ``torchrun`` a DDP wrapper that averages the
    gradients of every process in ``backward()`` (so every rank keeps identical weights)."""
    if world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def rank_slice(batch: Any, rank: int, world: int) -> Any:
    """This process's share of a batch: every tensor of it cut into ``world`` pieces along the batch dimension.

    Raises:
        LabError: the batch has fewer rows than there are processes.
    """
    if world == 1:
        return batch
    tensors = list(batch)
    rows = tensors[0].shape[0]
    if rows < world:
        raise LabError(f"A batch of {rows} examples cannot be shared by {world} processes; use a batch size of at "
                       f"least {world} (a multiple of it splits evenly).")
    sliced = [t.tensor_split(world)[rank] for t in tensors]
    return tuple(sliced) if isinstance(batch, tuple) else sliced


def _step(model: nn.Module, forward: nn.Module, optimizer: torch.optim.Optimizer, prepared: tuple, device: Any,
          progress: LoopProgress, world: int) -> None:
    inputs, targets, loss_fn, n_seen = prepared
    guard = partial(finite_loss, progress.steps + 1)
    train_step(model, optimizer, inputs, targets, loss_fn=loss_fn, device=device, guard=guard, forward_model=forward)
    progress.steps += 1
    progress.seen += n_seen * world


def run_epochs(
    model: nn.Module,
    train_loader: Iterable,
    *,
    batch_fn: BatchFn,
    on_eval: Callable[[LoopProgress, int], None],
    on_epoch: Callable[[LoopProgress, int], None] | None = None,
    epochs: int = 1,
    max_steps: int | None = None,
    lr: float = 5e-5,
    weight_decay: float = 0.1,
    eval_every: int = 50,
    seed: int | None = 123,
    stop_event: threading.Event | None = None,
    no_params_hint: str = "unfreeze some layers first.",
) -> LoopProgress:
    """Train ``model`` for ``epochs`` passes over ``train_loader`` or ``max_steps`` updates, whichever is first.

    Args:
        batch_fn: ``batch_fn(batch, device) -> (inputs, targets, loss_fn, n_seen)``; ``loss_fn`` is what
            :func:`core.train_step.train_step` calls, ``n_seen`` what the step adds to ``progress.seen``.
        on_eval: called at step 1 and every ``eval_every`` steps, with the progress and the epoch (1-based).
        on_epoch: called at the end of every epoch, also the one a stop or ``max_steps`` cut short.
        seed: seeds the global RNG once before training, as the book does (dropout, shuffling); None leaves it.
        stop_event: when set, training ends before the next step and ``progress.stopped`` is True.

    Raises:
        LabError: bad counts, no trainable parameters, an empty loader, or a NaN/infinite loss.
    """
    if epochs < 1 or eval_every < 1 or (max_steps is not None and max_steps < 1):
        raise LabError("epochs, eval_every and max_steps must be at least 1.")
    optimizer = _optimizer(model, lr, weight_decay, no_params_hint)
    if seed is not None:
        torch.manual_seed(seed)
    device = next(model.parameters()).device
    world, rank = _dist_info()
    forward = data_parallel(model, device, world)
    progress, done = LoopProgress(), False
    for progress.epoch in range(1, epochs + 1):
        model.train()
        for batch in train_loader:
            if any_rank(stop_event is not None and stop_event.is_set(), world, device):
                progress.stopped = done = True
                break
            _step(model, forward, optimizer, batch_fn(rank_slice(batch, rank, world), device), device, progress,
                  world)
            if progress.steps == 1 or progress.steps % eval_every == 0:
                on_eval(progress, progress.epoch)
            if max_steps is not None and progress.steps >= max_steps:
                done = True
                break
        if progress.steps == 0 and not progress.stopped:
            raise LabError("The training loader yielded no batches; use a smaller batch or drop_last=False.")
        if on_epoch is not None:
            on_epoch(progress, progress.epoch)
        if done:
            break
    model.eval()
    return progress
