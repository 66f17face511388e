"""Plotly figure (and small HTML) builders for the Attention, Architecture and Generation pages.

Pure functions: numpy arrays, lists and dicts in, ``plotly.graph_objects.Figure`` (or an HTML string) out.
They never import streamlit, so they are tested directly.

Heatmaps place cells at integer positions and put the token labels on the ticks, so a sentence with a repeated
word ("the … the") still gets one row and one column per token.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

NEG_INF_TEXT = "−∞"
MAX_LABEL = 14  # characters shown of a token label on an axis


def visible_token(text: str) -> str:
    """A token as a label that never reads blank: newlines as ↵, tabs as →, and a token of spaces only as ␣s."""
    text = str(text).replace("\r", "").replace("\n", "↵").replace("\t", "→")
    return text.replace(" ", "␣") if not text.strip() else text


def _label(text: str, limit: int = MAX_LABEL) -> str:
    text = visible_token(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def format_prob(p: float) -> str:
    """A probability as a percentage that stays informative when tiny: 0.25 → '25.0%', 2e-5 → '0.002%'."""
    p = float(p)
    if p == 0.0 or p >= 0.001:
        return f"{p:.1%}"
    return f"{p * 100:.2g}%" if p * 100 >= 1e-4 else f"{p:.1e}"


def _format(value: float, decimals: int) -> str:
    if math.isnan(value):
        return ""
    if math.isinf(value):
        return NEG_INF_TEXT if value < 0 else "∞"
    return f"{value:.{decimals}f}"


def matrix_heatmap(
    matrix: np.ndarray,
    row_labels: Sequence[str],
    col_labels: Sequence[str] | None = None,
    *,
    title: str = "",
    x_title: str = "",
    y_title: str = "",
    decimals: int = 2,
    colorscale: str = "Blues",
    zmin: float | None = None,
    zmax: float | None = None,
    show_values: bool = True,
    height: int | None = None,
) -> go.Figure:
    """An annotated heatmap of a 2-D matrix, row 0 at the top, with every value written in its cell.

    ``-inf`` cells (masked attention scores) are left blank in the colour scale and labelled ``−∞``.

    Args:
        matrix: (R, C) values.
        row_labels: R labels for the y axis; col_labels: C labels for the x axis (default: the row labels).
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"matrix_heatmap needs a 2-D matrix, got shape {m.shape}.")
    cols = list(row_labels if col_labels is None else col_labels)
    rows = list(row_labels)
    if len(rows) != m.shape[0] or len(cols) != m.shape[1]:
        raise ValueError(f"{len(rows)} row and {len(cols)} column labels for a matrix of shape {m.shape}.")
    z = np.where(np.isfinite(m), m, np.nan)
    text = [[_format(v, decimals) for v in row] for row in m]
    custom = np.array([[[r, c] for c in cols] for r in rows], dtype=object)  # (R, C, 2) hover labels
    hover = (f"{y_title or 'row'}: %{{customdata[0]}}<br>{x_title or 'column'}: %{{customdata[1]}}<br>"
             "value: %{text}<extra></extra>")
    fig = go.Figure(go.Heatmap(
        z=z, x=list(range(m.shape[1])), y=list(range(m.shape[0])), text=text, customdata=custom,
        texttemplate="%{text}" if show_values else None, textfont=dict(size=12), hovertemplate=hover,
        colorscale=colorscale, zmin=zmin, zmax=zmax, showscale=False, xgap=1, ygap=1,
    ))  # fmt: skip
    fig.update_xaxes(tickvals=list(range(len(cols))), ticktext=[_label(c) for c in cols], title=x_title,
                     side="top", showgrid=False)
    fig.update_yaxes(tickvals=list(range(len(rows))), ticktext=[_label(r) for r in rows], title=y_title,
                     autorange="reversed", showgrid=False)
    fig.update_layout(
        title=dict(text=title, y=0.02, yanchor="bottom", x=0.5, font=dict(size=13)) if title else None,
        height=height or int(min(760, 110 + 40 * len(rows) + (30 if title else 0))),
        margin=dict(l=10, r=10, t=40, b=40 if title else 10),
    )
    return fig


def attention_heatmap(weights: np.ndarray, tokens: Sequence[str], *, title: str = "", decimals: int = 2,
                      weights_scale: bool = True, show_values: bool = True) -> go.Figure:
    """A T × T attention matrix: queries (attending tokens) down the side, keys (attended tokens) on top.

    With ``weights_scale`` the colours span 0…1 (attention weights); otherwise they follow the data (scores).
    """
    return matrix_heatmap(
        weights, tokens, title=title, x_title="key (attended to)", y_title="query (attending)",
        decimals=decimals, colorscale="Blues" if weights_scale else "Oranges",
        zmin=0.0 if weights_scale else None, zmax=1.0 if weights_scale else None, show_values=show_values,
    )


