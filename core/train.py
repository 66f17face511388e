"""Pretraining, as in the book's chapter 5 (plus appendix D's warmup, cosine decay and gradient clipping).

The loop is the book's ``train_model_simple``: take a batch, compute the cross-entropy of the next token
(:func:`calc_loss_batch`), backpropagate, step AdamW, and every ``eval_every`` steps measure the validation loss
(:func:`calc_loss_loader`) and print a sample. On top of that:

- **deterministic data order**: the batch of step ``s`` is a pure function of ``(seed, s)`` (a permutation per
  epoch from a private ``torch.Generator``, :func:`batch_indices`), so there is no DataLoader state to save and a
  resumed run sees exactly the batches it would have seen;
- **checkpoints and exact resume** (files in :mod:`core.runs`): model, AdamW state, step and RNG state, so
  N steps in one go and N/2 + stop + resume + N/2 give bit-identical weights;
- **a NaN guard**: a non-finite loss or gradient stops the run ("diverged") before it can touch a checkpoint;
- **disk faults**: a runs folder that cannot take files is refused before training starts; a write that fails
  mid-run (a full disk) ends the run as "failed" with one sentence, keeping the last committed checkpoint;
- **a memory check** before the first step (:func:`estimate_training_memory`), and **data parallelism** under
  ``torchrun`` (DDP: each rank takes a contiguous slice of every global batch; the loss shown is the mean over
  ranks, so it equals the single-process loss).

Random numbers: weights are initialised from a private generator seeded with ``settings.seed``. Dropout uses
PyTorch's *global* RNG, which the trainer seeds (only when the model has dropout) and saves in checkpoints.
Two jobs with dropout running at once in one process would share that global RNG and lose exact
reproducibility; the ``tiny`` and ``mini`` presets have ``drop_rate=0`` and never touch it.

Shape legend: B batch, L context length, V vocabulary size, N number of windows.

Example:
    >>> cfg = GPTConfig.preset("tiny", vocab_size=256)
    >>> result = Trainer(cfg, TrainSettings(max_steps=20, batch_size=4), ids).run()  # doctest: +SKIP
    >>> result.status  # doctest: +SKIP
    'finished'
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

from core import runs
from core.checkpoint import load as load_checkpoint
from core.checkpoint import save as save_checkpoint
from core.config import GPT2_VOCAB_SIZE, GPTConfig
from core.data import as_token_ids, sliding_windows
from core.errors import LabError
from core.model import GPTModel
from core.stats import total_parameters
from core.train_config import (  # noqa: F401 - re-exported: the public API is core.train
    PRECISIONS,
    MetricRecord,
    TrainResult,
    TrainSettings,
    _cuda_index,
    _whole,
    lr_at,
)
from core.train_plan import plan_data, split_sizes
from core.train_step import StepResult, autocast, train_step  # noqa: F401 - StepResult: part of core.train

list_runs = runs.list_runs


# -------------------------------------------------------------------------------------------------- data
def split_token_ids(ids: torch.Tensor, val_ratio: float) -> tuple[torch.Tensor, torch.Tensor]:
    """First ``1 - val_ratio`` of the tokens for training, the rest for validation (the book's split).

    Splitting *before* cutting windows keeps every validation token out of every training window.

    Example:
        >>> [t.tolist() for t in split_token_ids(torch.arange(10), 0.2)]
        [[0, 1, 2, 3, 4, 5, 6, 7], [8, 9]]
    """
    cut, _ = split_sizes(int(ids.numel()), val_ratio)
    return ids[:cut], ids[cut:]


def batch_indices(step_index: int, n_windows: int, batch_size: int, seed: int) -> torch.Tensor:
    """Window indices of the batch at 0-based ``step_index``, a pure function of its arguments.

    Each epoch visits the windows in the order of ``torch.randperm`` drawn from a generator seeded with
    ``(seed, epoch)``; the windows left over after the last full batch of an epoch are skipped (drop_last).

    Example:
        >>> batch_indices(0, 10, 4, seed=1).shape
        torch.Size([4])
    """
    per_epoch = n_windows // batch_size
    epoch, i = divmod(step_index, per_epoch)
    gen = torch.Generator().manual_seed(_epoch_seed(seed, epoch))
    return torch.randperm(n_windows, generator=gen)[i * batch_size : (i + 1) * batch_size]


def _epoch_seed(seed: int, epoch: int) -> int:
    # Mix the two numbers so (seed, epoch) and (seed + 1, epoch - 1) give unrelated permutations.
    digest = hashlib.sha256(f"{seed}/{epoch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def calc_loss_batch(
    input_batch: torch.Tensor, target_batch: torch.Tensor, model: torch.nn.Module, device: torch.device | str
) -> torch.Tensor:
    """Mean next-token cross-entropy of one batch (the book's ``calc_loss_batch``).

    Args:
        input_batch, target_batch: (B, L) token ids; targets are the inputs shifted by one.
        model: the GPT (or its DDP wrapper).
        device: where the model lives.
    """
    input_batch, target_batch = input_batch.to(device), target_batch.to(device)
    logits = model(input_batch)  # (B, L, V)
    return F.cross_entropy(logits.flatten(0, 1).float(), target_batch.flatten())


def calc_loss_loader(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    batch_size: int,
    max_batches: int | None = None,
    device: torch.device | str | None = None,
) -> float:
    """Average loss over the batches of (inputs, targets), in order (the book's ``calc_loss_loader``).

    Args:
        model: the GPT, evaluated as is (call ``model.eval()`` first to switch dropout off).
        inputs, targets: (N, L) windows.
        batch_size: windows per batch; the last batch may be smaller (no drop_last for evaluation).
        max_batches: use only the first this many batches (``None`` = all).
        device: defaults to the model's device.

    Returns:
        The mean of the per-batch losses, or NaN if there are no windows.
    """
    total, count = _loss_sum(model, inputs, targets, batch_size, max_batches, device, 0, 1)
    return total / count if count else float("nan")


def _loss_sum(model, inputs, targets, batch_size, max_batches, device, rank, world) -> tuple[float, int]:
    """Sum and number of the batch losses this rank computes (batches rank, rank + world, …)."""
    device = device if device is not None else next(model.parameters()).device
    n_batches = math.ceil(inputs.shape[0] / batch_size)
    if max_batches is not None:
        n_batches = min(n_batches, max_batches)
    total, count = 0.0, 0
    with torch.no_grad():
        for b in range(rank, n_batches, world):
            sl = slice(b * batch_size, (b + 1) * batch_size)
            total += calc_loss_batch(inputs[sl], targets[sl], model, device).item()
            count += 1
    return total, count


# ------------------------------------------------------------------------------------------------ memory
def available_memory(device: torch.device) -> int | None:
    """Bytes free for a new job: CUDA's free memory, Linux's MemAvailable, or None when unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type == "cpu":
        try:
            with open("/proc/meminfo", encoding="ascii") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            return None
    return None


def estimate_training_memory(
    model_cfg: GPTConfig, settings: TrainSettings, device: torch.device | str | None = None, world_size: int = 1
) -> dict[str, Any]:
    """A rough estimate of the memory one training process needs, next to what is free.

    Parameters cost 16 bytes each in fp32 (weights 4 + gradients 4 + AdamW's two moments 8). Activations are
    about ``B·L·C·n_layers·34`` bytes for the blocks plus ``B·L·V·8`` for the logits and their gradient.

    Args:
        model_cfg: the model. settings: batch size and context length are used.
        device: the training device (default: what ``settings.device`` resolves to).
        world_size: processes sharing the global batch (each holds ``batch_size / world_size`` windows).

    Returns:
        A dict with ``n_params``, ``weights_bytes``, ``grads_bytes``, ``optimizer_bytes``, ``activations_bytes``,
        ``total_bytes``, ``available_bytes`` (None if unknown), ``device`` (str) and ``fits`` (None if unknown).

    Example:
        >>> est = estimate_training_memory(GPTConfig.preset("tiny"), TrainSettings(batch_size=8))
        >>> est["total_bytes"] > est["weights_bytes"]
        True
    """
    dev = torch.device(device) if device is not None else _resolve_device(settings.device, world_size)
    n_params = total_parameters(model_cfg)
    b = max(1, settings.batch_size // max(1, world_size))
    ctx = settings.context_length or model_cfg.context_length
    blocks = b * ctx * model_cfg.emb_dim * model_cfg.n_layers * 34
    logits = b * ctx * model_cfg.vocab_size * 4 * 2
    est = {
        "n_params": n_params,
        "weights_bytes": 4 * n_params,
        "grads_bytes": 4 * n_params,
        "optimizer_bytes": 8 * n_params,
        "activations_bytes": blocks + logits,
    }
    est["total_bytes"] = sum(v for k, v in est.items() if k.endswith("_bytes"))
    free = available_memory(dev)
    est.update(available_bytes=free, device=str(dev), fits=None if free is None else est["total_bytes"] <= free)
    return est


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GB"


# ------------------------------------------------------------------------------------------------ devices
def _dist_info() -> tuple[int, int]:
    """(world size, rank): (1, 0) unless torch.distributed has been initialised (by the CLI under torchrun)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def _resolve_device(name: str, world_size: int = 1) -> torch.device:
    """``settings.device`` as a torch device; under torchrun with NCCL, the GPU torchrun assigned to this rank."""
    from core.device import best_device

    if world_size > 1 and dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    if _cuda_index(name):
        index = int(name[5:])
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            raise LabError(f"There is no GPU {name} on this machine; use 'cuda', 'cpu' or 'auto'.")
        return torch.device(name)
    try:
        return best_device(None if name == "auto" else name)
    except ValueError as err:  # best_device explains what is missing in one sentence
        raise LabError(str(err)) from None


def _autocast_dtype(precision: str, device: torch.device) -> tuple[torch.dtype | None, str | None]:
    """The autocast dtype to use (None = plain fp32) and a note when the request had to be dropped."""
    if precision != "bf16-autocast":
        return None, None
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return None, "This GPU has no bfloat16 support, so training runs in fp32 instead of bf16-autocast."
    if device.type not in ("cuda", "cpu"):
        return None, f"bf16-autocast is not supported on {device.type}, so training runs in fp32."
    return torch.bfloat16, None


def _corpus_fingerprint(ids: torch.Tensor) -> str:
    return hashlib.sha256(ids.numpy().tobytes()).hexdigest()


# ------------------------------------------------------------------------------------------------ trainer
class Trainer:
    """The book's pretraining loop with checkpoints, exact resume, a NaN guard and optional DDP.

    Args:
        model_cfg: the model to train (a fresh one, initialised from ``settings.seed``, unless resuming).
        settings: how to train.
        token_ids: the whole corpus as token ids (1-D); the end ``val_ratio`` of it is held out.
        run_dir: folder for checkpoints and ``run.json`` (None: nothing is written). Its name is the run id.
        tokenizer: used for the sample texts (None: no samples); its ``name`` is recorded in the checkpoint.
        resume: continue the run saved in ``run_dir`` (same model config and corpus).
        corpus: a description of the corpus for run.json (e.g. ``{"source": "builtin-corpus"}``).
        check_memory: refuse to start when the memory estimate exceeds what is free.

    Raises:
        LabError: bad settings, a corpus too short for one window per split, not enough memory, an existing
            run folder (without ``resume``), or a checkpoint that does not match.

    Example:
        >>> trainer = Trainer(cfg, TrainSettings(max_steps=50), ids, run_dir="runs/demo")  # doctest: +SKIP
        >>> for rec in trainer.iter_records():  # doctest: +SKIP
        ...     print(rec.step, rec.train_loss)
    """

    def __init__(
        self,
        model_cfg: GPTConfig,
        settings: TrainSettings,
        token_ids: Any,
        run_dir: str | Path | None = None,
        tokenizer: Any = None,
        resume: bool = False,
        corpus: dict[str, Any] | None = None,
        check_memory: bool = True,
    ) -> None:
        if not isinstance(model_cfg, GPTConfig):
            got = type(model_cfg).__name__
            raise LabError(f"model_cfg must be a GPTConfig, got {got}; try GPTConfig.preset('tiny').")
        if not isinstance(settings, TrainSettings):
            raise LabError(f"settings must be TrainSettings, got {type(settings).__name__}.")
        self.cfg, self.settings, self.tokenizer = model_cfg, settings, tokenizer
        self.world, self.rank = _dist_info()
        if settings.batch_size % self.world:
            raise LabError(
                f"batch_size {settings.batch_size} cannot be split evenly across {self.world} processes; "
                f"use a multiple of {self.world}."
            )
        self.device = _resolve_device(settings.device, self.world)
        self.amp_dtype, note = _autocast_dtype(settings.precision, self.device)
        self.notes: list[str] = [note] if note else []
        self.context = settings.context_length or model_cfg.context_length
        if self.context > model_cfg.context_length:
            raise LabError(
                f"context_length {self.context} is longer than the model's {model_cfg.context_length} positions; "
                f"use {model_cfg.context_length} or fewer."
            )
        self._prepare_data(token_ids, corpus)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        if self.run_dir is not None:
            runs.validate_run_id(self.run_dir.name)
            runs.check_run_folder(self.run_dir)  # a linked run folder would make us write (and delete) elsewhere
        if check_memory:
            self._check_memory()
        if self.run_dir is not None and self.rank == 0:  # a run that could never save is refused before it starts
            runs.check_writable(self.run_dir if self.run_dir.is_dir() else self.run_dir.parent)
        self.step, self.checkpoint_step, self.elapsed_before = 0, None, 0.0
        self.metrics: list[dict[str, Any]] = []
        self.samples: list[dict[str, Any]] = []
        self.created = time.strftime("%Y-%m-%dT%H:%M:%S")
        self.status, self.message = "ready", ""
        self._rng: int | dict[str, torch.Tensor] = self.settings.seed  # a seed (fresh) or saved states
        self._started = False
        if resume:
            self._load()
        else:
            self._fresh()
        self.param_names = [name for name, _ in self.model.named_parameters()]
        self.ddp = None
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(self.model, device_ids=ids)

    @classmethod
    def resume(cls, run_dir: str | Path, token_ids: Any, tokenizer: Any = None, **overrides: Any) -> Trainer:
        """Continue the run in ``run_dir`` with its own model config and settings (``overrides`` change some,
        e.g. ``max_steps=400`` to train longer)."""
        from core.train_plan import resume_spec

        spec = resume_spec(run_dir, **overrides)
        return cls(spec.cfg, spec.settings, token_ids, spec.run_dir, tokenizer, resume=True, corpus=spec.corpus)

    # ----------------------------------------------------------------------------------------- setup
    def _prepare_data(self, token_ids: Any, corpus: dict[str, Any] | None) -> None:
        s = self.settings
        ids = as_token_ids(token_ids)
        if ids.numel() and int(ids.max()) >= self.cfg.vocab_size:
            raise LabError(
                f"The corpus has token id {int(ids.max())} but the model's vocabulary has only "
                f"{self.cfg.vocab_size:,} ids; use vocab_size {int(ids.max()) + 1} or more, or the model's tokenizer."
            )
        plan = plan_data(int(ids.numel()), self.cfg, s)
        plan.check()  # the same rules and sentences as the pre-flight panel
        train_ids, val_ids = split_token_ids(ids, s.val_ratio)
        self.train_x, self.train_y = sliding_windows(train_ids, plan.context, plan.stride)  # (N, L) each
        # Validation windows never overlap, so every held-out token is scored once.
        self.val_x, self.val_y = sliding_windows(val_ids, plan.context, plan.context)
        n = self.train_x.shape[0]
        self.batches_per_epoch = n // s.batch_size
        self.corpus = {
            **(corpus or {}),
            "n_tokens": int(ids.numel()), "train_tokens": int(train_ids.numel()), "val_tokens": int(val_ids.numel()),
            "train_windows": n, "val_windows": int(self.val_x.shape[0]), "sha256": _corpus_fingerprint(ids),
        }  # fmt: skip

    def _check_memory(self) -> None:
        est = estimate_training_memory(self.cfg, self.settings, self.device, self.world)
        if est["fits"] is False:
            raise LabError(
                f"Training needs about {_gib(est['total_bytes'])} (weights, gradients, AdamW state and "
                f"activations) but only {_gib(est['available_bytes'])} is free on {est['device']}; use a smaller "
                "batch size, context length or model."
            )

    def _fresh(self) -> None:
        # Every rank checks; none can see rank 0's run.json yet, as rank 0 writes it only after DDP's constructor,
        # a collective that waits for all ranks.
        if self.run_dir is not None and (self.run_dir / runs.RUN_FILE).exists():
            raise LabError(
                f"A run named {self.run_dir.name!r} already exists in {self.run_dir.parent}; pick another run id "
                "or resume it."
            )
        with torch.random.fork_rng(devices=[]):  # the layers' default init must not move the global RNG
            model = GPTModel(self.cfg)
        model.reset_parameters(seed=self.settings.seed)  # private generator: same seed, same weights
        self.model = model.to(self.device).train()
        self.optimizer = self._new_optimizer()
        # Applied when training starts, and only if the model has dropout. Each rank gets its own dropout masks.
        self._rng = self.settings.seed + self.rank

    def _new_optimizer(self) -> torch.optim.AdamW:
        s = self.settings
        return torch.optim.AdamW(self.model.parameters(), lr=lr_at(1, s), weight_decay=s.weight_decay)

    def _load(self) -> None:
        if self.run_dir is None:
            raise LabError("resume=True needs the run folder to continue; pass run_dir.")
        # Only rank 0 may repair an interrupted save; the others read the result once it is done.
        state = runs.recover_checkpoint(self.run_dir) if self.rank == 0 else {}
        if self.world > 1:
            dist.barrier()
            state = state or runs.read_json(self.run_dir / runs.STATE_FILE)
        data = runs.read_run(self.run_dir)
        if state.get("corpus_sha256") != self.corpus["sha256"]:
            raise LabError(
                f"The corpus differs from the one run {self.run_dir.name!r} was trained on; resume it with the "
                "same corpus, or start a new run."
            )
        with torch.random.fork_rng(devices=[]):  # building the model must not move the global RNG
            ckpt = load_checkpoint(self.run_dir / runs.MODEL_FILE, self.device)
        if ckpt.config.to_dict() != self.cfg.to_dict():
            raise LabError(
                f"Run {self.run_dir.name!r} was trained with another model configuration; resume it with its own "
                "configuration (Trainer.resume reads it from run.json)."
            )
        self.model = ckpt.model.train()
        self.optimizer = self._new_optimizer()
        names = [name for name, _ in self.model.named_parameters()]
        restored = runs.load_optimizer(self.run_dir / runs.OPTIMIZER_FILE, self.optimizer, names)
        for group in self.optimizer.param_groups:  # a resumed run may change weight decay on purpose
            group["weight_decay"] = self.settings.weight_decay
        self.step = self.checkpoint_step = int(state["step"])
        self.elapsed_before = float(state.get("elapsed_s", 0.0))
        self.metrics = [m for m in data.get("metrics", []) if m.get("step", 0) <= self.step]
        self.samples = [m for m in data.get("samples", []) if m.get("step", 0) <= self.step]
        self.created = data.get("created", self.created)
        self._rng = restored["rng"]

    # ----------------------------------------------------------------------------------------- loop
    def run(
        self,
        on_record: Callable[[MetricRecord], Any] | None = None,
        stop_event: Any = None,
    ) -> TrainResult:
        """Train to ``max_steps`` (or until ``stop_event.is_set()``), calling ``on_record`` after every step.

        Returns:
            A :class:`TrainResult`; a diverged run is a result (status ``"diverged"``), not an exception, and so
            is a run whose files could not be written (a full disk: status ``"failed"``, its message says so, and
            the last committed checkpoint stays loadable).
        """
        records = []
        for record in self.iter_records(stop_event):
            records.append(record)
            if on_record is not None:
                on_record(record)
        return TrainResult(
            status=self.status, message=self.message, step=self.step, checkpoint_step=self.checkpoint_step,
            records=records, notes=list(self.notes), run_dir=self.run_dir,
        )

    def iter_records(self, stop_event: Any = None) -> Iterator[MetricRecord]:
        """Train, yielding a :class:`MetricRecord` after every step; ``self.status`` tells how it ended.

        Stopping (``stop_event.is_set()``, or closing the generator) writes a checkpoint at the current step.
        """
        if self._started:
            raise LabError("This trainer has already run; create a new one with resume=True to continue.")
        self._started = True
        s = self.settings
        if self.cfg.drop_rate > 0:  # only dropout draws from the global RNG; leave it alone otherwise
            if isinstance(self._rng, int):
                torch.manual_seed(self._rng)
            else:
                runs.set_rng_states(self._rng, self.device)
        self.status, self.start_step, self.t_start = "running", self.step, time.perf_counter()
        try:
            self._write_run()
            while self.step < s.max_steps:
                if self._stop_requested(stop_event):
                    self._stop(f"Stopped at step {self.step} of {s.max_steps}")
                    return
                record = self._train_step()
                if record is None:
                    return  # diverged: status and message are set, no checkpoint was touched
                yield record
            if self.checkpoint_step != self.step and not self._save():
                return
            self.status = "finished"
            self.message = f"Finished {s.max_steps} steps" + (
                f"; the checkpoint is in {self.run_dir}." if self.run_dir else "."
            )
            self._write_run()
        except GeneratorExit:  # the consumer stopped iterating: same as a stop request
            try:
                self._stop(f"Stopped at step {self.step} of {s.max_steps}")
            except LabError as err:
                if not runs.is_write_failure(err):
                    raise
                self._fail_to_write(err)
            raise
        except Exception as err:
            if runs.is_write_failure(err):  # a full disk or a vanished folder: stop cleanly, keep the last checkpoint
                self._fail_to_write(err)
                return
            self.status = "failed"
            self.message = str(err) if isinstance(err, LabError) else f"Training failed: {type(err).__name__}: {err}"
            self._try_write_run()
            raise

    def _fail_to_write(self, err: BaseException) -> None:
        """End the run as "failed" with one sentence saying why the files could not be written and what to do."""
        cause = err.__cause__
        why = getattr(cause, "strerror", None) or str(cause or err)
        keep = (f"resume from its checkpoint at step {self.checkpoint_step}" if self.checkpoint_step
                else "start the run again")
        self.status = "failed"
        self.message = (
            f"Training stopped at step {self.step} because the run folder {self.run_dir} could not be written "
            f"({why}); free some disk space or fix the folder, then {keep}."
        )
        self._try_write_run()

    def _try_write_run(self) -> None:
        """Record the final status if the disk lets us; the run's result carries the message either way."""
        try:
            self._write_run()
        except LabError:
            pass

    def _train_step(self) -> MetricRecord | None:
        s, step = self.settings, self.step + 1
        lr = lr_at(step, s)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        x, y = self._batch(self.step)
        seen: dict[str, float] = {}

        def finite(what: str, value: torch.Tensor) -> bool:
            seen[what] = self._mean_over_ranks(value) if what == "loss" else float(value)
            return math.isfinite(seen[what])

        result = train_step(
            self.model, self.optimizer, x, y, loss_fn=_pretrain_loss, grad_clip=s.grad_clip or math.inf,
            autocast_dtype=self.amp_dtype, device=self.device, forward_model=self.ddp, guard=finite,
        )  # fmt: skip
        if not result.applied:
            what = "gradient norm" if "gradient norm" in seen else "loss"
            return self._diverge(step, what, seen[what])
        train_loss, norm = seen["loss"], seen["gradient norm"]
        self.step = step

        evaluate = step == 1 or step % s.eval_every == 0 or step == s.max_steps
        val_loss = self.evaluate() if evaluate else None
        sample = self._sample() if self._due(s.sample_every, evaluate) else None
        now = time.perf_counter()
        tokens = s.batch_size * self.context
        record = MetricRecord(
            step=step, epoch=(step - 1) // self.batches_per_epoch + 1, tokens_seen=step * tokens,
            train_loss=train_loss, val_loss=val_loss, perplexity=_exp(train_loss),
            val_perplexity=None if val_loss is None else _exp(val_loss), lr=lr, grad_norm=norm,
            tokens_per_s=(step - self.start_step) * tokens / max(now - self.t_start, 1e-9),
            elapsed_s=self.elapsed_before + now - self.t_start, sample=sample,
        )  # fmt: skip
        self.metrics.append({k: v for k, v in record.to_dict().items() if k != "sample"})
        if sample is not None:
            self.samples.append({"step": step, "text": sample})
        save = self._due(s.checkpoint_every, evaluate and step > 1) and step < s.max_steps
        if save or evaluate or sample is not None:
            # Before the checkpoint: a process killed right after committing step N must not leave a run.json
            # whose metrics stop short of N (a resume keeps the metrics up to its step and would leave a gap).
            self._write_run()
        if save and not self._save():
            return None
        return record

    def _due(self, every: int | None, default: bool) -> bool:
        if every is None:
            return default
        return every > 0 and (self.step % every == 0 or self.step == self.settings.max_steps)

    def _batch(self, step_index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's slice of the global batch of ``step_index`` (0-based): (B / world, L) twice."""
        idx = batch_indices(step_index, self.train_x.shape[0], self.settings.batch_size, self.settings.seed)
        per_rank = self.settings.batch_size // self.world
        idx = idx[self.rank * per_rank : (self.rank + 1) * per_rank]
        return self.train_x[idx], self.train_y[idx]

    def evaluate(self) -> float:
        """Validation loss over ``eval_batches`` batches (all when None), with dropout off."""
        s = self.settings
        self.model.eval()
        try:
            with autocast(self.device, self.amp_dtype):
                total, count = _loss_sum(
                    self.model, self.val_x, self.val_y, s.batch_size, s.eval_batches, self.device,
                    self.rank, self.world,
                )  # fmt: skip
        finally:
            self.model.train()
        if self.world > 1:  # each rank scored every world-th batch; add the pieces up
            both = torch.tensor([total, count], dtype=torch.float64, device=self.device)
            dist.all_reduce(both)
            total, count = both.tolist()
        return total / count

    def _sample(self) -> str | None:
        s = self.settings
        if self.rank != 0 or self.tokenizer is None or s.sample_tokens == 0 or not s.sample_prompt:
            return None
        from core.generate import generate_text  # generation switches to eval mode and restores train mode

        try:
            return generate_text(
                self.model, self.tokenizer, s.sample_prompt, s.sample_tokens,
                temperature=s.sample_temperature, seed=s.seed + self.step,
            )  # fmt: skip
        except LabError as err:
            note = f"No sample text: {err}"
            if note not in self.notes:
                self.notes.append(note)
            return None

    def _mean_over_ranks(self, value: torch.Tensor) -> float:
        if self.world == 1:
            return float(value)
        value = value.float().clone()
        dist.all_reduce(value)
        return float(value) / self.world

    def _stop_requested(self, stop_event: Any) -> bool:
        flag = bool(stop_event is not None and stop_event.is_set())
        if self.world > 1:  # every rank must stop at the same step, or the others would wait forever
            t = torch.tensor([int(flag)], device=self.device)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            flag = bool(t.item())
        return flag

    def _stop(self, what: str) -> None:
        if self.checkpoint_step != self.step and not self._save():
            return
        self.status = "stopped"
        where = f"; resume from the checkpoint in {self.run_dir}" if self.run_dir and self.step else ""
        self.message = f"{what}{where}."
        self._write_run()

    def _diverge(self, step: int, what: str, value: float) -> None:
        s = self.settings
        kind = "NaN" if math.isnan(value) else "infinite"
        fix = f"lower it (try {4e-4 if s.lr > 4e-4 else s.lr / 4:g})"
        if self.checkpoint_step:
            fix += f" and resume from the last good checkpoint at step {self.checkpoint_step}"
        else:
            fix += " and start again"
        self.status = "diverged"
        self.message = f"The {what} became {kind} at step {step} — the learning rate {s.lr:g} is too high; {fix}."
        self._write_run()
        return None

    # ---------------------------------------------------------------------------------------- files
    def _save(self) -> bool:
        """Write a checkpoint of the current step (rank 0); False (and status diverged) if weights are not finite."""
        if self.run_dir is None:
            return True
        # Checked on every rank (DDP keeps the weights identical) so that all ranks stop together.
        if not all(bool(torch.isfinite(p).all()) for p in self.model.parameters()):
            self._diverge(self.step, "weights", float("nan"))
            return False
        if self.rank != 0:
            return True
        last = self.metrics[-1] if self.metrics else {}
        val = next((m["val_loss"] for m in reversed(self.metrics) if m.get("val_loss") is not None), None)
        extra = {
            "step": self.step, "tokenizer": self._tokenizer_name(), "run_id": self.run_dir.name,
            "train_loss": last.get("train_loss"), "val_loss": val,
        }  # fmt: skip
        state = {
            "format": "llm-scratch-lab-trainer/1", "step": self.step, "elapsed_s": self._elapsed(),
            "tokens_seen": self.step * self.settings.batch_size * self.context,
            "corpus_sha256": self.corpus["sha256"], "world_size": self.world,
        }  # fmt: skip
        runs.commit_checkpoint(
            self.run_dir,
            lambda path: save_checkpoint(self.model, path, extra=extra),
            lambda path: runs.save_optimizer(
                path, self.optimizer, self.param_names, self.step, runs.rng_states(self.device)
            ),
            state,
        )
        self.checkpoint_step = self.step
        return True

    def _tokenizer_name(self) -> str:
        """Recorded in the checkpoint so `python -m core generate` knows how to decode its ids."""
        if self.tokenizer is not None:
            return str(getattr(self.tokenizer, "name", type(self.tokenizer).__name__))
        return "gpt2" if self.cfg.vocab_size == GPT2_VOCAB_SIZE else "unknown"

    def _elapsed(self) -> float:
        started = getattr(self, "t_start", None)
        return self.elapsed_before + (time.perf_counter() - started if started is not None else 0.0)

    def _write_run(self) -> None:
        if self.run_dir is None or self.rank != 0:
            return
        runs.atomic_write_json(self.run_dir / runs.RUN_FILE, {
            "format": runs.RUN_FORMAT, "run_id": self.run_dir.name, "created": self.created,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S"), "status": self.status, "message": self.message,
            "step": self.step, "checkpoint_step": self.checkpoint_step, "world_size": self.world,
            "device": str(self.device), "process": runs.process_tag(), "notes": self.notes,
            "model_config": self.cfg.to_dict(),
            "settings": self.settings.to_dict(), "corpus": self.corpus, "metrics": self.metrics,
            "samples": self.samples,
        })  # fmt: skip


def _pretrain_loss(inputs: torch.Tensor, targets: torch.Tensor, model: torch.nn.Module, device) -> torch.Tensor:
    """The pretraining loss for :func:`core.train_step.train_step`: looks :func:`calc_loss_batch` up at call time."""
    return calc_loss_batch(inputs, targets, model, device)


def _exp(loss: float) -> float:
    return math.exp(min(loss, 700.0))  # exp(710) overflows a float; such a perplexity means "untrained"


def make_trainer(
    model_cfg: GPTConfig,
    settings: TrainSettings,
    token_ids: Any,
    runs_dir: str | Path = "runs",
    run_id: str | None = None,
    resume: bool = False,
    tokenizer: Any = None,
    corpus: dict[str, Any] | None = None,
    label: str = "run",
) -> Trainer:
    """The one way the UI's jobs and the CLI build a trainer, so equal inputs give equal loss curves.

    Args:
        runs_dir: parent folder of the run folders. run_id: folder name (default: time stamp + ``label``).
        The other arguments are :class:`Trainer`'s.
    """
    run_id = run_id if run_id is not None else runs.default_run_id(label)
    run_dir = runs.run_path(runs_dir, run_id)
    return Trainer(model_cfg, settings, token_ids, run_dir, tokenizer, resume=resume, corpus=corpus)


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
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)

    def step(inputs: torch.Tensor, targets: torch.Tensor) -> float:
        result = train_step(
            model, opt, inputs, targets, loss_fn=_pretrain_loss, grad_clip=grad_clip or None,
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


def probe_speed(model_cfg: GPTConfig, settings: TrainSettings, steps: int = 3) -> float:
    """Measure training throughput in tokens/s over a few steps on random tokens (for the UI's time estimate).

    One warm-up step is not timed. The global RNG is restored afterwards, so a running job is not disturbed.

    Example:
        >>> probe_speed(GPTConfig.preset("tiny"), TrainSettings(batch_size=4), steps=2) > 0  # doctest: +SKIP
        True
    """
    steps = _whole(steps, "steps", 1, "measure at least one step")
    device = _resolve_device(settings.device)
    amp, _ = _autocast_dtype(settings.precision, device)
    ctx = min(settings.context_length or model_cfg.context_length, model_cfg.context_length)
    b = settings.batch_size
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        model = GPTModel(model_cfg).to(device).train()
        opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
        gen = torch.Generator().manual_seed(0)
        ids = torch.randint(0, model_cfg.vocab_size, (b, ctx + 1), generator=gen).to(device)  # (B, L + 1)
        start = 0.0
        for i in range(steps + 1):
            if i == 1:
                _sync(device)
                start = time.perf_counter()
            train_step(
                model, opt, ids[:, :-1], ids[:, 1:], loss_fn=_pretrain_loss,
                grad_clip=settings.grad_clip or math.inf, autocast_dtype=amp, device=device,
            )  # fmt: skip
        _sync(device)
    return steps * b * ctx / max(time.perf_counter() - start, 1e-9)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
