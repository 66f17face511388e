"""ui.figures_model: pure plotly/HTML builders for the Attention, Architecture and Generation pages."""

from __future__ import annotations

import math
import re

import numpy as np
import plotly.graph_objects as go
import pytest

from core.config import GPTConfig
from core.stats import activation_curves, parameter_breakdown, shortcut_gradient_demo
from ui import figures_model as fm


def test_module_does_not_need_streamlit():
    src = open(fm.__file__, encoding="utf-8").read()
    assert not re.search(r"^\s*(import|from) streamlit", src, flags=re.M)


def test_matrix_heatmap_values_and_labels():
    m = np.array([[0.5, 0.25], [1.0, -np.inf]])
    fig = fm.matrix_heatmap(m, ["the", "the"], ["k1", "k2"], x_title="key", y_title="query")
    assert len(fig.data) == 1 and isinstance(fig.data[0], go.Heatmap)
    trace = fig.data[0]
    assert [list(r) for r in trace.text] == [["0.50", "0.25"], ["1.00", fm.NEG_INF_TEXT]]
    assert trace.texttemplate == "%{text}"
    assert math.isnan(trace.z[1][1]) and trace.z[0][0] == 0.5  # -inf is left out of the colour scale
    # Duplicate labels keep their own rows: positions on the axis, labels on the ticks.
    assert list(fig.layout.yaxis.ticktext) == ["the", "the"] and list(fig.layout.yaxis.tickvals) == [0, 1]
    assert list(fig.layout.xaxis.ticktext) == ["k1", "k2"]
    assert fig.layout.yaxis.autorange == "reversed"  # row 0 on top, as the matrix is printed


def test_matrix_heatmap_checks_shapes():
    with pytest.raises(ValueError):
        fm.matrix_heatmap(np.zeros((2, 2)), ["a"])
    with pytest.raises(ValueError):
        fm.matrix_heatmap(np.zeros(3), ["a", "b", "c"])


def test_long_labels_are_shortened():
    fig = fm.matrix_heatmap(np.zeros((1, 1)), ["a" * 40])
    assert fig.layout.yaxis.ticktext[0].endswith("…") and len(fig.layout.yaxis.ticktext[0]) == fm.MAX_LABEL


def test_attention_heatmap_scales():
    w = np.full((3, 3), 1 / 3)
    fig = fm.attention_heatmap(w, ["a", "b", "c"])
    assert (fig.data[0].zmin, fig.data[0].zmax) == (0.0, 1.0)
    assert fig.layout.xaxis.title.text == "key (attended to)"
    scores = fm.attention_heatmap(w * 9, ["a", "b", "c"], weights_scale=False, show_values=False)
    assert scores.data[0].zmax is None and scores.data[0].texttemplate is None


def test_vectors_heatmap_feature_labels():
    fig = fm.vectors_heatmap(np.zeros((4, 3)), ["w", "x", "y", "z"])
    assert list(fig.layout.xaxis.ticktext) == ["d1", "d2", "d3"]


def test_heads_grid():
    w = np.random.default_rng(0).dirichlet(np.ones(5), size=(6, 5))  # (H=6, T=5, T=5), rows sum to 1
    fig = fm.heads_grid(w, list("abcde"), title="layer 1")
    assert len(fig.data) == 6 and all(t.coloraxis == "coloraxis" for t in fig.data)
    titles = [a.text for a in fig.layout.annotations]
    assert titles == [f"head {i}" for i in range(1, 7)]
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (0.0, 1.0)
    assert fig.data[0].texttemplate == "%{text}"  # 5 tokens: values fit in the cells
    # Token labels only on the outer edge: left column (y) and bottom panels (x); 6 heads in a 4 × 2 grid.
    assert fig.layout.yaxis.showticklabels is True and fig.layout.yaxis2.showticklabels is False
    assert fig.layout.yaxis5.showticklabels is True
    assert fig.layout.xaxis.showticklabels is False  # head 1 has head 5 below it
    assert fig.layout.xaxis3.showticklabels is True and fig.layout.xaxis5.showticklabels is True
    big = fm.heads_grid(np.ones((2, 20, 20)) / 20, [str(i) for i in range(20)])
    assert big.data[0].texttemplate is None and big.layout.xaxis.showticklabels is False
    with pytest.raises(ValueError):
        fm.heads_grid(np.zeros((3, 3)), list("abc"))


