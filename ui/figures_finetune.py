"""Plotly figure (and small HTML) builders for the LoRA, Classification and Instruction pages.

Pure functions: lists, dicts and numpy arrays in, ``plotly.graph_objects.Figure`` (or an HTML string) out. They
never import streamlit, so they are tested directly.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

TRAIN_COLOR, VAL_COLOR = "#1f77b4", "#ff7f0e"
COUNTS_BG, IGNORED_BG = "#c8f0c8", "#e6e6e6"


def _xy(records: Sequence[Mapping[str, Any]], x: str, y: str) -> tuple[list, list]:
    pts = [(r[x], r[y]) for r in records if r.get(y) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def classify_curves(records: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Train/val loss (left) and accuracy (right) against examples seen, as the book's figure 6.16/6.17.

    Losses and accuracies come every ``eval_every`` steps and at the end of each epoch.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Accuracy"), horizontal_spacing=0.1)
    for col, (metric, label) in enumerate((("loss", "loss"), ("acc", "accuracy")), start=1):
        for split, color, dash in (("train", TRAIN_COLOR, None), ("val", VAL_COLOR, "dash")):
            x, y = _xy(records, "examples_seen", f"{split}_{metric}")
            fig.add_trace(go.Scatter(x=x, y=y, name=f"{split} {label}", mode="lines+markers",
                                     line=dict(color=color, dash=dash), legendgroup=split), row=1, col=col)
    fig.update_xaxes(title_text="examples seen")
    fig.update_yaxes(title_text="cross-entropy", row=1, col=1)
    fig.update_yaxes(title_text="accuracy", tickformat=".0%", range=[0, 1.02], row=1, col=2)
    fig.update_layout(height=330, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


def instruct_curves(records: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Train/val loss against tokens seen (the book's figure 7.17)."""
    fig = go.Figure()
    for split, color, dash in (("train", TRAIN_COLOR, None), ("val", VAL_COLOR, "dash")):
        x, y = _xy(records, "tokens_seen", f"{split}_loss")
        fig.add_trace(go.Scatter(x=x, y=y, name=f"{split} loss", mode="lines+markers",
                                 line=dict(color=color, dash=dash)))
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="tokens seen",
                      yaxis_title="loss (counted targets)", legend=dict(orientation="h", y=1.12))
    return fig


def confusion_figure(confusion: Sequence[Sequence[int]], labels: Sequence[str]) -> go.Figure:
    """K × K confusion matrix: rows = true class, columns = predicted class, counts written in the cells."""
    z = np.asarray(confusion, dtype=float)
    k = len(labels)
    if z.shape != (k, k):
        raise ValueError(f"A confusion matrix for {k} labels must be {k}×{k}, got shape {z.shape}.")
    fig = go.Figure(go.Heatmap(
        z=z, x=list(range(k)), y=list(range(k)), text=[[f"{int(v)}" for v in row] for row in z],
        texttemplate="%{text}", textfont=dict(size=16), colorscale="Blues", showscale=False, xgap=2, ygap=2,
        hovertemplate="true %{y}, predicted %{x}: %{text}<extra></extra>",
    ))
    fig.update_xaxes(tickvals=list(range(k)), ticktext=list(labels), title="predicted", side="top")
    fig.update_yaxes(tickvals=list(range(k)), ticktext=list(labels), title="true", autorange="reversed")
    fig.update_layout(height=120 + 60 * k, margin=dict(l=10, r=10, t=50, b=10))
    return fig


