"""Pre-flight numbers for a pretraining run: how the corpus splits (the trainer's own plan) and how long the run
will take at a measured speed.
"""

from __future__ import annotations

import math
from typing import Any

from core.config import GPTConfig
from core.train import TrainSettings
from core.train_plan import plan_data

EOT = "<|endoftext|>"
PRETRAIN_TOKENIZER = "gpt2"  # a run trained from scratch uses GPT-2's BPE; its checkpoint records the name
FRESH_S = 15 * 60  # a run.json marked running and written this recently is taken to be trained by another process

def preflight_numbers(n_tokens: int, cfg: GPTConfig, settings: TrainSettings,
                      sizes: tuple[int, int] | None = None) -> dict[str, Any]:
    """How a corpus of ``n_tokens`` splits into training/validation tokens, windows and epochs (``sizes``: the
    (training, validation) token counts when the corpus was split by characters, ``TokenSplit.sizes``).

    A view of :func:`core.train_plan.plan_data`, the function the trainer itself checks its data with, so the
    pre-flight panel and the trainer cannot disagree (same numbers, same sentences).
    """
    plan = plan_data(n_tokens, cfg, settings, sizes)
    return {
        "context": plan.context, "train_tokens": plan.train_tokens, "val_tokens": plan.val_tokens,
        "train_windows": plan.train_windows, "val_windows": plan.val_windows,
        "tokens_per_step": plan.tokens_per_step, "tokens_per_epoch": plan.tokens_per_epoch,
        "steps_per_epoch": plan.steps_per_epoch, "epochs": plan.epochs, "problems": list(plan.problems),
    }  # fmt: skip


def estimate_seconds(numbers: dict[str, Any], settings: TrainSettings, tokens_per_s: float,
                     eval_tokens_per_s: float | None = None) -> dict[str, float]:
    """Training time from measured speeds (:func:`core.train.probe_speeds`): the steps, plus the evaluations at
    ``eval_tokens_per_s`` (when not measured: an evaluation batch taken as 1/3 of a step)."""
    per_step = numbers["tokens_per_step"] / tokens_per_s
    per_eval_batch = numbers["tokens_per_step"] / eval_tokens_per_s if eval_tokens_per_s else per_step / 3
    train = settings.max_steps * per_step
    n_evals = settings.max_steps // settings.eval_every + 2  # at step 1, every eval_every, and at the end
    val_batches = math.ceil(numbers["val_windows"] / settings.batch_size)
    if settings.eval_batches is not None:
        val_batches = min(val_batches, settings.eval_batches)
    evaluation = n_evals * val_batches * per_eval_batch
    return {"train": train, "eval": evaluation, "total": train + evaluation}