def vectors_heatmap(matrix: np.ndarray, tokens: Sequence[str], *, title: str = "", prefix: str = "d",
                    decimals: int = 2) -> go.Figure:
    """A (T, d) matrix of per-token vectors (queries, values, context …): tokens down, features across."""
    m = np.asarray(matrix)
    return matrix_heatmap(m, tokens, [f"{prefix}{j + 1}" for j in range(m.shape[1])], title=title,
                          x_title="feature", y_title="token", decimals=decimals, colorscale="Purples")


def heads_grid(
    weights: np.ndarray, tokens: Sequence[str], *, title: str = "", max_cols: int = 4, decimals: int = 2,
    show_values: bool | None = None,
) -> go.Figure:
    """Small multiples: one attention heatmap per head, all on the same 0…1 colour scale.

    Args:
        weights: (H, T, T) attention weights of one layer.
        tokens: the T token labels (shown on the axes when T ≤ 16).
        show_values: write the values in the cells (default: only when the cells are big enough, T ≤ 6).
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 3:
        raise ValueError(f"heads_grid needs (heads, T, T) weights, got shape {w.shape}.")
    h, t, _ = w.shape
    cols = min(max_cols, h)
    n_rows = math.ceil(h / cols)
    fig = make_subplots(rows=n_rows, cols=cols, subplot_titles=[f"head {i + 1}" for i in range(h)],
                        horizontal_spacing=0.04, vertical_spacing=0.08 if n_rows > 1 else 0.0)
    values = (t <= 6) if show_values is None else show_values
    labels = [_label(s, 8) for s in tokens]
    for i in range(h):
        text = [[_format(v, decimals) for v in row] for row in w[i]]
        fig.add_trace(
            go.Heatmap(z=np.where(np.isfinite(w[i]), w[i], np.nan), x=list(range(t)), y=list(range(t)),
                       text=text, texttemplate="%{text}" if values else None, coloraxis="coloraxis",
                       xgap=1, ygap=1,
                       hovertemplate=f"head {i + 1}<br>query %{{y}} → key %{{x}}: %{{text}}<extra></extra>"),
            row=i // cols + 1, col=i % cols + 1,
        )
    show_ticks = t <= 16
    fig.update_xaxes(tickvals=list(range(t)), ticktext=labels, showticklabels=False, showgrid=False,
                     tickfont=dict(size=9))
    fig.update_yaxes(tickvals=list(range(t)), ticktext=labels, showticklabels=False, showgrid=False,
                     autorange="reversed", tickfont=dict(size=9))
    if show_ticks:  # labels on the outer edge only: tokens down the left column, along the bottom row
        for i in range(h):
            r, c = i // cols + 1, i % cols + 1
            if c == 1:
                fig.update_yaxes(showticklabels=True, row=r, col=c)
            if i + cols >= h:  # nothing below this panel
                fig.update_xaxes(showticklabels=True, row=r, col=c)
    fig.update_layout(
        coloraxis=dict(colorscale="Blues", cmin=0.0, cmax=1.0, colorbar=dict(title="weight", thickness=12)),
        title=title or None, height=int(min(1400, 60 + n_rows * (250 if cols > 2 else 320))),
        margin=dict(l=10, r=10, t=60 if title else 30, b=10),
    )
    return fig


def probability_bars(
    labels: Sequence[str], before: Sequence[float], after: Sequence[float], kept: Sequence[bool],
    chosen: int | None = None, *, title: str = "",
) -> go.Figure:
    """Top candidates for one step: probability before (plain softmax) and after temperature/top-k/top-p.

    Filtered candidates (``kept`` False) get a hatched, faded "after" bar at 0 and a ✗ in their label; the
    chosen candidate's label is marked with ▶.
    """
    n = len(labels)
    if not (len(before) == len(after) == len(kept) == n):
        raise ValueError("labels, before, after and kept must have the same length.")
    ticks = []
    for i, lab in enumerate(labels):
        mark = "▶ " if chosen == i else ("✗ " if not kept[i] else "")
        ticks.append(f"{mark}{_label(lab)}")
    x = list(range(n))
    fig = go.Figure()
    fig.add_bar(x=x, y=list(before), name="before: softmax(logits)", marker_color="#94a3b8",
                text=[format_prob(p) for p in before], textposition="outside",
                hovertemplate="%{customdata}<br>before: %{y:.2%}<extra></extra>", customdata=list(labels))
    fig.add_bar(
        x=x, y=list(after), name="after: temperature, top-k, top-p",
        marker=dict(color=["#2563eb" if k else "#fca5a5" for k in kept],
                    pattern=dict(shape=["" if k else "x" for k in kept])),
        text=[format_prob(p) if k else "filtered" for p, k in zip(after, kept)], textposition="outside",
        hovertemplate="%{customdata}<br>after: %{y:.2%}<extra></extra>", customdata=list(labels),
    )
    top = max([*before, *after, 1e-9])
    fig.update_xaxes(tickvals=x, ticktext=ticks, title="candidate next token (▶ chosen, ✗ filtered out)")
    fmt = ".0%" if top >= 0.1 else ".1%" if top >= 0.01 else ".2%" if top >= 0.001 else ".1e"
    fig.update_yaxes(title="probability", tickformat=fmt, range=[0, min(1.0, top * 1.2) or 1.0])
    fig.update_layout(barmode="group", title=title or None, height=380, margin=dict(l=10, r=10, t=50, b=10),
                      legend=dict(orientation="h", y=1.12, x=0))
    return fig


def parameter_bars(rows: Sequence[dict]) -> go.Figure:
    """Horizontal bars of parameters per component (rows from ``core.stats.parameter_breakdown``)."""
    total = sum(r["params"] for r in rows) or 1
    names = [r["component"] for r in rows][::-1]
    values = [r["params"] for r in rows][::-1]
    fig = go.Figure(go.Bar(
        x=values, y=names, orientation="h", marker_color="#6366f1",
        text=[f"{_human(v)} ({v / total:.1%})" for v in values], textposition="auto",
        hovertemplate="%{y}: %{x:,} parameters<extra></extra>",
    ))
    fig.update_xaxes(title="parameters")
    fig.update_layout(height=60 + 36 * len(rows), margin=dict(l=10, r=10, t=10, b=10))
    return fig


def activation_figure(curves: dict[str, list[float]]) -> go.Figure:
    """GELU and ReLU on the same axes (from ``core.stats.activation_curves``)."""
    fig = go.Figure()
    fig.add_scatter(x=curves["x"], y=curves["gelu"], name="GELU (tanh approx.)", line=dict(color="#2563eb"))
    fig.add_scatter(x=curves["x"], y=curves["relu"], name="ReLU", line=dict(color="#f97316", dash="dash"))
    fig.update_xaxes(title="x", zeroline=True)
    fig.update_yaxes(title="activation(x)", zeroline=True)
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=10, b=10), legend=dict(x=0.02, y=0.98))
    return fig


def shortcut_figure(grads: dict[str, list[float]]) -> go.Figure:
    """Mean |gradient| per layer with and without shortcuts, log scale (from ``shortcut_gradient_demo``)."""
    fig = go.Figure()
    fig.add_bar(x=grads["layer"], y=grads["without"], name="without shortcuts", marker_color="#f97316",
                text=[f"{g:.2g}" for g in grads["without"]], textposition="outside")
    fig.add_bar(x=grads["layer"], y=grads["with"], name="with shortcuts", marker_color="#2563eb",
                text=[f"{g:.2g}" for g in grads["with"]], textposition="outside")
    fig.update_yaxes(type="log", title="mean |gradient| (log scale)", exponentformat="power")
    fig.update_layout(barmode="group", height=340, margin=dict(l=10, r=10, t=10, b=10),
                      legend=dict(orientation="h", y=1.1, x=0))
    return fig


def _human(n: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:,.0f}"


# --- coloured generation output ----------------------------------------------------------------------------


LEGEND_PROBS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)


def probability_color(p: float) -> str:
    """Background for a token chosen with probability ``p``: pale orange (unlikely) → blue (confident), on a log
    scale from 0.01 % to 100 %: a small model's choices (often 0.1–5 %) get different colours, not one."""
    p = min(1.0, max(LEGEND_PROBS[0], float(p) if p == p else LEGEND_PROBS[0]))
    t = (math.log10(p) - math.log10(LEGEND_PROBS[0])) / -math.log10(LEGEND_PROBS[0])
    lo, hi = (253, 186, 116), (147, 197, 253)  # orange-300 → blue-300: readable with black text
    r, g, b = (round(a + (c - a) * t) for a, c in zip(lo, hi))
    return f"rgb({r}, {g}, {b})"


