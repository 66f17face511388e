"""The run recorder: what a pretraining run writes and reads back in its folder — checkpoint commits,
``run.json``, loading a saved run to resume it, and the status sentences of a stop, a divergence or a failed write.

:class:`RunRecorder` is a mixin of :class:`core.train.Trainer`: the loop decides *when* to record, this says *how*.
"""

from __future__ import annotations

import math
import time

import torch
import torch.distributed as dist

from core import runs
from core.access import owner_of
from core.checkpoint import load as load_checkpoint
from core.checkpoint import save as save_checkpoint
from core.config import GPT2_VOCAB_SIZE
from core.errors import LabError


class RunRecorder:
    """Run-folder I/O of a :class:`core.train.Trainer` (uses its model, optimizer, settings and step)."""

    def _open_run(self, resume: bool) -> None:
        """Claim the run folder (one process at a time, see :func:`core.run_process.acquire_run_lock`), then
        load it (``resume``) or start it fresh; the claim is given back if that fails."""
        self._lock = runs.acquire_run_lock(self.run_dir) if self.run_dir is not None and self.rank == 0 else None
        try:
            self._load() if resume else self._fresh()
        except BaseException:
            runs.release_run_lock(self._lock)
            raise

    def _never_saved(self) -> bool:
        """Whether the run folder holds an attempt that ended before its first checkpoint (nothing to resume), so a
        fresh start may take the folder over. The caller holds the run lock: no live process trains it."""
        if any((self.run_dir / name).exists() for name in (runs.MODEL_FILE, runs.STATE_FILE)):
            return False
        try:
            data = runs.read_json(self.run_dir / runs.RUN_FILE)
        except LabError:
            return False  # a damaged record is listed as broken; it is not silently replaced
        if data.get("checkpoint_step") is not None:
            return False
        self.notes.append("This run id was used by an attempt that stopped before its first checkpoint; it "
                          "starts over.")
        return True

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
        self.owner = owner_of(data) or self.owner  # the visitor who started it keeps it
        self._rng = restored["rng"]


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
            "samples": self.samples, "owner": self.owner,
        })  # fmt: skip


