""""Show the code" sits by each panel: every header or subheader section of every stage page has its own
expander, and what it shows is the code that ran there."""

from __future__ import annotations

import pytest

from core.journey import PAGES
from tests.conftest import open_code, open_page

CODE = "Show the code"
STAGE_PAGES = [p.path for p in PAGES if p.path != "views/home.py"]


def _walk(node, out: list[tuple[str, list[str]]]) -> None:
    kind = type(node).__name__
    if kind in ("Title", "Header", "Subheader"):
        out.append((f"{kind}: {node.value}", []))
    elif kind == "Expander" and out:
        out[-1][1].append(node.label)
    for child in getattr(node, "children", {}).values():
        _walk(child, out)


def sections(root) -> list[tuple[str, list[str]]]:
    """The page in reading order as (heading, [expander labels under it]); the title opens the first section."""
    out: list[tuple[str, list[str]]] = []
    _walk(root, out)
    return out


def bare_sections(at) -> list[str]:
    """Headings (below the page title) whose section has no "Show the code" expander."""
    found = sections(at.main)
    return [h for h, labels in found if not h.startswith("Title") and not any(x.startswith(CODE) for x in labels)]


def test_sections_reads_the_tree_in_order():
    at = open_page("views/sampling.py")
    found = sections(at.main)
    assert [h for h, _ in found] == ["Title: Sampling windows", "Subheader: One window: input x and target y",
                                     "Subheader: The first batch of the data loader"]
    assert all(labels and labels[0].startswith(CODE) for _, labels in found)
    at.radio(key="smp_source").set_value("Your own text (type or upload)").run()
    at.text_area(key="smp_text").set_value("").run()  # no tokens: the window panels go, and their code with them
    assert [h for h, _ in sections(at.main)] == ["Title: Sampling windows"]


@pytest.mark.parametrize("path", STAGE_PAGES)
def test_every_panel_has_its_own_show_the_code(path):
    at = open_page(path)
    assert not at.exception, [e.value for e in at.exception]
    assert not bare_sections(at), f"{path}: sections without 'Show the code': {bare_sections(at)}"
    labels = [x for _, found in sections(at.main) for x in found if x.startswith(CODE)]
    assert len(labels) == len(set(labels)), f"{path}: two expanders share a label: {labels}"


def test_generation_panels_after_a_run_each_show_their_code():
    at = open_page("views/generate.py")
    at.slider(key="gen_max_new").set_value(3)
    at.button(key="gen_go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    headings = [h for h, _ in sections(at.main)]
    assert {"Subheader: Output", "Subheader: Step by step: the candidates"} <= set(headings)
    assert not bare_sections(at), bare_sections(at)
    codes = "\n".join(c.value for c in open_code(at).code)
    for src in ("def playground_generate", "def _trace_step", "def _distribution", "def generate("):
        assert src in codes, f"the generation page never shows {src}"


@pytest.mark.parametrize("path, sources", [
    ("views/attention.py", ["class SelfAttention_v1", "class SelfAttention_v2", "class CausalAttention",
                            "class MultiHeadAttentionWrapper", "def causal_attention", "def model_attention"]),
    ("views/tokenizer.py", ["def encode", "def _segment_spans", "def spans"]),
    ("views/lora.py", ["class LoRALinear", "def merge_lora", "def replace_linear_with_lora"]),
])
def test_panel_code_is_the_code_that_ran(path, sources):
    codes = "\n".join(c.value for c in open_code(open_page(path)).code)
    for src in sources:
        assert src in codes, f"{path} never shows {src}"
