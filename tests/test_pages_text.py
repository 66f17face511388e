"""AppTest of the Tokenizer, Sampling windows and Embeddings pages: defaults, key numbers, bad input."""

from __future__ import annotations

import time

import pytest
from streamlit.testing.v1 import AppTest

from core.data import window_count
from core.datasets import load_corpus
from core.tokenizers import get_tokenizer
from tests.conftest import ROOT

APP = str(ROOT / "app.py")
ONE_MB = "All work and no play makes a dull model. " * 25_600  # ~1 MB paste


def open_page(path: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(path)
    at.run()
    return at


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def timed_run(at: AppTest, element) -> float:
    start = time.perf_counter()
    element.run()
    return time.perf_counter() - start


# --- Tokenizer ---------------------------------------------------------------------------------------------


def test_tokenizer_counts_gpt2_then_char():
    at = open_page("views/tokenizer.py")
    assert_clean(at)
    assert int(metrics(at)["Tokens"]) > 0 and at.success  # default text round-trips
    text = "Hello, do you like tea?"
    at.text_area(key="tok_text").set_value(text).run()
    assert_clean(at)
    # The book's §2.5 ids: [15496, 11, 466, 345, 588, 8887, 30] — 7 tokens ("?" is a token of its own).
    assert metrics(at)["Tokens"] == str(len(get_tokenizer("gpt2").encode(text))) == "7"
    assert metrics(at)["Characters"] == "23"
    at.selectbox(key="tok_name").set_value("char").run()
    assert_clean(at)
    assert metrics(at)["Tokens"] == "23"
    at.text_area(key="tok_text").set_value("<script>alert(1)</script>").run()
    bodies = " ".join(h.proto.body for h in at.get("html"))
    assert "<script>" not in bodies and "&lt;" in bodies


def test_tokenizer_simple_and_bpe():
    at = open_page("views/tokenizer.py")
    at.text_area(key="tok_text").set_value("the lighthouse keeper   climbed\nthe stairs.").run()
    at.selectbox(key="tok_name").set_value("simple-v2").run()
    assert_clean(at)
    assert any("drop whitespace" in w.value for w in at.warning)  # the round trip loses the extra spaces
    at.selectbox(key="tok_name").set_value("bpe").run()
    assert_clean(at)
    assert any("Press **Train**" in i.value for i in at.info)
    at.slider(key="tok_bpe_size").set_value(300)
    at.radio(key="tok_vocab_source").set_value("the built-in corpus")
    at.button(key="tok_bpe_train").click().run()
    assert_clean(at)
    assert metrics(at)["Vocabulary size"] == "300"
    assert any(list(df.value.columns[:5]) == ["rank", "left", "right", "merged", "count"] for df in at.dataframe)


def test_tokenizer_bad_input():
    at = open_page("views/tokenizer.py")
    at.text_area(key="tok_text").set_value("").run()
    assert not at.exception
    assert any("empty" in w.value for w in at.warning)
    at.text_area(key="tok_text").set_value("  \n\t ").run()
    assert not at.exception
    assert any("only whitespace" in i.value for i in at.info)
    assert metrics(at)["Tokens"] == str(len(get_tokenizer("gpt2").encode("  \n\t ")))  # GPT-2 has space tokens
    at.selectbox(key="tok_name").set_value("simple-v1").run()
    assert not at.exception
    assert any("non-empty text" in e.value for e in at.error)  # one sentence, no traceback
    at.selectbox(key="tok_name").set_value("gpt2")
    seconds = timed_run(at, at.text_area(key="tok_text").set_value(ONE_MB))
    assert_clean(at)
    assert seconds < 15
    assert any("works on the first 50,000" in i.value for i in at.info)
    assert any("Showing the first 2,000 of" in c.value for c in at.caption)


# --- Sampling windows --------------------------------------------------------------------------------------


def test_sampling_window_count_follows_stride():
    at = open_page("views/sampling.py")
    assert_clean(at)
    n_tokens = len(get_tokenizer("gpt2").encode(load_corpus("builtin-corpus"), allowed_special={"<|endoftext|>"}))
    assert metrics(at)["Tokens"] == f"{n_tokens:,}"
    assert metrics(at)["Windows"] == f"{window_count(n_tokens, 4, 4):,}"
    at.slider(key="smp_stride").set_value(2).run()
    assert_clean(at)
    assert metrics(at)["Windows"] == f"{window_count(n_tokens, 4, 2):,}" != f"{window_count(n_tokens, 4, 4):,}"
    assert metrics(at)["Overlap (tokens)"] == "2"
    at.slider(key="smp_window").set_value(3).run()
    assert_clean(at)
    assert len(at.dataframe) == 3  # context → next pairs, batch inputs, batch targets
    assert at.dataframe[0].value.shape[0] == 4 and at.dataframe[1].value.shape[0] == 8
    assert any("Window 3 of" in c.value for c in at.caption)


def test_sampling_bad_input():
    at = open_page("views/sampling.py")
    at.radio(key="smp_source").set_value("Your own text (type or upload)").run()
    assert_clean(at)
    at.text_area(key="smp_text").set_value("Too short to train on.").run()  # 6 tokens
    at.slider(key="smp_len").set_value(64).run()
    assert not at.exception
    assert any("needs max_length + 1 = 65 tokens" in w.value and "6 tokens" in w.value for w in at.warning)
    assert metrics(at)["Windows"] == "0"
    for bad in ("", "   \n "):
        at.text_area(key="smp_text").set_value(bad).run()
        assert not at.exception
        assert any("empty" in e.value for e in at.error)
    seconds = timed_run(at, at.text_area(key="smp_text").set_value(ONE_MB))
    assert_clean(at)
    assert seconds < 15
    assert any("works on the first 50,000" in i.value for i in at.info)


# --- Embeddings --------------------------------------------------------------------------------------------


def test_embeddings_defaults_and_bad_input():
    at = open_page("views/embeddings.py")
    assert_clean(at)
    assert len(at.get("plotly_chart")) >= 2  # PCA scatter and position-similarity heatmap
    t = len(get_tokenizer("gpt2").encode("Every morning the keeper climbed the lighthouse stairs."))
    shapes = at.code[0].value
    assert f"(1, {t})" in shapes and f"(1, {t}, 64)" in shapes and f"({t}, 64)" in shapes
    assert metrics(at)["Token embedding tok_emb (vocab × emb_dim)"] == "50,257 × 64"
    at.radio(key="emb_proj_source").set_value("the most frequent tokens of the built-in stories")
    at.radio(key="emb_dims").set_value(3).run()
    assert_clean(at)
    assert at.get("plotly_chart")[0].proto.spec and '"scatter3d"' in at.get("plotly_chart")[0].proto.spec
    neighbours = at.dataframe[-1].value
    assert list(neighbours["rank"]) == list(range(1, 11))
    at.text_input(key="emb_text").set_value("  ").run()
    assert not at.exception
    assert any("empty" in w.value for w in at.warning)
    seconds = timed_run(at, at.text_input(key="emb_text").set_value(ONE_MB))
    assert_clean(at)
    assert seconds < 15
    assert any("only 64 positions" in i.value for i in at.info)


def test_embeddings_trained_vs_random_init(tmp_path):
    import torch

    from core.checkpoint import save
    from core.config import GPTConfig
    from core.model import GPTModel

    torch.manual_seed(7)
    save(GPTModel(GPTConfig.preset("tiny", emb_dim=32, n_heads=2)), tmp_path / "odd" / "model.safetensors")
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["active_model"] = {"kind": "run", "run_id": "odd", "runs_dir": str(tmp_path)}
    at.run()
    at.switch_page("views/embeddings.py")
    at.run()
    at.toggle(key="emb_compare").set_value(True).run()
    assert_clean(at)
    assert any("match no preset" in i.value for i in at.info)  # a 32-wide model is compared with tiny
    assert len(at.get("plotly_chart")) == 4  # PCA, positions, and positions for both models side by side


def test_sampling_the_verdict_when_downloaded(monkeypatch, shared_data):
    if not (shared_data / "the-verdict.txt").is_file():
        pytest.skip("the-verdict.txt is not in the shared data folder")
    monkeypatch.setenv("LLMLAB_DATA_DIR", str(shared_data))
    at = open_page("views/sampling.py")
    at.radio(key="smp_source").set_value("The Verdict (book)").run()
    assert_clean(at)
    assert metrics(at)["Tokens"] == "5,145"  # the book's count
    assert metrics(at)["Windows"] == f"{window_count(5145, 4, 4):,}"
    # The same story uploaded as one's own text is not cut short (it is 20,479 characters): the same 5,145 tokens.
    at.radio(key="smp_source").set_value("Your own text (type or upload)").run()
    data = (shared_data / "the-verdict.txt").read_bytes()
    next(w for w in at.get("file_uploader") if w.key == "smp_upload").set_value(("v.txt", data, "text/plain"))
    at.run()
    assert_clean(at)
    assert metrics(at)["Tokens"] == "5,145" and not any("works on the first" in i.value for i in at.info)
