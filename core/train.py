"""Pretraining, as in the book's chapter 5 (plus appendix D's warmup, cosine decay and gradient clipping).

The loop is the book's ``train_model_simple``: take a batch, compute the cross-entropy of the next token
(:func:`calc_loss_batch`), backpropagate, step AdamW, and every ``eval_every`` steps measure the validation loss
(:func:`calc_loss_loader`; on window tensors :func:`calc_loss_windows`) and print a sample. On top of that:

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

from core import runs
from core.config import GPTConfig
from core.data import sliding_windows
from core.distributed import _autocast_dtype, _dist_info, _resolve_device, any_rank, mean_over_ranks  # noqa: F401
from core.errors import LabError
from core.model import GPTModel
from core.run_recorder import RunRecorder
from core.train_config import (  # noqa: F401 - re-exported: the public API is core.train
    PRECISIONS,
    MetricRecord,
    TrainResult,
    TrainSettings,
    _cuda_index,
    lr_at,
)
from core.train_data import (  # noqa: F401 - re-exported: the public API is core.train
    _loss_sum,
    batch_indices,
    calc_loss_batch,
    calc_loss_loader,
    calc_loss_windows,
    split_corpus,
    split_token_ids,
    train_val_ids,
)
from core.train_eval import Evaluation
from core.train_memory import _gib, available_memory, estimate_training_memory  # noqa: F401
from core.train_plan import plan_data
from core.train_speed import PROBE_MIN_S, make_train_step, probe_speed, probe_speeds  # noqa: F401
from core.train_step import StepResult, adamw, autocast, train_step  # noqa: F401 - StepResult: part of core.train

list_runs = runs.list_runs


def _corpus_fingerprint(ids: torch.Tensor) -> str:
    return hashlib.sha256(ids.numpy().tobytes()).hexdigest()


# ------------------------------------------------------------------------------------------------ trainer
class Trainer(RunRecorder, Evaluation):
    """The book's pretraining loop with checkpoints, exact resume, a NaN guard and optional DDP.

    Args:
        model_cfg: the model to train (a fresh one, initialised from ``settings.seed``, unless resuming).
        settings: how to train.
        token_ids: the corpus as token ids (1-D; the end ``val_ratio`` held out) or a ``TokenSplit`` (``split_corpus``).
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
        owner: str | None = None,
    ) -> None:
        if not isinstance(model_cfg, GPTConfig):
            got = type(model_cfg).__name__
            raise LabError(f"model_cfg must be a GPTConfig, got {got}; try GPTConfig.preset('tiny').")
        if not isinstance(settings, TrainSettings):
            raise LabError(f"settings must be TrainSettings, got {type(settings).__name__}.")
        self.cfg, self.settings, self.tokenizer, self.owner = model_cfg, settings, tokenizer, owner  # owner: a tag
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
        self._open_run(resume)
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
        train_ids, val_ids = train_val_ids(token_ids, s)
        ids = torch.cat([train_ids, val_ids])
        if ids.numel() and int(ids.max()) >= self.cfg.vocab_size:
            raise LabError(
                f"The corpus has token id {int(ids.max())} but the model's vocabulary has only "
                f"{self.cfg.vocab_size:,} ids; use vocab_size {int(ids.max()) + 1} or more, or the model's tokenizer."
            )
        plan = plan_data(int(ids.numel()), self.cfg, s, sizes=(int(train_ids.numel()), int(val_ids.numel())))
        plan.check()  # the same rules and sentences as the pre-flight panel
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
        if self.run_dir is not None and (self.run_dir / runs.RUN_FILE).exists() and not self._never_saved():
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
        return adamw(self.model.parameters(), lr=lr_at(1, s), weight_decay=s.weight_decay)

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
        The run folder's lock is released however training ends.
        """
        try:
            yield from self._records(stop_event)
        finally:
            runs.release_run_lock(self._lock)

    def _records(self, stop_event: Any) -> Iterator[MetricRecord]:
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

    def _mean_over_ranks(self, value: torch.Tensor) -> float:
        return mean_over_ranks(value, self.world)

    def _stop_requested(self, stop_event: Any) -> bool:
        return any_rank(bool(stop_event is not None and stop_event.is_set()), self.world, self.device)


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
    owner: str | None = None,
) -> Trainer:
    """The one way the UI's jobs and the CLI build a trainer, so equal inputs give equal loss curves.

    Args:
        runs_dir: parent folder of the run folders. run_id: folder name (default: time stamp + ``label``).
        The other arguments are :class:`Trainer`'s.
    """
    run_id = run_id if run_id is not None else runs.default_run_id(label)
    run_dir = runs.run_path(runs_dir, run_id)
    return Trainer(model_cfg, settings, token_ids, run_dir, tokenizer, resume=resume, corpus=corpus, owner=owner)


