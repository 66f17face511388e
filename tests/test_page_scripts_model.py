""""Download as script" on the Embeddings, Attention and Architecture pages: the script prints the page's numbers
(its metrics, and the values of its tables and heatmap cells)."""

from __future__ import annotations

import json

import pytest

from core.config import PRESETS
from core.errors import LabError
from core.page_scripts import page_script
from core.page_scripts.model import BOOK_CONFIG_KEYS
from tests.script_check import assert_script_matches_page, open_page, run_script
from ui.widgets import SCRIPT_TEXT

EMBEDDING_FIGURES = ["Token embedding tok_emb (vocab × emb_dim)", "Position embedding pos_emb (context × emb_dim)",
                     "Embedding parameters"]
ARCHITECTURE_FIGURES = ["Parameters, untied", "Parameters, tied", "Forward FLOPs / token", "Training FLOPs / token"]
SECTIONS = {"simplified": "§3.3", "qkv": "§3.4", "causal": "§3.5", "multihead": "§3.6"}
TINY = {"kind": "preset", "name": "tiny", "seed": 123}


def frame_with(at, column: str):
    """The page's first dataframe that has ``column``."""
    frames = [d.value for d in at.dataframe if column in d.value.columns]
    assert frames, f"the page shows no table with a {column!r} column"
    return frames[0]


# --- Embeddings ---------------------------------------------------------------------------------------------


def assert_embedding_tables(at, printed: dict[str, str]) -> None:
    """The three preview tables (first rows and columns) and the neighbours table, cell by cell."""
    previews = [d.value for d in at.dataframe if list(d.value.columns[:1]) == ["d0"]]
    assert len(previews) >= 3
    names = ("Token embeddings [0]", "Position embeddings", "Input embeddings [0]")
    for name, frame in zip(names, previews):
        for i, row in enumerate(frame.itertuples(index=False)):
            assert printed[f"{name} row {i}"] == ", ".join(f"{v:.3f}" for v in row), (name, i)
    table = frame_with(at, "cosine similarity")
    assert len(table) == 10
    for r in table.itertuples(index=False):
        assert printed[f"Neighbour {r.rank}"] == f"{r.token} (id {r.id}), cosine similarity {r[3]:.4f}"


def test_embeddings_default(tmp_path):
    at = open_page("views/embeddings.py")
    printed = assert_script_matches_page(at, "embeddings", tmp_path, EMBEDDING_FIGURES)
    assert printed["Embedding parameters"] == "3,220,544"  # (50,257 + 64) × 64: the tiny preset
    assert_embedding_tables(at, printed)


def test_embeddings_other_model_sentence_and_scope(tmp_path):
    at = open_page("views/embeddings.py")
    at.session_state["active_model"] = {"kind": "preset", "name": "mini", "seed": 7}
    at.run()
    at.text_input(key="emb_text").set_value("The cat sat on the mat.").run()
    at.selectbox(key="emb_query").set_value(3797).run()  # " cat"
    at.radio(key="emb_scope").set_value("tokens of the built-in stories").run()
    printed = assert_script_matches_page(at, "embeddings", tmp_path, EMBEDDING_FIGURES)
    assert printed["Token embedding tok_emb (vocab × emb_dim)"] == "50,257 × 128"
    assert printed["Neighbours of"] == "·cat (id 3797)"
    assert_embedding_tables(at, printed)


# --- Attention ----------------------------------------------------------------------------------------------


def chart_rows(at) -> dict[str, str]:
    """Every heatmap cell the Attention page writes, as the script's ``label row i`` → ``"0.12, 0.34"``."""
    rows = {}
    for chart in at.get("plotly_chart"):
        key = chart.proto.id.rsplit("-", 1)[-1]
        spec = json.loads(chart.proto.spec)
        if key.startswith("att_fig_"):
            stage, step = key.removeprefix("att_fig_").split("_", 1)
            labels = ([f"§3.6 head {h + 1} weights" for h in range(len(spec["data"]))] if len(spec["data"]) > 1
                      else [f"{SECTIONS[stage]} {step}"])  # fmt: skip
        elif key == "att_model_grid":
            layer = int(spec["layout"]["title"]["text"].split()[-1])  # "All 4 heads of layer 2"
            labels = [f"Layer {layer}, head {h + 1}" for h in range(len(spec["data"]))]
        else:
            continue
        for label, trace in zip(labels, spec["data"]):
            rows.update({f"{label} row {i}": ", ".join(r) for i, r in enumerate(trace["text"], start=1)})
    return rows


def assert_attention_matches(at, folder) -> dict[str, str]:
    assert not at.exception and not at.error, [e.value for e in (*at.exception, *at.error)]
    printed = run_script(at.session_state[SCRIPT_TEXT + "attention"], folder)
    shown = chart_rows(at)
    assert len(shown) > 100
    for label, value in shown.items():
        assert printed.get(label) == value, (label, printed.get(label), value)
    title = json.loads(at.get("plotly_chart")[-2].proto.spec)["layout"]["title"]["text"]  # "Layer 1, head 1"
    assert printed["Heatmap"] == title.replace("L", "l", 1)
    assert printed["SelfAttention_v1 gives the same context"] == "yes"
    assert printed["The book's MultiHeadAttention gives the same output"] == "yes"
    return printed


