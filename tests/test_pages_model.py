"""AppTest of the Attention, Architecture and Generation pages: defaults, key numbers, bad input."""

from __future__ import annotations

import re

from streamlit.testing.v1 import AppTest

from tests import conftest


def open_page(path: str) -> AppTest:
    return conftest.open_page(path, timeout=90)


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def row_sum_values(at: AppTest) -> list[float]:
    """Every number in the 'Row sums' captions the page exposes under each attention-weight heatmap."""
    values = []
    for c in at.caption:
        if c.value.startswith("Row sums"):
            values += [float(v) for v in re.findall(r"\d+\.\d+", c.value)]
    return values


# --- Attention ---------------------------------------------------------------------------------------------


def test_attention_defaults():
    at = open_page("views/attention.py")
    assert_clean(at)
    sums = row_sum_values(at)
    # Part 1: 3 single-head stages × 6 rows, multi-head min/max, Part 2 one row per token.
    assert len(sums) >= 3 * 6 + 2 + 2
    assert all(abs(v - 1.0) < 1e-3 for v in sums)
    assert len(at.get("plotly_chart")) >= 15
    assert len(at.tabs) >= 4


def test_attention_own_sentence_and_bad_input():
    at = open_page("views/attention.py")
    at.radio(key="att_source").set_value("Your own sentence").run()
    assert_clean(at)
    assert any("fixed random 3-D vector per word" in c.value for c in at.caption)
    for bad in ("", "   \n  "):
        at.text_input(key="att_text").set_value(bad).run()
        assert not at.exception
        assert any("empty" in e.value for e in at.error)
    at.text_input(key="att_text").set_value("long " * 200_000).run()  # 1 MB paste
    assert_clean(at)
    assert any("first 10 words" in i.value for i in at.info)
    assert all(abs(v - 1.0) < 1e-3 for v in row_sum_values(at))


def test_attention_model_part_bad_input():
    at = open_page("views/attention.py")
    at.text_input(key="att_model_text").set_value("hello " * 170_000).run()  # ~1 MB
    assert_clean(at)
    assert any("only its first" in i.value for i in at.info)
    at.text_input(key="att_model_text").set_value("  ").run()
    assert not at.exception
    assert any("empty" in e.value for e in at.error)


# --- Architecture ------------------------------------------------------------------------------------------


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_architecture_gpt2_small_and_tiny():
    at = open_page("views/architecture.py")
    assert_clean(at)
    m = metrics(at)
    assert m["Parameters, untied"] == "163,009,536"
    assert m["Parameters, tied"] == "124,412,160"
    assert len(at.dataframe) >= 4  # breakdown, memory, shape trace, LayerNorm statistics
    at.selectbox(key="arch_preset").set_value("tiny").run()
    assert_clean(at)
    assert metrics(at)["Parameters, untied"] != "163,009,536"
    assert metrics(at)["Parameters, untied"] == "6,536,704"


def test_architecture_custom_bad_heads():
    at = open_page("views/architecture.py")
    at.selectbox(key="arch_preset").set_value("custom").run()
    assert_clean(at)
    at.number_input(key="arch_heads").set_value(7).run()
    assert not at.exception
    assert any("divisible by n_heads" in e.value for e in at.error)
    assert not at.metric  # nothing half-computed is shown


# --- Generation --------------------------------------------------------------------------------------------


def test_generate_defaults_and_button():
    at = open_page("views/generate.py")
    assert_clean(at)
    at.slider(key="gen_max_new").set_value(5)
    at.button(key="gen_go").click().run()
    assert_clean(at)
    run = at.session_state["gen_result"]["run"]
    assert len(run.pieces) == 5
    assert any(c.value.startswith("Generated 5 new tokens") for c in at.caption)
    # The result survives a rerun caused by another widget.
    at.slider(key="gen_step").set_value(3).run()
    assert_clean(at)
    assert any(c.value.startswith("Step 3:") for c in at.caption)


def test_generate_greedy_with_top_k_and_empty_prompt():
    at = open_page("views/generate.py")
    at.slider(key="gen_max_new").set_value(4)
    at.slider(key="gen_temperature").set_value(0.0)
    at.number_input(key="gen_top_k").set_value(5)
    at.button(key="gen_go").click().run()
    assert_clean(at)
    result = at.session_state["gen_result"]
    assert result["greedy"] is result["run"] and len(result["run"].pieces) == 4
    at.text_area(key="gen_prompt").set_value("   ")
    at.button(key="gen_go").click().run()
    assert not at.exception
    assert any("empty" in e.value for e in at.error)
