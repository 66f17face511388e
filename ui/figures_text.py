"""HTML, table and plotly builders for the Tokenizer, Sampling windows and Embeddings pages.

Pure functions: plain values in (token spans, id lists, numpy arrays), an HTML string, a ``pandas.DataFrame`` or
a ``plotly.graph_objects.Figure`` out. They never import streamlit, so they are tested directly.

Every piece of user text that reaches HTML goes through :func:`html.escape` (attributes too): a pasted
``<script>`` is shown, never run.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

# Light colours with dark text: readable on Streamlit's light and dark themes alike.
PALETTE = ("#fde68a", "#bbf7d0", "#bfdbfe", "#fbcfe8", "#ddd6fe", "#fed7aa", "#a5f3fc", "#d9f99d")
SPECIAL_STYLE = "background:#7c3aed;color:#fff;font-weight:600;"
PARTIAL_STYLE = "outline:1px dashed #b91c1c;"
INPUT_COLOUR = "#93c5fd"  # input window x
TARGET_COLOUR = "#f97316"  # target window y (the input shifted one token right)
_BOX = "display:inline-block;margin:1px 1px;padding:0 3px;border-radius:4px;color:#111;"
_WRAP = "font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:0.92rem;line-height:1.9;"


def hex_bytes(data: bytes) -> str:
    """Bytes as spaced hex, e.g. ``b"Hi"`` → ``"48 69"``."""
    return data.hex(" ")


def _esc(text: str) -> str:
    return html.escape(str(text), quote=True)


def _span_title(span) -> str:
    kind = " · special token" if span.is_special else (" · part of a character" if span.is_partial else "")
    return f"id {span.id} · bytes {hex_bytes(span.bytes) or '(none)'}{kind}"


def token_spans_html(spans: Sequence, *, break_lines: bool = True) -> str:
    """Coloured token boxes: one per :class:`core.tokenizers.TokenSpan`, with its id and bytes on hover.

    Whitespace is already visible in ``span.display`` (``·`` space, ``↵`` newline); with ``break_lines`` a
    token that contains a newline also ends the visual line, so paragraphs keep their shape. Special tokens are
    drawn white on purple, tokens holding only part of a character (shown as hex) get a dashed red outline.
    """
    parts = []
    for i, span in enumerate(spans):
        style = _BOX + (SPECIAL_STYLE if span.is_special else f"background:{PALETTE[i % len(PALETTE)]};")
        if span.is_partial:
            style += PARTIAL_STYLE
        parts.append(f'<span style="{style}" title="{_esc(_span_title(span))}">{_esc(span.display)}</span>')
        if break_lines and b"\n" in span.bytes:
            parts.append("<br>")
    if not parts:
        return f'<div style="{_WRAP}"><em>(no tokens)</em></div>'
    return f'<div style="{_WRAP}">{"".join(parts)}</div>'


def ids_frame(spans: Sequence) -> pd.DataFrame:
    """One row per token: position, id, its display text and its bytes in hex."""
    return pd.DataFrame(
        {
            "position": list(range(len(spans))),
            "id": [s.id for s in spans],
            "token": [s.display for s in spans],
            "bytes (hex)": [hex_bytes(s.bytes) for s in spans],
        }
    )


def merges_frame(rows: Sequence[dict]) -> pd.DataFrame:
    """The merges of a trained BPE tokenizer in the order learned (``BPETokenizer.merges_table()`` rows)."""
    columns = ["rank", "left", "right", "merged", "count", "id"]
    return pd.DataFrame(list(rows), columns=columns)


# ------------------------------------------------------------------------------------------------ sampling
def window_stream_html(
    labels: Sequence[str],
    first_position: int,
    input_range: tuple[int, int],
    target_range: tuple[int, int],
) -> str:
    """A stretch of the token stream with the input window and its shifted target marked.

    Args:
        labels: display text of consecutive tokens, the first at position ``first_position``.
        input_range: ``(start, end)`` positions of the input window x (end exclusive).
        target_range: the same for the target y, normally ``(start + 1, end + 1)``.

    Input tokens get a blue background, target tokens a thick orange underline; a token in both has both.
    """
    parts = []
    for k, label in enumerate(labels):
        pos = first_position + k
        in_x = input_range[0] <= pos < input_range[1]
        in_y = target_range[0] <= pos < target_range[1]
        style = _BOX + "background:" + (INPUT_COLOUR if in_x else "#e5e7eb") + ";"
        if in_y:
            style += f"border-bottom:4px solid {TARGET_COLOUR};"
        else:
            style += "border-bottom:4px solid transparent;"
        if not (in_x or in_y):
            style += "opacity:0.55;"
        role = " · input" if in_x else ""
        role += " · target" if in_y else ""
        parts.append(f'<span style="{style}" title="position {pos}{role}">{_esc(label)}</span>')
    return f'<div style="{_WRAP}">{"".join(parts)}</div>'


def stream_legend_html() -> str:
    """The legend for :func:`window_stream_html`."""
    x = f'<span style="{_BOX}background:{INPUT_COLOUR};">input x</span>'
    y = f'<span style="{_BOX}background:#e5e7eb;border-bottom:4px solid {TARGET_COLOUR};">target y</span>'
    both = (f'<span style="{_BOX}background:{INPUT_COLOUR};border-bottom:4px solid {TARGET_COLOUR};">'
            "in both</span>")
    rest = f'<span style="{_BOX}background:#e5e7eb;opacity:0.55;">outside this window</span>'
    return f'<div style="font-size:0.85rem;">{x} {y} {both} {rest}</div>'


def context_pairs_frame(
    input_ids: Sequence[int], target_ids: Sequence[int], label: Callable[[int], str], n: int = 4
) -> pd.DataFrame:
    """The book's §2.6 printout: for the first ``n`` positions, the context so far → the next token.

    Row i (1-based) pairs ``input_ids[:i]`` with ``target_ids[i - 1]``, the token the model must predict there.
    """
    rows = []
    for i in range(1, min(n, len(input_ids)) + 1):
        rows.append(
            {
                "context ids": str(list(input_ids[:i])),
                "→ next id": int(target_ids[i - 1]),
                "context text": "".join(label(t) for t in input_ids[:i]),
                "→ next token": label(target_ids[i - 1]),
            }
        )
    return pd.DataFrame(rows, columns=["context ids", "→ next id", "context text", "→ next token"])


def batch_frame(rows: Sequence[Sequence[int]], texts: Sequence[str]) -> pd.DataFrame:
    """A batch (B, L) of ids as a table: one row per window, one column per position, plus the decoded text."""
    rows = [list(map(int, r)) for r in rows]
    width = max((len(r) for r in rows), default=0)
    frame = pd.DataFrame(rows, columns=[str(j) for j in range(width)])
    frame.insert(0, "text", list(texts))
    return frame


# ------------------------------------------------------------------------------------------------ embeddings
def preview_frame(matrix: np.ndarray, row_labels: Sequence[str], rows: int = 4, cols: int = 6) -> pd.DataFrame:
    """The top-left corner of a (T, C) matrix, rows labelled by token, columns by feature index."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"preview_frame needs a 2-D matrix, got shape {m.shape}.")
    r, c = min(rows, m.shape[0]), min(cols, m.shape[1])
    labels = [f"{i}: {lab}" for i, lab in enumerate(list(row_labels)[:r])]
    return pd.DataFrame(m[:r, :c].round(3), index=labels, columns=[f"d{j}" for j in range(c)])


