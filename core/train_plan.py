"""What a pretraining run will do, decided before it starts: the data plan and the resume spec.

Two questions are answered here once, for the trainer, the Pretraining page's pre-flight panel, the CLI and the
benchmarks alike, so none of them re-types the other's rules:

- :func:`plan_data`: how ``n_tokens`` of corpus split into training and validation tokens, windows, steps per
  epoch and epochs, and what (if anything) makes the run impossible, in the sentence the user will read.
- :func:`resume_spec`: what a saved run needs to continue: its model config, its settings (with some changed on
  purpose, e.g. more steps) and its corpus, read from ``run.json`` in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import GPTConfig
from core.data import window_count
from core.errors import LabError
from core.train_config import TrainSettings


@dataclass(frozen=True)
class DataPlan:
    """The split of a corpus a run trains on (plain numbers; ``problems`` are sentences, empty when it can run)."""

    context: int
    stride: int
    n_tokens: int
    train_tokens: int
    val_tokens: int
    train_windows: int
    val_windows: int
    batch_size: int
    max_steps: int
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.context

    @property
    def steps_per_epoch(self) -> int:
        """Full batches per pass over the training windows (the rest of an epoch is skipped: drop_last)."""
        return self.train_windows // self.batch_size

    @property
    def tokens_per_epoch(self) -> int:
        return self.train_windows * self.context

    @property
    def epochs(self) -> float | None:
        """How many passes over the training windows ``max_steps`` makes (None when no batch fits)."""
        return self.max_steps / self.steps_per_epoch if self.steps_per_epoch else None

    def check(self) -> None:
        """Raise the first problem as a :class:`LabError` (what the trainer does before it builds anything)."""
        if self.problems:
            raise LabError(self.problems[0])


def split_sizes(n_tokens: int, val_ratio: float) -> tuple[int, int]:
    """Training and validation token counts: the first ``1 - val_ratio`` of the tokens train
    (the book cuts the text by characters instead; see :func:`core.train_data.split_token_ids`).

    Example:
        >>> split_sizes(10, 0.2)
        (8, 2)
    """
    train = int(round(n_tokens * (1.0 - val_ratio)))
    return train, n_tokens - train


def plan_data(n_tokens: int, cfg: GPTConfig, settings: TrainSettings,
              sizes: tuple[int, int] | None = None) -> DataPlan:
    """How a corpus of ``n_tokens`` tokens feeds a run with ``cfg`` and ``settings``.

    The last ``val_ratio`` of the tokens is held out (with ``sizes``: the (training, validation) token counts of
    a corpus split another way, e.g. the book's character split); training windows start every ``stride`` tokens
    (default: the context length, so they do not overlap); validation windows never overlap, so every held-out token is
    scored once; an epoch is ``train_windows // batch_size`` steps.

    Example:
        >>> plan = plan_data(10_000, GPTConfig.preset("tiny"), TrainSettings(batch_size=8, context_length=64))
        >>> plan.train_windows, plan.steps_per_epoch, plan.problems
        (140, 17, ())
    """
    ctx = settings.context_length or cfg.context_length
    stride = settings.stride or ctx
    train, val = sizes if sizes is not None else split_sizes(n_tokens, settings.val_ratio)
    windows = window_count(train, ctx, stride)
    problems = []
    if ctx > cfg.context_length:
        problems.append(f"context_length {ctx} is longer than the model's {cfg.context_length} positions; use "
                        f"{cfg.context_length} or fewer.")
    for name, part, fix in (("training", train, "smaller"), ("validation", val, "larger")):
        if part < ctx + 1:
            problems.append(f"The {name} split has {part:,} tokens but needs at least context_length + 1 = "
                            f"{ctx + 1}; use a longer corpus, a smaller context length, or a {fix} validation ratio.")
    if train >= ctx + 1 and windows < settings.batch_size:
        problems.append(f"The training split gives only {windows} window{'' if windows == 1 else 's'} but "
                        f"batch_size is {settings.batch_size}; lower batch_size to {windows} or less, use a smaller "
                        "stride, or a longer corpus.")
    return DataPlan(
        context=ctx, stride=stride, n_tokens=n_tokens, train_tokens=train, val_tokens=val, train_windows=windows,
        val_windows=window_count(val, ctx, ctx), batch_size=settings.batch_size, max_steps=settings.max_steps,
        problems=tuple(problems),
    )  # fmt: skip


@dataclass(frozen=True)
class ResumeSpec:
    """What continuing a saved run needs: its model, its settings (with any changes applied), its corpus."""

    run_dir: Path
    cfg: GPTConfig
    settings: TrainSettings
    corpus: dict[str, Any]

    @property
    def corpus_source(self) -> str | None:
        """The corpus as run.json records it (a registry name or a file path), or None if it does not."""
        source = self.corpus.get("source")
        return source if isinstance(source, str) and source else None


def resume_spec(run_dir: str | Path, **changes: Any) -> ResumeSpec:
    """Read a run's ``run.json`` back: the one place the page, the CLI and ``Trainer.resume`` do so.

    Args:
        run_dir: the run's folder (``runs/<run_id>``).
        **changes: settings to change on purpose, e.g. ``max_steps=400`` to train longer; ``None`` values are
            ignored, so callers can pass optional flags straight through.

    Raises:
        LabError: the run folder or its run.json is missing or damaged, or a change is not a valid setting.
    """
    from core import runs  # runs imports torch-heavy helpers; keep this module light to import

    run_dir = Path(run_dir)
    data = runs.read_run(run_dir)
    if data.get("task", "pretrain") != "pretrain":
        raise LabError(f"Run {run_dir.name!r} is a fine-tuned {data['task']} run, not a pretraining run; it cannot be "
                       "resumed as one (fine-tune again from its base instead).")
    cfg = GPTConfig.from_dict(data["model_config"])
    own = TrainSettings.from_dict(data["settings"])
    changes = {k: v for k, v in changes.items() if v is not None}
    done = max(data.get("checkpoint_step") or 0, runs.committed_step(run_dir) or 0)
    if "max_steps" in changes:
        if changes["max_steps"] <= done:
            raise LabError(f"Run {run_dir.name!r} is already at step {done:,}; ask for more steps than that "
                           f"(e.g. {done * 2:,}) to train on.")
        changes.setdefault("schedule_steps", own.schedule_steps or own.max_steps)  # the plan it was made with
    settings = own.replace(**changes)
    return ResumeSpec(run_dir=run_dir, cfg=cfg, settings=settings, corpus=dict(data.get("corpus") or {}))