def colored_tokens_html(prompt: str, pieces: Sequence[str], probs: Sequence[float]) -> str:
    """The prompt in plain text, then each generated piece on a background coloured by its probability.

    All text is HTML-escaped; whitespace and newlines are kept (``white-space: pre-wrap``).
    """
    if len(pieces) != len(probs):
        raise ValueError("pieces and probs must have the same length.")
    spans = [
        f'<span title="step {i + 1}: {html.escape(visible_token(piece))} p = {format_prob(p)}" '
        f'style="background:{probability_color(p)};border-radius:3px;padding:1px 0;margin:0 1px">'
        f"{html.escape(piece)}</span>"
        for i, (piece, p) in enumerate(zip(pieces, probs))
    ]
    return (
        '<div style="white-space:pre-wrap;font-family:ui-monospace,monospace;line-height:1.9;'
        'border:1px solid #e5e7eb;border-radius:6px;padding:10px">'
        f'<span style="color:#6b7280">{html.escape(prompt)}</span>{"".join(spans)}</div>'
    )


def probability_legend_html() -> str:
    """A one-line legend for :func:`colored_tokens_html`."""
    cells = "".join(
        f'<span style="background:{probability_color(p)};padding:1px 8px;border-radius:3px">{format_prob(p)}'
        "</span> " for p in LEGEND_PROBS
    )
    return (
        '<div style="font-size:0.85em;color:#4b5563">Grey: your prompt. Background of each generated token: '
        "the probability the model gave it (plain softmax, before any filtering), on a log scale: "
        f"{cells}</div>"
    )