def pca_scatter(
    coords: np.ndarray,
    labels: Sequence[str],
    explained: Sequence[float],
    *,
    title: str = "",
    hover: Sequence[str] | None = None,
    text_labels: bool = True,
) -> go.Figure:
    """A 2-D or 3-D scatter of projected vectors, each point labelled by its token (hover shows more).

    Args:
        coords: (N, 2) or (N, 3) coordinates (from :func:`core.embeddings.pca`).
        labels: N token labels, written next to the points when ``text_labels``.
        explained: share of variance per component, shown on the axis titles.
        hover: N extra hover lines (id, count …); default the labels.
    """
    xy = np.asarray(coords, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] not in (2, 3):
        raise ValueError(f"pca_scatter needs (N, 2) or (N, 3) coordinates, got shape {xy.shape}.")
    if len(labels) != xy.shape[0]:
        raise ValueError(f"{len(labels)} labels for {xy.shape[0]} points.")
    axis = [f"PC{i + 1} ({float(v):.0%} of variance)" for i, v in enumerate(explained)]
    hover_text = list(hover) if hover is not None else list(labels)
    common = dict(
        text=list(labels) if text_labels else None,
        mode="markers+text" if text_labels else "markers",
        hovertext=hover_text,
        hovertemplate="%{hovertext}<extra></extra>",
    )
    if xy.shape[1] == 2:
        # cliponaxis=False: a label next to a point on the edge is drawn whole instead of cut off.
        trace = go.Scatter(x=xy[:, 0], y=xy[:, 1], textposition="top center", cliponaxis=False,
                           marker=dict(size=8, color="#2563eb", opacity=0.8), **common)
        fig = go.Figure(trace)
        fig.update_xaxes(title=axis[0], zeroline=False)
        fig.update_yaxes(title=axis[1], zeroline=False)
    else:
        trace = go.Scatter3d(x=xy[:, 0], y=xy[:, 1], z=xy[:, 2], marker=dict(size=4, color="#2563eb"), **common)
        fig = go.Figure(trace)
        fig.update_layout(scene=dict(xaxis_title=axis[0], yaxis_title=axis[1], zaxis_title=axis[2]))
    fig.update_layout(title=title or None, height=520, margin=dict(l=30, r=30, t=50 if title else 30, b=10))
    return fig


def similarity_heatmap(matrix: np.ndarray, *, title: str = "", axis_title: str = "position") -> go.Figure:
    """An (n, n) cosine-similarity matrix on a fixed −1 … 1 diverging scale (so two models compare fairly)."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"similarity_heatmap needs a square matrix, got shape {m.shape}.")
    fig = go.Figure(
        go.Heatmap(z=m, zmin=-1.0, zmax=1.0, colorscale="RdBu", reversescale=True,
                   colorbar=dict(title="cosine", thickness=12),
                   hovertemplate=f"{axis_title} %{{y}} vs %{{x}}: %{{z:.3f}}<extra></extra>")
    )
    # Square cells, and axes that end where the matrix ends (constrain="domain" shrinks the plot, not the range).
    n = m.shape[0]
    fig.update_xaxes(title=axis_title, side="top", range=[-0.5, n - 0.5], constrain="domain", showgrid=False)
    fig.update_yaxes(title=axis_title, range=[n - 0.5, -0.5], scaleanchor="x", constrain="domain", showgrid=False)
    fig.update_layout(title=title or None, height=460, margin=dict(l=10, r=10, t=60, b=10))
    return fig


def neighbours_frame(pairs: Sequence[tuple[int, float]], label: Callable[[int], str]) -> pd.DataFrame:
    """Nearest neighbours ``[(id, similarity), …]`` as a ranked table with each token's text."""
    return pd.DataFrame(
        [{"rank": r, "id": i, "token": label(i), "cosine similarity": round(s, 4)}
         for r, (i, s) in enumerate(pairs, start=1)],
        columns=["rank", "id", "token", "cosine similarity"],
    )
