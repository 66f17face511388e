"""Training settings, the learning-rate schedule and the records a training run produces.

Split from :mod:`core.train` so the settings can be built and validated (by the UI's pre-flight panel, the CLI's
argument parser) without importing the training loop. Everything here is re-exported by :mod:`core.train`.

Example:
    >>> s = TrainSettings(max_steps=100, warmup_steps=10, lr=1e-3)
    >>> lr_at(10, s)
    0.001
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import LabError, check_int, check_known_keys, shown

PRECISIONS = ("fp32", "bf16-autocast")
SPLITS = ("tokens", "characters")  # how a corpus is cut into training and validation (TrainSettings.split)


@dataclass(frozen=True)
class TrainSettings:
    """Everything about *how* to train (the model's shape lives in :class:`~core.config.GPTConfig`).

    Attributes:
        max_steps: optimizer steps to take in total.
        batch_size: windows per step (the *global* batch under torchrun; it is split across ranks).
        context_length: tokens per window; ``None`` = the model's context length (it may not be longer).
        stride: how far consecutive training windows move; ``None`` = ``context_length`` (no overlap).
        lr: peak learning rate (the book: 4e-4 with AdamW).
        weight_decay: AdamW's decoupled weight decay (the book: 0.1).
        warmup_steps: steps of linear warmup from ~0 to ``lr``.
        min_lr_ratio: cosine decay ends at ``lr * min_lr_ratio`` (1.0 = constant, as in chapter 5).
        grad_clip: maximum global gradient norm; ``None`` = no clipping.
        eval_every: measure the validation loss every this many steps (also at step 1 and at the end).
        eval_batches: validation batches per evaluation; ``None`` = the whole validation split.
        sample_every: generate a sample every this many steps (also at the end); ``None`` = at every
            evaluation; 0 = never.
        sample_prompt / sample_tokens / sample_temperature: the sample (temperature 0 = greedy).
        val_ratio: share of the corpus (its *end*) held out for validation (book: 0.1).
        split: ``"tokens"`` holds out the last ``val_ratio`` of the token ids; ``"characters"`` cuts the text
            at ``1 - val_ratio`` of its characters and tokenizes the halves apart, as the book's §5.1 does
            (:func:`core.train_data.split_corpus`).
        seed: seeds weight initialisation, data order and dropout.
        checkpoint_every: save every this many steps; ``None`` = at every evaluation; 0 = only at the end
            or when stopped. Needs a run folder.
        device: ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"mps"``.
        precision: ``"fp32"`` or ``"bf16-autocast"`` (falls back to fp32, with a note, where unsupported).
        schedule_steps: the step where the cosine decay ends (None: ``max_steps``). A resumed run that is asked
            for more (or fewer) steps keeps its own schedule, so the steps it had planned get the learning
            rates they would have had; steps beyond it train at the minimum.
    """

    max_steps: int = 200
    batch_size: int = 8
    context_length: int | None = None
    stride: int | None = None
    lr: float = 4e-4
    weight_decay: float = 0.1
    warmup_steps: int = 20
    min_lr_ratio: float = 0.1
    grad_clip: float | None = 1.0
    eval_every: int = 25
    eval_batches: int | None = 10
    sample_every: int | None = None
    sample_prompt: str = "Every effort moves you"
    sample_tokens: int = 25
    sample_temperature: float = 0.0
    val_ratio: float = 0.1
    split: str = "tokens"
    seed: int = 123
    checkpoint_every: int | None = None
    device: str = "auto"
    precision: str = "fp32"
    schedule_steps: int | None = None

    def __post_init__(self) -> None:
        for name, low, fix in _WHOLE_SETTINGS:
            if getattr(self, name) is not None or name in _REQUIRED:
                check_int(getattr(self, name), name, low=low, fix=fix)
        if not _real(self.lr) or not 0 < self.lr < math.inf:
            raise LabError(f"lr must be a positive number, got {shown(self.lr)}; the book uses 4e-4.")
        if not _real(self.weight_decay) or not 0 <= self.weight_decay < math.inf:
            raise LabError(f"weight_decay must be 0 or a positive number, got {shown(self.weight_decay)}; try 0.1.")
        if not _real(self.min_lr_ratio) or not 0 <= self.min_lr_ratio <= 1:
            raise LabError(f"min_lr_ratio must be between 0 and 1, got {shown(self.min_lr_ratio)}; try 0.1.")
        if self.grad_clip is not None and (not _real(self.grad_clip) or not 0 < self.grad_clip < math.inf):
            raise LabError(f"grad_clip must be a positive number or None, got {shown(self.grad_clip)}; try 1.0.")
        if not _real(self.val_ratio) or not 0 < self.val_ratio < 1:
            raise LabError(f"val_ratio must be between 0 and 1 (exclusive), got {shown(self.val_ratio)}; try 0.1.")
        if self.split not in SPLITS:
            raise LabError(f"split must be one of {', '.join(SPLITS)}, got {shown(self.split)}; 'characters' is "
                           "the book's.")
        if not _real(self.sample_temperature) or not 0 <= self.sample_temperature < math.inf:
            raise LabError(f"sample_temperature must be 0 (greedy) or positive, got {shown(self.sample_temperature)}.")
        if not isinstance(self.sample_prompt, str):
            raise LabError(f"sample_prompt must be text, got {type(self.sample_prompt).__name__}.")
        dev = self.device
        if not isinstance(dev, str) or not (dev in ("auto", "cpu", "cuda", "mps") or _cuda_index(dev)):
            raise LabError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {shown(dev)}.")
        if self.precision not in PRECISIONS:
            raise LabError(f"precision must be one of {', '.join(PRECISIONS)}, got {shown(self.precision)}.")

    def replace(self, **changes: Any) -> TrainSettings:
        """A validated copy with some fields changed."""
        _check_setting_keys(changes)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainSettings:
        """Settings from a dict (e.g. a run.json); unknown keys are an error."""
        if not isinstance(data, dict):
            raise LabError(f"Training settings must be a mapping of names to values, got {type(data).__name__}.")
        _check_setting_keys(data)
        return cls(**data)


_UNSET = "or leave it unset for the default"
_WHOLE_SETTINGS = (  # (name, lowest value, what to do), checked by TrainSettings
    ("max_steps", 1, "it is how many optimizer steps to take"),
    ("batch_size", 1, "it is how many windows go into one step"),
    ("warmup_steps", 0, "use 0 for no warmup"),
    ("eval_every", 1, "use 1 to evaluate after every step"),
    ("sample_tokens", 0, "use 0 for no sample text"),
    ("seed", 0, "any whole number such as 123 works"),
    ("context_length", 1, _UNSET), ("stride", 1, _UNSET), ("eval_batches", 1, _UNSET), ("sample_every", 0, _UNSET),
    ("checkpoint_every", 0, _UNSET), ("schedule_steps", 1, _UNSET),
)
_REQUIRED = {"max_steps", "batch_size", "warmup_steps", "eval_every", "sample_tokens", "seed"}


def _real(value: Any) -> bool:
    """A number (not a bool) that fits a float and is not NaN; 10**400 is refused rather than overflow later."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    try:
        return not math.isnan(float(value))
    except (OverflowError, ValueError):
        return False


def _cuda_index(dev: str) -> bool:
    return dev.startswith("cuda:") and dev[5:].isdigit()


def _check_setting_keys(data: dict[str, Any]) -> None:
    check_known_keys(data, (f.name for f in dataclasses.fields(TrainSettings)), "training setting")


def lr_at(step: int, settings: TrainSettings) -> float:
    """Learning rate of optimizer step ``step`` (1-based): linear warmup, then cosine decay to the minimum.

    Steps 1 … W (W = ``warmup_steps``) climb linearly to the peak ``lr`` (reached exactly at step W); steps
    W … ``max_steps`` (or ``schedule_steps``) follow half a cosine from ``lr`` down to ``lr * min_lr_ratio``
    (reached exactly there); later steps stay at the minimum. Step 0 (before training) gives 0 with warmup, else ``lr``.

    Example:
        >>> s = TrainSettings(max_steps=100, lr=1e-3, warmup_steps=10, min_lr_ratio=0.1)
        >>> lr_at(5, s), lr_at(10, s), round(lr_at(100, s), 6)
        (0.0005, 0.001, 0.0001)
    """
    peak, w, total = settings.lr, settings.warmup_steps, settings.schedule_steps or settings.max_steps
    low = peak * settings.min_lr_ratio
    if w and step <= w:
        return peak * max(step, 0) / w
    if step >= total:
        return low if total > w else peak
    progress = (step - w) / (total - w)  # 0 at the end of warmup, 1 at max_steps
    return low + (peak - low) * 0.5 * (1.0 + math.cos(math.pi * progress))


# --------------------------------------------------------------------------------------------- records
@dataclass
class MetricRecord:
    """What one training step reports (plain numbers, safe to hand to a UI thread).

    Attributes:
        step: optimizer steps done (1-based). epoch: passes over the training windows started (1-based).
        tokens_seen: input tokens processed so far (step · batch · context).
        train_loss: cross-entropy of this step's batch (mean over ranks under torchrun).
        val_loss: validation loss, or None when not evaluated at this step.
        perplexity: ``exp(train_loss)``; val_perplexity: ``exp(val_loss)`` or None.
        lr: learning rate used by this step. grad_norm: gradient norm before clipping.
        tokens_per_s: training throughput since this session (re)started. elapsed_s: training time in total.
        sample: generated text at this step, or None.
    """

    step: int
    epoch: int
    tokens_seen: int
    train_loss: float
    val_loss: float | None
    perplexity: float
    val_perplexity: float | None
    lr: float
    grad_norm: float
    tokens_per_s: float
    elapsed_s: float
    sample: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class TrainResult:
    """How a training run ended.

    Attributes:
        status: ``"finished"``, ``"stopped"`` (stop requested; a checkpoint was written) or ``"diverged"``.
        message: one sentence about the outcome (for ``"diverged"``: what happened and what to do).
        step: optimizer steps done. checkpoint_step: step of the last checkpoint written (None if none).
        records: the metric records of this session. notes: remarks such as a precision fallback.
        run_dir: the run folder (None for an in-memory run).
    """

    status: str
    message: str
    step: int
    checkpoint_step: int | None
    records: list[MetricRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    run_dir: Path | None = None

    @property
    def run_id(self) -> str | None:
        return self.run_dir.name if self.run_dir is not None else None

    @property
    def final_val_loss(self) -> float | None:
        return next((r.val_loss for r in reversed(self.records) if r.val_loss is not None), None)
