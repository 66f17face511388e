"""Plotly figure (and small HTML) builders for the Pretraining page.

Pure functions: metric records (plain dicts as :class:`core.train.MetricRecord.to_dict` gives them) in,
``plotly.graph_objects.Figure`` or an HTML string out. They never import streamlit, so they are tested directly.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

TRAIN_COLOR, VAL_COLOR, LR_COLOR, GUESS_COLOR = "#1f77b4", "#ff7f0e", "#2ca02c", "#7f7f7f"
RUN_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
X_AXES = {"step": "step", "tokens_seen": "tokens seen"}

Record = Mapping[str, Any]


def _exp(loss: float) -> float:
    return math.exp(min(loss, 700.0))  # exp(710) overflows a float


def _points(records: Sequence[Record], x: str, key: str, perplexity: bool) -> tuple[list, list]:
    """(x, y) of every record that has a finite ``key``; y as perplexity (exp of the loss) if asked."""
    xs, ys = [], []
    for r in records:
        v = r.get(key)
        if v is None or not math.isfinite(v) or r.get(x) is None:
            continue
        xs.append(r[x])
        ys.append(_exp(v) if perplexity else v)
    return xs, ys


def _y_title(perplexity: bool) -> str:
    return "perplexity = exp(loss)" if perplexity else "cross-entropy loss"


def _guess_line(fig: go.Figure, xs: Sequence[Any], vocab_size: int | None, perplexity: bool, **where: Any) -> None:
    """A dotted line at what a model that guesses uniformly scores: ln(V), i.e. perplexity V.

    Drawn as a trace (not a shape) so it sits in the legend and stays right on a log axis.
    """
    if not vocab_size or not xs:
        return
    y = float(vocab_size) if perplexity else math.log(vocab_size)
    name = f"uniform guess: perplexity {vocab_size:,}" if perplexity else f"uniform guess: ln({vocab_size:,}) = {y:.2f}"
    fig.add_trace(go.Scatter(x=[min(xs), max(xs)], y=[y, y], name=name, mode="lines", hoverinfo="skip",
                             line=dict(color=GUESS_COLOR, dash="dot", width=1)), **where)


def _lr_axis(fig: go.Figure, records: Sequence[Record], x: str) -> None:
    """The learning rate as a dotted line on a right-hand axis."""
    lx = [r[x] for r in records if r.get("lr") is not None]
    ly = [r["lr"] for r in records if r.get("lr") is not None]
    fig.add_trace(go.Scatter(x=lx, y=ly, name="learning rate", mode="lines",
                             line=dict(color=LR_COLOR, width=1, dash="dot")), secondary_y=True)
    fig.update_yaxes(title_text="learning rate", secondary_y=True, showgrid=False, exponentformat="e",
                     rangemode="tozero")


def loss_figure(
    records: Sequence[Record],
    x: str = "step",
    log_y: bool = False,
    perplexity: bool = False,
    show_lr: bool = False,
    vocab_size: int | None = None,
    height: int = 360,
    max_points: int = 2000,
) -> go.Figure:
    """Train loss (every step) and validation loss (every evaluation) against steps or tokens seen.

    Args:
        records: dicts with ``step``, ``tokens_seen``, ``train_loss``, ``val_loss`` (None when not evaluated)
            and ``lr``; non-finite losses are left out.
        x: ``"step"`` or ``"tokens_seen"``.
        log_y: logarithmic loss axis.
        perplexity: plot ``exp(loss)`` instead of the loss.
        show_lr: the learning rate on a secondary y-axis (right).
        vocab_size: draw the uniform-guess line at ln(vocab_size) (the loss of an untrained model).
        max_points: long runs draw every k-th train point (and the last) so the chart stays light.

    Example:
        >>> fig = loss_figure([{"step": 1, "tokens_seen": 64, "train_loss": 10.9, "val_loss": 10.8, "lr": 1e-4}])
        >>> [t.name for t in fig.data]
        ['train loss', 'val loss']
    """
    if x not in X_AXES:
        raise ValueError(f"x must be one of {', '.join(X_AXES)}, got {x!r}")
    fig = make_subplots(specs=[[{"secondary_y": True}]]) if show_lr else go.Figure()
    what = "perplexity" if perplexity else "loss"
    tx, ty = _points(records, x, "train_loss", perplexity)
    if len(tx) > max_points:
        k = math.ceil(len(tx) / max_points)
        tx, ty = tx[::k] + tx[-1:], ty[::k] + ty[-1:]
    vx, vy = _points(records, x, "val_loss", perplexity)
    traces = [
        go.Scatter(x=tx, y=ty, name=f"train {what}", mode="lines", line=dict(color=TRAIN_COLOR, width=1.5)),
        go.Scatter(x=vx, y=vy, name=f"val {what}", mode="lines+markers", line=dict(color=VAL_COLOR, dash="dash")),
    ]
    for trace in traces:
        fig.add_trace(trace, **({"secondary_y": False} if show_lr else {}))
    if show_lr:
        _lr_axis(fig, records, x)
    _guess_line(fig, tx + vx, vocab_size, perplexity, **({"secondary_y": False} if show_lr else {}))
    fig.update_yaxes(title_text=_y_title(perplexity), type="log" if log_y else "linear",
                     **({"secondary_y": False} if show_lr else {}))
    fig.update_xaxes(title_text=X_AXES[x])
    if not records:
        fig.add_annotation(text="No steps yet: the curves appear after the first training step.", showarrow=False,
                           xref="paper", yref="paper", x=0.5, y=0.5)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=1.12),
                      hovermode="x unified")
    return fig


def compare_figure(
    curves: Mapping[str, Sequence[Record]],
    x: str = "step",
    log_y: bool = False,
    perplexity: bool = False,
    vocab_size: int | None = None,
) -> go.Figure:
    """Validation-loss curves of several runs on one plot (one colour per run).

    Args:
        curves: run id → its metric records (only those with a ``val_loss`` are drawn).
        x, log_y, perplexity, vocab_size: as in :func:`loss_figure`.
    """
    if x not in X_AXES:
        raise ValueError(f"x must be one of {', '.join(X_AXES)}, got {x!r}")
    fig = go.Figure()
    all_x: list = []
    for i, (run_id, records) in enumerate(curves.items()):
        xs, ys = _points(records, x, "val_loss", perplexity)
        all_x += xs
        fig.add_trace(go.Scatter(x=xs, y=ys, name=run_id, mode="lines+markers",
                                 line=dict(color=RUN_COLORS[i % len(RUN_COLORS)])))
    _guess_line(fig, all_x, vocab_size, perplexity)
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=1.15),
                      xaxis_title=X_AXES[x], yaxis_title=f"validation {_y_title(perplexity)}",
                      yaxis_type="log" if log_y else "linear", hovermode="x unified")
    if not curves:
        fig.add_annotation(text="Pick runs above to compare their validation loss.", showarrow=False,
                           xref="paper", yref="paper", x=0.5, y=0.5)
    return fig


def _with_prompt(text: str, prompt: str | None) -> str:
    if prompt and text.startswith(prompt):
        return f"<b>{html.escape(prompt)}</b>{html.escape(text[len(prompt):])}"
    return html.escape(text)


def continuation_html(text: str, prompt: str | None = None) -> str:
    """One generated text with its prompt in bold (escaped, line breaks kept)."""
    return ("<div style='white-space:pre-wrap;font-family:monospace;font-size:0.95em;padding:0.5em;"
            f"border-left:3px solid {VAL_COLOR}'>{_with_prompt(text, prompt)}</div>")


def samples_html(samples: Sequence[Record], prompt: str | None = None, limit: int | None = None,
                 empty: str = "No samples yet.") -> str:
    """The samples generated during training as a timeline, newest first: ``step N`` → text.

    The prompt at the start of each sample is shown in bold so the model's own words stand out. Text is
    escaped (a sample is model output and may contain ``<`` or ``&``); line breaks are kept.

    Args:
        samples: dicts with ``step`` and ``text``.
        prompt: the prompt the samples start from.
        limit: show at most this many (the newest).
        empty: what to say when there is no sample.
    """
    rows = sorted((s for s in samples if s.get("text") is not None), key=lambda s: s["step"], reverse=True)
    if limit is not None:
        rows = rows[:limit]
    if not rows:
        return f"<div style='color:#777'>{html.escape(empty)}</div>"
    items = []
    for s in rows:
        body = _with_prompt(str(s["text"]), prompt)
        items.append(
            "<div style='display:flex;gap:0.8em;padding:0.35em 0;border-bottom:1px solid #eee'>"
            f"<div style='min-width:5.5em;color:#777;font-size:0.9em'>step {int(s['step']):,}</div>"
            f"<div style='white-space:pre-wrap;font-family:monospace;font-size:0.9em'>{body}</div></div>"
        )
    return "<div class='pt-samples'>" + "".join(items) + "</div>"
