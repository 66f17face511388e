"""Progress of long command-line jobs: a tqdm bar on a terminal, one plain line per evaluation in a log file.

tqdm (already installed with the test tools and transformers; pinned in requirements.txt) draws the bar, its rate and
its ETA, and copes with narrow terminals and resizing, which a hand-written bar did not. When the output is not a
terminal (``python -m core pretrain … 2> train.log``) a bar would fill the log with carriage returns, so a plain line
is printed at evaluation steps instead.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from tqdm import tqdm


class ProgressBar:
    """Training progress from :class:`core.train.MetricRecord`-like records (``step``, ``train_loss``,
    ``val_loss``, ``tokens_per_s``, ``sample``) or fine-tuning records (dicts with ``step`` and losses)."""

    def __init__(self, total: int, start: int = 0, enabled: bool = True, stream: Any = None, unit: str = "step"):
        self.total, self.start, self.enabled = total, start, enabled
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.val: float | None = None
        self.t0 = time.perf_counter()
        self.bar = (tqdm(total=total, initial=start, file=self.stream, unit=unit, dynamic_ncols=True, leave=True)
                    if enabled and self.tty else None)  # fmt: skip

    def _postfix(self, record: Any) -> str:
        loss = _get(record, "train_loss")
        parts = [f"loss {loss:.3f}"] if loss is not None else []
        if self.val is not None:
            parts.append(f"val {self.val:.3f}")
        acc = _get(record, "val_acc")
        if acc is not None:
            parts.append(f"val acc {acc:.1%}")
        rate = _get(record, "tokens_per_s")
        if rate:
            parts.append(f"{rate:,.0f} tok/s")
        return " ".join(parts)

    def line(self, record: Any) -> str:
        """The plain line written to a log: ``step 5/10 loss … val … tok/s ETA 0m03s``."""
        step = _get(record, "step")
        rate = (step - self.start) / max(time.perf_counter() - self.t0, 1e-9)
        eta = (self.total - step) / rate if rate > 0 else 0.0
        return f"step {step}/{self.total} {self._postfix(record)} ETA {duration(eta)}"

    def update(self, record: Any) -> None:
        """Show one record (call it for every record the job makes)."""
        if _get(record, "val_loss") is not None:
            self.val = _get(record, "val_loss")
        if not self.enabled:
            return
        sample = _get(record, "sample")
        step = _get(record, "step")
        if self.bar is not None:
            if sample is not None:
                self.bar.write(f"[step {step}] {sample!r}", file=self.stream)
            self.bar.set_postfix_str(self._postfix(record), refresh=False)
            self.bar.update(max(0, step - self.bar.n))
            return
        if sample is not None:
            print(f"[step {step}] {sample!r}", file=self.stream)
        if _get(record, "val_loss") is not None or step == self.total:
            print(self.line(record), file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _get(record: Any, name: str) -> Any:
    return record.get(name) if isinstance(record, dict) else getattr(record, name, None)


def duration(seconds: float) -> str:
    """``3m07s``, or ``1h02m`` from an hour on."""
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
