"""Caps for the hosted demo: how big a model, how long a run, how large an upload one visitor may ask for.

A shared demo machine (Streamlit Community Cloud: about 2.7 GB of RAM and 2 CPUs for every visitor together)
must keep working when a class opens the app at once, so the hosted-demo mode caps what one session can start.
On a laptop there are no caps beyond the hard limits in :mod:`core.config`.

The mode is on when ``LLMLAB_DEMO`` is ``1``/``true``/``yes``/``on`` (the Streamlit layer also reads ``LLMLAB_DEMO``
from ``st.secrets``). Nothing here imports Streamlit.

Why these numbers (measured with ``bench/load_test.py``, 10 sessions while one trains): the ``mini`` preset has
13.7 M parameters; training it with AdamW holds weights, gradients and two moments (16 bytes a parameter, about
220 MB) plus activations for a batch of 8 × 128 tokens, which with the server itself (~700 MB with torch loaded)
stays well under 2.0 GB. GPT-2 weights (124 M parameters, 500 MB at fp32, 2 GB to fine-tune) do not fit beside
ten visitors, so the demo does not load them.

Example:
    >>> caps = Limits.hosted()
    >>> caps.check_steps(200)
    >>> caps.check_steps(50_000)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    core.errors.LabError: The hosted demo runs at most 2,000 steps per run; ask for fewer, ...
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.errors import LabError

TRUE_WORDS = {"1", "true", "yes", "on"}
ELSEWHERE = "or run the app on your own machine"


@dataclass(frozen=True)
class Limits:
    """What one session may start. ``None`` means no cap beyond :data:`core.config.MAX_SIZES`.

    Attributes:
        demo: whether these are the hosted-demo caps (pages show a note when they are).
        max_params: parameters of a model that may be built or trained.
        max_context: context length of a model that may be built or trained.
        max_steps: optimizer steps of one pretraining or fine-tuning run.
        max_batch: windows (or examples) per training step.
        max_new_tokens: tokens one generation may add.
        max_upload_mb: size of one uploaded file, in MB (also set in ``.streamlit/config.toml``).
        max_train_mb: the estimated peak memory of one training run (:func:`core.train.estimate_training_memory`).
        max_storage_mb: disk for all runs and stored corpora together; the oldest go first (:mod:`core.quota`).
        max_jobs: background jobs (training, fine-tuning) running at once in the whole server.
        torch_threads: CPU threads PyTorch may use (None: its default), so training leaves a core for the pages.
        allow_gpt2: whether GPT-2 weights may be loaded (from a path or downloaded).
    """

    demo: bool = False
    max_params: int | None = None
    max_context: int | None = None
    max_steps: int | None = None
    max_batch: int | None = None
    max_new_tokens: int | None = None
    max_upload_mb: int = 50
    max_storage_mb: int | None = None
    max_train_mb: int | None = None
    max_jobs: int = field(default_factory=lambda: env_max_jobs())
    torch_threads: int | None = None
    allow_gpt2: bool = True

    @classmethod
    def hosted(cls) -> Limits:
        """The hosted-demo caps (see the module docstring for why these numbers)."""
        return cls(demo=True, max_params=20_000_000, max_context=256, max_steps=2_000, max_batch=32,
                   max_new_tokens=200, max_upload_mb=5, max_storage_mb=2_000, max_train_mb=1_200, torch_threads=1,
                   allow_gpt2=False)

    @classmethod
    def local(cls) -> Limits:
        """No caps beyond the hard limits (a laptop or workstation)."""
        return cls()

    # ----------------------------------------------------------------------------------------------- checks
    def check_model(self, cfg: Any) -> None:
        """Raise :class:`LabError` if a model of config ``cfg`` is above the caps."""
        from core.stats import total_parameters

        if self.max_params is not None:
            n = total_parameters(cfg)
            if n > self.max_params:
                raise LabError(f"This model has {n / 1e6:,.1f} M parameters and the hosted demo builds at most "
                               f"{self.max_params / 1e6:,.0f} M; pick the tiny or mini preset, {ELSEWHERE}.")
        if self.max_context is not None and cfg.context_length > self.max_context:
            raise LabError(f"The hosted demo allows a context length of at most {self.max_context:,} tokens, "
                           f"not {cfg.context_length:,}; lower it, {ELSEWHERE}.")

    def check_steps(self, steps: int) -> None:
        if self.max_steps is not None and steps > self.max_steps:
            raise LabError(f"The hosted demo runs at most {self.max_steps:,} steps per run; ask for fewer, "
                           f"{ELSEWHERE} for longer runs.")

    def check_batch(self, batch_size: int) -> None:
        if self.max_batch is not None and batch_size > self.max_batch:
            raise LabError(f"The hosted demo trains with batches of at most {self.max_batch}; lower the batch "
                           f"size, {ELSEWHERE}.")

    def check_upload(self, n_bytes: int, what: str = "file") -> None:
        if n_bytes > self.max_upload_mb * 1_000_000:
            raise LabError(f"That {what} is {n_bytes / 1e6:,.1f} MB and the limit here is {self.max_upload_mb} MB; "
                           "upload a smaller file.")

    def check_memory(self, n_bytes: int) -> None:
        """Refuse a run whose estimated peak memory is above the demo's budget for one run."""
        if self.max_train_mb is not None and n_bytes > self.max_train_mb * 1_000_000:
            raise LabError(f"This run would need about {n_bytes / 1e9:,.1f} GB of memory at its peak and the hosted "
                           f"demo allows {self.max_train_mb / 1000:,.1f} GB per run; use a smaller batch or context, "
                           f"or dropout 0, {ELSEWHERE}.")

    def check_text(self, text: str, what: str = "pasted text") -> None:
        """Refuse typed or pasted text larger than an upload may be (the same cap, counted in UTF-8 bytes)."""
        if len(text) > self.max_upload_mb * 250_000:  # at most 4 bytes a character: only then count exactly
            n_bytes = len(text.encode("utf-8", "surrogatepass"))
            if n_bytes > self.max_upload_mb * 1_000_000:
                raise LabError(f"The {what} is {n_bytes / 1e6:,.1f} MB and the limit here is {self.max_upload_mb} "
                               "MB; use a shorter text.")

    def check_gpt2(self) -> None:
        if not self.allow_gpt2:
            raise LabError("The hosted demo does not load GPT-2 weights (they need more memory than a shared demo "
                           f"has); use a preset or a run trained here, {ELSEWHERE} to load GPT-2.")

    def cap(self, name: str, value: int) -> int:
        """``value`` lowered to the cap ``name`` (e.g. ``"max_steps"``) when there is one: for widget bounds."""
        limit = getattr(self, name)
        return value if limit is None else min(value, limit)

    def allowed_presets(self) -> list[str]:
        """The model presets a session may build under these caps (every one of :data:`core.config.PRESETS`
        outside the hosted demo), in the presets' order."""
        from core.config import PRESETS, GPTConfig

        names = []
        for name in PRESETS:
            try:
                self.check_model(GPTConfig.preset(name))
            except LabError:
                continue
            names.append(name)
        return names

    def apply_torch_threads(self) -> None:
        """Limit PyTorch's CPU threads to ``torch_threads`` (the demo: 1, so a training job leaves a core for
        everyone's pages); nothing when there is no such cap."""
        if self.torch_threads:
            import torch

            torch.set_num_threads(self.torch_threads)

    def describe(self) -> list[str]:
        """The caps as short phrases, for the note the pages show in demo mode."""
        if not self.demo:
            return []
        parts = [f"models up to {self.max_params / 1e6:,.0f} M parameters (tiny, mini)" if self.max_params else "",
                 f"context ≤ {self.max_context:,} tokens" if self.max_context else "",
                 f"≤ {self.max_steps:,} steps per run" if self.max_steps else "",
                 f"batch ≤ {self.max_batch}" if self.max_batch else "",
                 f"≤ {self.max_new_tokens} new tokens per generation" if self.max_new_tokens else "",
                 f"uploads ≤ {self.max_upload_mb} MB",
                 f"{self.max_jobs} training job{'s' if self.max_jobs > 1 else ''} at a time for everyone",
                 "no GPT-2 weights" if not self.allow_gpt2 else ""]
        return [p for p in parts if p]


