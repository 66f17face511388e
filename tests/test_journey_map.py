"""The journey's map (core.journey) and the guide that walks it: numbered stages, clickable pipeline, and guide
text that names only controls the pages really have."""

from __future__ import annotations

import re

import pytest

from core.journey import GUIDE, GUIDE_LATER, PAGES
from tests.conftest import ROOT, app_page, open_code


def test_stages_are_numbered_once_each_in_order():
    numbers = [int(p.stage.split(" · ")[0]) for p in PAGES if p.path != "views/home.py"]
    assert numbers == list(range(1, len(numbers) + 1))


_page = app_page


def _controls_text(at) -> str:
    """Every label, option, tab and button text the page draws (what a guide may tell the learner to use)."""
    parts: list[str] = [t.proto.label for t in at.tabs]
    for kind in ("selectbox", "radio", "multiselect", "select_slider"):
        for w in at.get(kind):
            parts += [w.proto.label, *map(str, getattr(w, "options", []))]
    for kind in ("button", "number_input", "text_input", "text_area", "toggle", "checkbox", "slider"):
        parts += [w.proto.label for w in at.get(kind)]
    return "\n".join(parts)


@pytest.mark.parametrize("path", sorted(GUIDE))
def test_the_guide_names_only_controls_its_page_has(path):
    """Each **bold** phrase in the guide's step for a page is a control, option or tab label on that page."""
    named = re.findall(r"\*\*(.+?)\*\*", GUIDE[path][1])
    assert named, f"the guide for {path} names no control"
    text = _controls_text(_page(path)).lower()
    later = [n for n in named if n in GUIDE_LATER]  # drawn after a run: the label must be in that module
    assert all(f'"{n}' in (ROOT / GUIDE_LATER[n]).read_text() for n in later), later
    missing = [n for n in named if n.lower() not in text and n not in later]
    assert not missing, f"{path}: the guide names {missing}, which the page does not draw"


def test_the_home_pipeline_links_every_stage():
    """Start here links each stage twice: its box in the pipeline and its step of the guided path."""
    at = _page("views/home.py")
    targets = [link.proto.page for link in at.get("page_link")]
    for p in PAGES[1:]:
        slug = p.path.removeprefix("views/").removesuffix(".py")
        assert targets.count(slug) == 2, f"{p.path}: {targets.count(slug)} link(s) on Start here"


@pytest.mark.parametrize("path, sources", [
    ("views/architecture.py", ["class GPTModel", "class TransformerBlock", "class MultiHeadAttention",
                               "class LayerNorm", "class GELU", "class FeedForward"]),
    ("views/pretrain.py", ["def gpt2_state_from_hf", "def load_hf_gpt2"]),
])
def test_show_the_code_sits_by_each_panel_and_covers_the_model(path, sources):
    at = _page(path)
    assert not [c for c in at.code if "def " in c.value], "code is sent before its expander is opened"
    codes = [c.value for c in open_code(at).code]
    for src in sources:
        assert any(src in c for c in codes), f"{path} never shows {src}"


def test_the_guide_promises_15_minutes_at_most_and_states_the_pages_defaults():
    from core import guided

    assert sum(minutes for minutes, _ in GUIDE.values()) <= 15
    text = GUIDE["views/pretrain.py"][1]
    assert f"**Model preset** {guided.PRETRAIN_PRESET}" in text and f"**Steps** {guided.PRETRAIN.max_steps}" in text
    assert f"**Learning rate** {guided.PRETRAIN.lr:.0e}".replace("e-03", "e-3") in text
    assert f"**Max steps** {guided.INSTRUCT_SCRATCH.max_steps}" in GUIDE["views/instruct.py"][1]
    assert f"default {guided.CLASSIFY.epochs} epochs" in GUIDE["views/classify.py"][1]