def test_probability_bars_marks_chosen_and_filtered():
    before, after, kept = [0.5, 0.3, 0.2], [0.625, 0.375, 0.0], [True, True, False]
    fig = fm.probability_bars(["a", "b", "c"], before, after, kept, chosen=1)
    assert len(fig.data) == 2 and all(isinstance(t, go.Bar) for t in fig.data)
    assert list(fig.data[0].y) == [0.5, 0.3, 0.2] and list(fig.data[1].y) == [0.625, 0.375, 0.0]
    assert list(fig.layout.xaxis.ticktext) == ["a", "▶ b", "✗ c"]
    assert fig.data[1].text[2] == "filtered" and fig.data[1].marker.pattern.shape[2] == "x"
    with pytest.raises(ValueError):
        fm.probability_bars(["a"], [0.5, 0.5], [1.0], [True])


def test_parameter_bars():
    rows = parameter_breakdown(GPTConfig.preset("gpt2-small"))
    fig = fm.parameter_bars(rows)
    assert sum(fig.data[0].x) == 163_009_536
    assert fig.data[0].y[-1] == "Token embedding"  # first row drawn at the top
    assert "38.6M" in fig.data[0].text[-1] and "%" in fig.data[0].text[-1]


def test_format_prob():
    assert [fm.format_prob(p) for p in (0.25, 0.0, 2e-5, 3e-9)] == ["25.0%", "0.0%", "0.002%", "3.0e-09"]


def test_activation_and_shortcut_figures():
    fig = fm.activation_figure(activation_curves())
    assert [t.name for t in fig.data] == ["GELU (tanh approx.)", "ReLU"]
    grads = shortcut_gradient_demo()
    sc = fm.shortcut_figure(grads)
    assert sc.layout.yaxis.type == "log" and len(sc.data) == 2
    assert list(sc.data[1].y) == grads["with"]


def test_colored_tokens_html_escapes_and_colours():
    out = fm.colored_tokens_html("<b>prompt</b>", ["<script>", " ok"], [0.0, 1.0])
    assert "<script>" not in out and "&lt;script&gt;" in out and "&lt;b&gt;prompt" in out
    assert out.count('<span title="step') == 2
    assert fm.probability_color(0.0) in out and fm.probability_color(1.0) in out
    assert fm.probability_color(-1) == fm.probability_color(0.0) == "rgb(253, 186, 116)"
    assert fm.probability_color(2) == fm.probability_color(1.0) == "rgb(147, 197, 253)"
    with pytest.raises(ValueError):
        fm.colored_tokens_html("", ["a"], [])
    assert "100.0%" in fm.probability_legend_html() and "0.01%" in fm.probability_legend_html()


def test_a_small_models_choices_get_different_colours():
    """A 6.5 M-parameter model picks tokens at 0.1–5 %: on a linear scale they were all one orange."""
    colours = {fm.probability_color(p) for p in (0.001, 0.005, 0.02, 0.05)}
    assert len(colours) == 4
    assert fm.probability_color(1e-9) == fm.probability_color(1e-4) == fm.probability_color(float("nan"))


def test_whitespace_tokens_have_visible_labels():
    assert [fm.visible_token(t) for t in (" ", "\n", "\n\n", "\t", " the", "a b")] == \
        ["␣", "↵", "↵↵", "→", " the", "a b"]
    out = fm.colored_tokens_html("", ["\n"], [0.5])
    assert 'title="step 1: ↵ p = 50.0%"' in out