def env_max_jobs(env: Mapping[str, str] | None = None) -> int:
    """How many background jobs may run at once: ``LLMLAB_MAX_JOBS`` (a whole number from 1 to 64), default 1.

    The registry and the note the demo shows both read it here, so what visitors are told is what runs.
    """
    raw = str((os.environ if env is None else env).get("LLMLAB_MAX_JOBS", "")).strip()
    if raw.isdigit() and len(raw) <= 2 and 1 <= int(raw) <= 64:
        return int(raw)
    return 1


def demo_requested(env: Mapping[str, str] | None = None, secrets: Mapping[str, Any] | None = None) -> bool:
    """Whether ``LLMLAB_DEMO`` (in the environment, else in ``secrets``) switches the hosted-demo mode on."""
    env = os.environ if env is None else env
    raw = env.get("LLMLAB_DEMO")
    if raw is None and secrets is not None:
        try:
            raw = secrets.get("LLMLAB_DEMO")
        except Exception:  # noqa: BLE001 - a missing or malformed secrets.toml means "not set"
            raw = None
    return str(raw).strip().lower() in TRUE_WORDS if raw is not None else False


def current_limits(env: Mapping[str, str] | None = None, secrets: Mapping[str, Any] | None = None) -> Limits:
    """The demo caps when the mode is on, else none."""
    return Limits.hosted() if demo_requested(env, secrets) else Limits.local()