def lora_matrix_heatmap(matrix: np.ndarray, title: str, *, zmax: float | None = None,
                        height: int = 260) -> go.Figure:
    """A LoRA matrix (A, B or ΔW) on a diverging colour scale centred on 0, so an all-zero B is plain white."""
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2:
        raise ValueError(f"lora_matrix_heatmap needs a 2-D matrix, got shape {m.shape}.")
    bound = zmax if zmax is not None else float(np.abs(m).max()) or 1.0
    fig = go.Figure(go.Heatmap(z=m, colorscale="RdBu", zmid=0, zmin=-bound, zmax=bound, showscale=True,
                               hovertemplate="row %{y}, column %{x}: %{z:.4g}<extra></extra>",
                               colorbar=dict(thickness=10)))
    if not m.any():
        fig.add_annotation(x=0.5, y=0.5, xref="paper", yref="paper", text="all zeros", showarrow=False,
                           font=dict(size=14, color="#666"))
    fig.update_yaxes(autorange="reversed", title="row")
    fig.update_xaxes(title="column")
    fig.update_layout(title=dict(text=title, font=dict(size=13)), height=height,
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig


def lora_shapes_figure(out_features: int, in_features: int, rank: int) -> go.Figure:
    """W (out × in) next to B (out × r) · A (r × in), drawn as boxes with sides proportional to their sizes.

    Sides are scaled by the larger of in/out (ranks under 3 % of it are drawn a little wider so they stay
    visible); each box is labelled with its shape and number count.
    """
    unit = 4.0 / max(out_features, in_features)
    w, h, r = in_features * unit, out_features * unit, max(rank * unit, 0.12)
    gap = 0.6
    boxes = [  # (x0, y-height, width, label, colour)
        (0.0, h, w, f"W<br>{out_features}×{in_features}<br>{out_features * in_features:,}", "#b0c4de"),
        (w + gap * 2, h, r, f"B<br>{out_features}×{rank}", "#f4a582"),
        (w + gap * 2 + r + gap, r, w, f"A<br>{rank}×{in_features}", "#92c5de"),
    ]
    fig = go.Figure()
    for x0, height, width, label, color in boxes:
        fig.add_shape(type="rect", x0=x0, x1=x0 + width, y0=0, y1=height, fillcolor=color, line=dict(width=1))
        fig.add_annotation(x=x0 + width / 2, y=height + 0.05, text=label, showarrow=False, yanchor="bottom",
                           font=dict(size=12))
    fig.add_annotation(x=w + gap, y=h / 2, text="<b>+</b>", showarrow=False, font=dict(size=20))
    fig.add_annotation(x=w + gap * 2 + r + gap / 2, y=max(r, 0.2) / 2, text="·", showarrow=False,
                       font=dict(size=24))
    lora = rank * (in_features + out_features)
    fig.add_annotation(x=w + gap * 2 + (r + gap + w) / 2, y=-0.35, showarrow=False,
                       text=f"B·A trains {lora:,} numbers ({lora / (in_features * out_features):.1%} of W)")
    fig.update_xaxes(visible=False, range=[-0.2, 2 * w + 3 * gap + r + 0.2])
    fig.update_yaxes(visible=False, range=[-0.6, h + 1.0], scaleanchor="x")
    fig.update_layout(height=280, margin=dict(l=5, r=5, t=5, b=5), showlegend=False, plot_bgcolor="white")
    return fig


def _token_text(text: str | None) -> str:
    if text is None:
        return "∅"
    if text == "<|endoftext|>":
        return "⟨eot⟩"
    return html.escape(text).replace("\n", "↵").replace(" ", "&nbsp;") or "∅"


def loss_mask_html(rows: Sequence[Sequence[Mapping[str, Any]]], max_tokens: int = 200) -> str:
    """An X-ray of collated instruction batches: each input token, coloured by whether its target counts.

    Args:
        rows: :func:`core.instruct.loss_mask_view` output (with tokenizer text: ``token`` and ``target``).

    Green tokens are positions whose next-token target counts in the loss; grey ones have target -100
    (padding after the first end-of-text and, with prompt masking, the prompt). Hovering shows the target.
    """
    parts = []
    for i, row in enumerate(rows):
        n_counts = sum(c["counts"] for c in row)
        spans = []
        for cell in row[:max_tokens]:
            bg = COUNTS_BG if cell["counts"] else IGNORED_BG
            style = f"background:{bg};padding:1px 2px;margin:1px;border-radius:3px;display:inline-block"
            if not cell["counts"]:
                style += ";color:#888"
            target = "ignored (-100)" if not cell["counts"] else f"predicts {cell.get('target')!r}"
            spans.append(f'<span title="{html.escape(target, quote=True)}" style="{style}">'
                         f"{_token_text(cell.get('token'))}</span>")
        more = f" … (+{len(row) - max_tokens} more)" if len(row) > max_tokens else ""
        parts.append(f'<div style="margin-bottom:8px;line-height:1.9;font-family:monospace;font-size:13px">'
                     f"<b>row {i}</b> · {n_counts} of {len(row)} targets count in the loss<br>"
                     f"{''.join(spans)}{more}</div>")
    legend = (f'<span style="background:{COUNTS_BG};padding:1px 4px">counts in the loss</span> '
              f'<span style="background:{IGNORED_BG};color:#888;padding:1px 4px">target is -100 (ignored)</span>'
              " · ↵ newline · ⟨eot⟩ &lt;|endoftext|&gt;")
    return f'<div style="font-size:13px;margin-bottom:6px">{legend}</div>' + "".join(parts)