def test_attention_default(tmp_path):
    at = open_page("views/attention.py")
    printed = assert_attention_matches(at, tmp_path)
    assert printed["§3.4 context row 2"] == "0.31, 0.82"  # the book's §3.4.1 context vector of "journey"
    assert printed["Words"] == "Your journey starts with one step"


def test_attention_own_sentence_dropout_heads_layer(tmp_path):
    at = open_page("views/attention.py")
    at.radio(key="att_source").set_value("Your own sentence").run()
    at.text_input(key="att_text").set_value("the cat saw the dog, then it ran").run()
    at.slider(key="att_d_in").set_value(5).run()
    at.slider(key="att_d_out").set_value(3).run()
    at.slider(key="att_dropout").set_value(0.5).run()
    at.number_input(key="att_seed").set_value(7).run()
    at.button_group(key="att_heads").set_value(3).run()
    at.button_group(key="att_layer").set_value(2).run()
    at.button_group(key="att_head").set_value(4).run()
    at.text_input(key="att_model_text").set_value("Hello there, general Kenobi").run()
    printed = assert_attention_matches(at, tmp_path)
    assert printed["Heatmap"] == "layer 2, head 4"
    assert "§3.6 head 3 weights row 9" in printed and printed["§3.5 dropped row 1"][:4] in ("0.00", "2.00")


# --- Architecture -------------------------------------------------------------------------------------------


def assert_architecture_tables(at, printed: dict[str, str]) -> None:
    for r in frame_with(at, "component").itertuples(index=False):
        assert printed[r.component] == f"{r.params:,}", r.component
    for r in frame_with(at, "weights in").itertuples(index=False):
        assert printed[f"Weights only (inference), {r[0]}"] == r[1]
        assert printed[f"Training with AdamW, {r[0]}"] == r[2]
    trace = frame_with(at, "output shape")
    assert printed["Output shape"] == trace[trace["module"] == "out_head"]["output shape"].item()


def test_architecture_default(tmp_path):
    at = open_page("views/architecture.py")
    printed = assert_script_matches_page(at, "architecture", tmp_path, ARCHITECTURE_FIGURES)
    assert printed["Parameters, untied"] == "163,009,536"  # the book's §4.6 count
    assert_architecture_tables(at, printed)
    assert "Show the code: the chapter-4 model classes" in [e.label for e in at.expander]


def test_architecture_custom_tied(tmp_path):
    at = open_page("views/architecture.py")
    at.selectbox(key="arch_preset").set_value("custom").run()
    for key, value in (("arch_vocab", 1000), ("arch_ctx", 32), ("arch_emb", 48), ("arch_heads", 3),
                       ("arch_layers", 3)):
        at.number_input(key=key).set_value(value).run()
    at.checkbox(key="arch_qkv_bias").check().run()
    at.toggle(key="arch_tie").set_value(True).run()
    at.slider(key="arch_batch").set_value(3).run()
    at.slider(key="arch_tokens").set_value(7).run()
    printed = assert_script_matches_page(at, "architecture", tmp_path, ARCHITECTURE_FIGURES)
    assert printed["Output head (tied to token embedding)"] == "0"
    assert printed["Output shape"] == "(3, 7, 1000)"
    assert_architecture_tables(at, printed)


# --- bad settings -------------------------------------------------------------------------------------------


def test_bad_settings_raise_one_sentence():
    gpt2 = {k: PRESETS["gpt2-small"]["config"][k] for k in BOOK_CONFIG_KEYS}
    with pytest.raises(LabError, match="needs the setting 'query'"):
        page_script("embeddings", {"spec": TINY, "sentence": "a", "scope": "corpus"})
    blank = page_script("embeddings", {"spec": TINY, "sentence": "  ", "query": 262, "scope": "vocabulary"})
    assert "text_to_token_ids" not in blank and "nearest_neighbours(model.tok_emb, QUERY" in blank
    with pytest.raises(LabError, match="model spec must be a dict"):
        page_script("embeddings", {"spec": {"kind": "nope"}, "sentence": "a", "query": 1, "scope": "corpus"})
    with pytest.raises(LabError, match="scope"):
        page_script("embeddings", {"spec": TINY, "sentence": "a", "query": 1, "scope": "web"})
    with pytest.raises(LabError, match="n_heads"):
        page_script("attention", {"source": "book", "text": "", "d_in": 3, "d_out": 2, "n_heads": 0,
                                  "dropout": 0.0, "seed": 1, "spec": TINY, "model_text": "a", "layer": 0, "head": 0})
    with pytest.raises(LabError, match="dropout"):
        page_script("attention", {"source": "book", "text": "", "d_in": 3, "d_out": 2, "n_heads": 2,
                                  "dropout": 1.0, "seed": 1, "spec": TINY, "model_text": "a", "layer": 0, "head": 0})
    with pytest.raises(LabError, match="divisible|n_heads"):
        page_script("architecture", {"config": {**gpt2, "n_heads": 5}, "tie": False, "batch": 1, "tokens": 4})
    with pytest.raises(LabError, match="tokens"):
        page_script("architecture", {"config": gpt2, "tie": False, "batch": 1, "tokens": 2048})
    with pytest.raises(LabError, match="exactly the keys"):
        page_script("architecture", {"config": {**gpt2, "ff_mult": 8}, "tie": False, "batch": 1, "tokens": 4})
