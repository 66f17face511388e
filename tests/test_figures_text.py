"""ui.figures_text: token HTML is escaped and faithful, tables have the right shape, figures the right traces."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from core.tokenizers import get_tokenizer
from ui.figures_text import (
    batch_frame,
    context_pairs_frame,
    ids_frame,
    merges_frame,
    neighbours_frame,
    pca_scatter,
    preview_frame,
    similarity_heatmap,
    stream_legend_html,
    token_spans_html,
    window_stream_html,
)


@pytest.fixture(scope="module")
def gpt2():
    return get_tokenizer("gpt2")


def test_token_html_escapes_user_text(gpt2):
    text = '<script>alert("x")</script> & <b onclick="evil()">'
    page = token_spans_html(gpt2.spans(text))
    assert "<script>" not in page and "<b " not in page and 'onclick="' not in page
    assert "&lt;" in page and "&gt;" in page and "&amp;" in page and "&quot;" in page
    assert page.count("<span") == len(gpt2.encode(text))


def test_token_html_titles_special_partial_and_newlines(gpt2):
    text = "Hi\nthere 👋 <|endoftext|>"
    spans = gpt2.spans(text, allowed_special={"<|endoftext|>"})
    page = token_spans_html(spans)
    assert f'title="id {spans[0].id} · bytes 48 69"' in page  # "Hi"
    assert "↵" in page and "<br>" in page  # newline visible and kept as a line break
    assert "special token" in page and "background:#7c3aed" in page
    assert any(s.is_partial for s in spans)  # the emoji is split across byte tokens
    assert "part of a character" in page and "&lt;0xF0&gt;" in page  # its bytes as hex, escaped
    assert "(no tokens)" in token_spans_html([])


def test_ids_and_merges_frames(gpt2):
    frame = ids_frame(gpt2.spans("Hello, world"))
    assert list(frame.columns) == ["position", "id", "token", "bytes (hex)"]
    assert frame["id"].tolist() == [15496, 11, 995]
    assert frame["bytes (hex)"].tolist()[2] == "20 77 6f 72 6c 64"
    bpe = get_tokenizer("bpe", "low lower lowest " * 20, vocab_size=260)
    merges = merges_frame(bpe.merges_table())
    assert list(merges.columns) == ["rank", "left", "right", "merged", "count", "id"]
    assert merges["rank"].tolist() == [1, 2, 3] and merges["merged"].tolist() == ["lo", "low", "·low"]


def test_window_stream_marks_input_and_target():
    labels = ["<a>", "b", "c", "d", "e", "f"]
    page = window_stream_html(labels, 10, (11, 14), (12, 15))
    assert "&lt;a&gt;" in page and "<a>" not in page
    assert 'title="position 10"' in page  # outside the window
    assert 'title="position 11 · input"' in page
    assert 'title="position 12 · input · target"' in page
    assert 'title="position 14 · target"' in page
    assert "input x" in stream_legend_html() and "target y" in stream_legend_html()


def test_context_pairs_and_batch_frames():
    names = {1: "A", 2: "B", 3: "C", 4: "D", 5: "E"}
    pairs = context_pairs_frame([1, 2, 3, 4], [2, 3, 4, 5], names.get, n=4)
    assert pairs["→ next id"].tolist() == [2, 3, 4, 5]
    assert pairs["context text"].tolist() == ["A", "AB", "ABC", "ABCD"]
    assert pairs["context ids"].tolist()[1] == "[1, 2]"
    assert len(context_pairs_frame([1, 2], [2, 3], names.get, n=4)) == 2
    batch = batch_frame([[1, 2, 3], [4, 5, 6]], ["x", "y"])
    assert list(batch.columns) == ["text", "0", "1", "2"] and batch.shape == (2, 4)


def test_preview_and_neighbours_frames():
    m = np.arange(40, dtype=float).reshape(5, 8)
    frame = preview_frame(m, ["a", "b", "c", "d", "e"], rows=4, cols=6)
    assert frame.shape == (4, 6) and frame.index[1] == "1: b" and frame.iloc[1, 0] == 8.0 and frame.shape[1] == 6
    with pytest.raises(ValueError):
        preview_frame(np.zeros(3), ["a"])
    nb = neighbours_frame([(7, 0.91234), (3, 0.5)], lambda i: f"t{i}")
    assert nb["rank"].tolist() == [1, 2] and nb["token"].tolist() == ["t7", "t3"]
    assert nb["cosine similarity"].tolist() == [0.9123, 0.5]


def test_pca_scatter_2d_and_3d():
    fig = pca_scatter(np.zeros((4, 2)), list("abcd"), [0.5, 0.2], hover=["1", "2", "3", "4"])
    assert isinstance(fig, go.Figure) and len(fig.data) == 1 and fig.data[0].type == "scatter"
    assert list(fig.data[0].text) == list("abcd") and "50%" in fig.layout.xaxis.title.text
    fig3 = pca_scatter(np.zeros((4, 3)), list("abcd"), [0.5, 0.2, 0.1])
    assert fig3.data[0].type == "scatter3d" and "10%" in fig3.layout.scene.zaxis.title.text
    with pytest.raises(ValueError):
        pca_scatter(np.zeros((4, 4)), list("abcd"), [0.1] * 4)
    with pytest.raises(ValueError):
        pca_scatter(np.zeros((4, 2)), list("abc"), [0.1, 0.1])


def test_similarity_heatmap():
    fig = similarity_heatmap(np.eye(5))
    assert fig.data[0].type == "heatmap" and fig.data[0].zmin == -1 and fig.data[0].zmax == 1
    with pytest.raises(ValueError):
        similarity_heatmap(np.zeros((2, 3)))
