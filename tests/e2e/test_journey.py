"""The full journey in a real browser: every page in the order of the home page's guided path, on the tiny preset.

One session walks Start here → Tokenizer → … → Instructions the way a newcomer would: it follows the guided path's
first link and then each page's "Next: …" link (so the links are checked too), touches each page's main control,
trains a short tiny run and makes it the active model, generates from it, and runs a small classification and a
small instruction fine-tune to completion. Every page must show its key result and no exception or error box, and
gets a screenshot with a two-digit order prefix (01_home.png …) in $LLMLAB_ARTIFACTS/screenshots.

The journey itself is :func:`walk_journey`; ``python -m tests.e2e.make_screenshots`` walks the same journey to
regenerate the README's screenshots.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import app_server, screenshot, wait_for_app

#: ``shot(page, name, focus)``: called once per page; ``focus`` is the locator of the page's key result (or None).
Shot = Callable[[Any, str, Any], None]

TOKENIZER_TEXT = "Every effort moves you forward; rare words like Raschka split into pieces."
PRETRAIN_STEPS = 30  # tiny preset, batch 2: well under a minute on 2 CPU cores
CLASSIFY_STEPS = 30  # at learning rate 5e-4: seconds, and well above the majority baseline
INSTRUCT_STEPS = 5  # enough to see the before/after table; a tiny model learns no answers this fast
RESULT_TIMEOUT_MS = 240_000  # a training run or fine-tune on a heavily loaded 2-core machine
GUIDED_TIMEOUT_MS = 900_000  # the guided pretraining run: about 3½ minutes on a quiet 2-core machine
TITLES = ("Start here", "Tokenizer", "Sampling windows", "Embeddings", "Attention", "Architecture", "Pretraining",
          "Generation", "LoRA lab", "Classification", "Instructions")


# ============================================================================================== the app server
# =============================================================================================== page helpers
def _main(page):
    return page.locator('[data-testid="stMainBlockContainer"]')


def _assert_clean(page, where: str) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, f"{where} shows an exception"
    errors = page.locator('[data-testid="stAlertContentError"]').all_inner_texts()
    assert not errors, f"{where} shows an error: {errors}"


def _arrive(page, title: str) -> None:
    wait_for_app(page)
    heading = _main(page).locator("h1").first
    heading.wait_for(timeout=30_000)
    assert heading.inner_text().strip() == title, f"expected the {title!r} page, got {heading.inner_text()!r}"
    _assert_clean(page, title)


def _follow_next(page, title: str) -> None:
    """Click the page's "Next: <title> — …" link and check it leads to that page."""
    link = _main(page).get_by_role("link", name=re.compile(rf"^(arrow_forward\s*)?Next: {re.escape(title)} —"))
    assert link.count() == 1, f"no 'Next: {title}' link on {page.url}"
    link.click()
    _arrive(page, title)


def _metric(page, label: str):
    """The value element of the st.metric whose label is exactly ``label``."""
    label_el = page.locator('[data-testid="stMetricLabel"]', has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))
    return page.locator('[data-testid="stMetric"]', has=label_el).first.locator('[data-testid="stMetricValue"]')


def _set_number(page, label: str, value: int) -> None:
    box = _main(page).get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Tab")
    wait_for_app(page)
    assert box.input_value() == str(value), f"{label} did not take {value}"


def _select(page, label: str, option: re.Pattern) -> None:
    _main(page).get_by_role("combobox", name=label, exact=True).click()
    page.get_by_role("option", name=option).first.click()
    wait_for_app(page)


def _text(page, text: str | re.Pattern, timeout_ms: float = 30_000):
    """The first element showing ``text``, once it is visible."""
    loc = _main(page).get_by_text(text).first
    loc.wait_for(timeout=timeout_ms)
    return loc


# ================================================================================================ the journey
def walk_journey(page, url: str, shot: Shot, guided: bool = False) -> dict[str, Any]:
    """Walk every page in the guided path's order; returns what was made on the way (run id, each stage's figure).

    ``guided=False`` (CI): short runs on the tiny preset. ``guided=True`` (bench/guided_journey.py): the guide's
    own settings — the pages' defaults — with each training stage timed from its Start click to its result.
    """
    from core.config import GPTConfig
    from core.journey import PAGES
    from core.stats import total_parameters
    from core.tokenizers import get_tokenizer

    assert tuple(p.title for p in PAGES) == TITLES, "the pages changed: update the journey (and TITLES) to match"
    made: dict[str, Any] = {"stages": {}}
    page.set_default_timeout(30_000)

    # 01 · Start here: the pipeline (a clickable box per stage) and the guided path.
    page.goto(url + "/")
    _arrive(page, TITLES[0])
    _text(page, "The pipeline")
    _text(page, "The guided path")
    path_links = _main(page).get_by_role("link", name=re.compile("|".join(re.escape(t) for t in TITLES[1:])))
    assert path_links.count() == 2 * (len(TITLES) - 1), path_links.all_inner_texts()  # pipeline + guided path
    shot(page, "01_home", None)
    path_links.first.click()  # the guided path's first stop
    _arrive(page, TITLES[1])

    # 02 · Tokenizer: type a sentence, see its GPT-2 tokens and the round trip.
    box = _main(page).get_by_label("Text to tokenize", exact=True)
    box.fill(TOKENIZER_TEXT)
    box.press("Control+Enter")
    wait_for_app(page)
    n_tokens = len(get_tokenizer("gpt2").encode(TOKENIZER_TEXT))
    tokens = _metric(page, "Tokens")
    assert tokens.inner_text().strip() == f"{n_tokens:,}", tokens.inner_text()
    assert _metric(page, "Characters").inner_text().strip() == f"{len(TOKENIZER_TEXT):,}"
    _text(page, "Round trip: decode(encode(text)) gives back exactly the text.")
    _assert_clean(page, "Tokenizer")
    shot(page, "02_tokenizer", _main(page).get_by_text("Text to tokenize", exact=True))
    _follow_next(page, TITLES[2])

    # 03 · Sampling windows: a longer context length changes every window and the batch shape.
    slider = _main(page).get_by_role("slider", name="Context length (max_length)")
    slider.focus()
    for _ in range(4):
        slider.press("ArrowRight")
    wait_for_app(page)
    assert slider.get_attribute("aria-valuetext") == "8", slider.get_attribute("aria-valuetext")
    _text(page, re.compile(r"max_length=8, stride=4.*inputs and targets are both \(8, 8\)"))
    _assert_clean(page, "Sampling windows")
    shot(page, "03_sampling", _main(page).get_by_text("Context length (max_length)", exact=True))
    _follow_next(page, TITLES[3])

    # 04 · Embeddings of the tiny preset at random init.
    assert _metric(page, "Token embedding tok_emb (vocab × emb_dim)").inner_text().strip() == "50,257 × 64"
    pca = _main(page).locator('[data-testid="stPlotlyChart"]').first
    pca.wait_for()
    _assert_clean(page, "Embeddings")
    shot(page, "04_embeddings", _text(page, "Shapes: from ids to input embeddings"))
    _follow_next(page, TITLES[4])

    # 05 · Attention: the book's steps as heatmaps, then the active model's heads.
    charts = _main(page).locator('[data-testid="stPlotlyChart"]')
    charts.first.wait_for()
    _text(page, "Part 2 · Inside the active model")
    tab = _main(page).get_by_role("tab", name=re.compile(r"Causal"))
    tab.click()
    wait_for_app(page)
    assert tab.get_attribute("aria-selected") == "true"
    assert charts.count() >= 3, charts.count()
    _assert_clean(page, "Attention")
    shot(page, "05_attention", _main(page).get_by_role("tablist").first)
    _follow_next(page, TITLES[5])

    # 06 · Architecture: pick tiny; the parameter count is the tiny config's.
    _select(page, "Architecture", re.compile(r"^tiny —"))
    expected = total_parameters(GPTConfig.preset("tiny"))
    params = _metric(page, "Parameters, untied")
    assert params.inner_text().strip() == f"{expected:,}", params.inner_text()
    _text(page, "Where the parameters are")
    _assert_clean(page, "Architecture")
    shot(page, "06_architecture", _main(page).get_by_text("Architecture", exact=True).last)
    _follow_next(page, TITLES[6])

    # 07 · Pretraining: a run to the end (guided: the defaults; CI: a short tiny run), then make it active.
    run_id, steps = _pretrain(page, made, guided)
    _text(page, f"Step {steps} of {steps} · finished")
    wait_for_app(page)
    val = _metric(page, "Val loss").inner_text().strip()
    assert re.fullmatch(r"\d+\.\d+", val), f"no validation loss after the run: {val!r}"
    sample = _main(page).get_by_text(re.compile(rf"^step {steps:,}$")).first.locator("xpath=following-sibling::div[1]")
    made["stages"]["Pretraining"]["figure"] = f"val loss {val}; sample at step {steps}: {sample.inner_text()!r}"
    _assert_clean(page, "Pretraining")
    page.get_by_role("button", name="Use this run as the active model", exact=True).click()
    wait_for_app(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text(f"trained run '{run_id}'").first.wait_for()
    _assert_clean(page, "Pretraining")
    shot(page, "07_pretrain", _main(page).get_by_role("heading", name=f"Run {run_id}"))
    _follow_next(page, TITLES[7])

    # 08 · Generation from the trained run.
    _text(page, f"trained run '{run_id}'")
    assert _main(page).get_by_text("This model has random weights").count() == 0
    page.get_by_role("button", name="Generate", exact=True).click()
    wait_for_app(page)
    _text(page, re.compile(r"^Generated \d+ new tokens with temperature"), timeout_ms=60_000)
    _text(page, "Step by step: the candidates")
    _assert_clean(page, "Generation")
    shot(page, "08_generate", _main(page).get_by_role("heading", name="Output"))
    _follow_next(page, TITLES[8])

    # 09 · LoRA lab: one layer's A, B and ΔW; a simulated step makes B non-zero.
    _metric(page, "Trainable in this layer with LoRA").wait_for()
    _text(page, "B starts at zero")
    page.get_by_role("button", name="Simulate a training step", exact=True).click()
    wait_for_app(page)
    _text(page, "After 1 simulated step(s)")
    _metric(page, "max |merged − unmerged|").wait_for()
    _assert_clean(page, "LoRA lab")
    shot(page, "09_lora", _main(page).get_by_text("Layer", exact=True).first)
    _follow_next(page, TITLES[9])

    # 10 · Classification on the built-in spam set, to the test-set evaluation (CI: a short fine-tune).
    if not guided:
        _set_number(page, "Max steps (0 = whole epochs)", CLASSIFY_STEPS)
        lr = _main(page).get_by_role("slider", name="Learning rate")
        lr.focus()
        lr.press("ArrowRight")  # 5e-5 (the book's, for pretrained GPT-2) → 1e-4 → 5e-4: a tiny run needs more
        lr.press("ArrowRight")
        wait_for_app(page)
        assert lr.get_attribute("aria-valuetext") == "0.0005", lr.get_attribute("aria-valuetext")
    start = time.perf_counter()
    page.get_by_role("button", name="Start", exact=True).click()
    test_set = _main(page).get_by_role("heading", name="Test set")
    test_set.wait_for(timeout=RESULT_TIMEOUT_MS)
    seconds = time.perf_counter() - start
    wait_for_app(page)
    acc = _metric(page, "Test accuracy").inner_text().strip()
    assert re.fullmatch(r"\d+\.\d%", acc), acc
    majority = _metric(page, "Majority-class baseline").inner_text().strip()
    made["stages"]["Classification"] = {"seconds": seconds, "figure": f"test accuracy {acc} vs majority "
                                        f"baseline {majority}", "accuracy": float(acc[:-1]),
                                        "majority": float(majority[:-1])}
    _text(page, "Ablation table (this session's runs)")
    _assert_clean(page, "Classification")
    made["classify_accuracy"] = acc
    shot(page, "10_classify", test_set)
    _follow_next(page, TITLES[10])

    # 11 · Instructions on the built-in set; scores before and after (CI: a few steps).
    if not guided:
        _set_number(page, "Max steps (0 = whole epochs)", INSTRUCT_STEPS)
        _set_number(page, "Test examples to answer", 3)
        _set_number(page, "Max new tokens per answer", 12)
    start = time.perf_counter()
    page.get_by_role("button", name="Start", exact=True).click()
    after = _main(page).get_by_role("heading", name=re.compile(r"^Before and after fine-tuning \(\d+ test examples"))
    after.wait_for(timeout=RESULT_TIMEOUT_MS)
    seconds = time.perf_counter() - start
    wait_for_app(page)
    scores = {label: _metric(page, label).inner_text().strip() for label in ("Exact match", "Token F1",
                                                                             "Similarity (heuristic)")}
    deltas = {label: page.locator('[data-testid="stMetric"]', has=page.locator('[data-testid="stMetricLabel"]',
              has_text=label)).first.locator('[data-testid="stMetricDelta"]').inner_text().strip()
              for label in ("Exact match", "Token F1")}
    made["stages"]["Instructions"] = {
        "seconds": seconds, "exact_match_gain": deltas["Exact match"], "token_f1_gain": deltas["Token F1"],
        "figure": f"exact match {scores['Exact match']} ({deltas['Exact match']} vs untuned), token F1 "
                  f"{scores['Token F1']} ({deltas['Token F1']})"}
    _assert_clean(page, "Instructions")
    shot(page, "11_instruct", after)
    assert _main(page).get_by_role("link", name=re.compile("^Next:")).count() == 0  # the end of the path
    return made


def _pretrain(page, made: dict[str, Any], guided: bool) -> tuple[str, int]:
    """Start a pretraining run and wait for its end; guided: the defaults, with the pre-flight estimate first."""
    if guided:
        preset = _main(page).get_by_role("combobox", name="Model preset", exact=True).input_value()
        assert preset.startswith("mini —"), preset  # the guide's preset is the page's default
        steps = int(_main(page).get_by_label("Steps", exact=True).input_value())
        page.get_by_role("button", name="Measure speed", exact=True).click()
        estimate = _text(page, re.compile(r"^Estimated time on this device"), timeout_ms=120_000).inner_text()
        made["estimate_s"] = _seconds(re.search(r"≈ ([^—]+?) —", estimate).group(1))
    else:
        _select(page, "Model preset", re.compile(r"^tiny —"))
        steps = PRETRAIN_STEPS
        for label, value in (("Steps", steps), ("Batch size", 2), ("Warmup steps", 5), ("Evaluate every", 15),
                             ("Sample every", 15)):
            _set_number(page, label, value)
    run_id = _main(page).get_by_label(re.compile(r"^Run id")).input_value()
    made["run_id"] = run_id
    start = time.perf_counter()
    page.get_by_role("button", name="Start training", exact=True).click()
    _text(page, f"Finished {steps} steps", timeout_ms=GUIDED_TIMEOUT_MS if guided else RESULT_TIMEOUT_MS)
    made["stages"]["Pretraining"] = {"seconds": time.perf_counter() - start}
    return run_id, steps


def _seconds(text: str) -> float:
    """``42 s`` / ``3 min 20 s`` / ``2 h 05 min`` (ui.format.fmt_duration) → seconds."""
    units = {"h": 3600, "min": 60, "s": 1}
    return float(sum(int(n) * units[u] for n, u in re.findall(r"(\d+) (h|min|s)\b", text)))


# ================================================================================================== the test
@pytest.fixture(scope="module")
def journey_server(tmp_path_factory):
    """A server of its own: fresh runs/ and data folders, and no job left over from another test."""
    with app_server(tmp_path_factory.mktemp("journey")) as url:
        yield url


@pytest.mark.slow
@pytest.mark.timeout(720)
def test_full_journey_on_tiny(journey_server, page):
    start = time.perf_counter()
    shots: list[str] = []

    def shot(pg, name: str, focus) -> None:
        screenshot(pg, name)
        shots.append(name)

    made = walk_journey(page, journey_server, shot)
    assert [s[:2] for s in shots] == [f"{i:02d}" for i in range(1, 12)], shots
    assert made["run_id"]
    print(f"journey took {time.perf_counter() - start:.0f} s; run {made['run_id']}")
    reload_every_page(page, journey_server, made["run_id"])


# Pages that name the active model in their own text, besides the sidebar.
NAME_THE_MODEL = ("Embeddings", "Attention", "Pretraining", "Generation", "LoRA lab", "Classification",
                  "Instructions")


def reload_every_page(page, server: str, run_id: str) -> None:
    """After the journey: open every page from the sidebar and reload it (F5), then open each in a new tab of the
    same browser without any URL parameter (the server kept the choice); each time the sidebar, and the pages
    that name the model, must still name the trained run, and nothing may say "random weights"."""
    fresh = page.context.new_page()
    try:
        for how, pg in (("reload", page), ("new tab", fresh)):
            for title in TITLES:
                if how == "reload":
                    pg.locator('[data-testid="stSidebarNav"] a').filter(has_text=title).first.click()
                    _arrive(pg, title)
                    assert f"model=run%3A{run_id}" in pg.url or f"model=run:{run_id}" in pg.url, pg.url
                    pg.reload()
                else:
                    pg.goto(f"{server}/{_slug(title)}")
                _arrive(pg, title)
                sidebar = pg.locator('[data-testid="stSidebar"]')
                assert f"trained run '{run_id}'" in sidebar.inner_text(), f"{how} of {title} lost the model"
                if title in NAME_THE_MODEL:
                    assert run_id in _main(pg).inner_text(), f"{how} of {title}: the page does not name the run"
                assert _main(pg).get_by_text("This model has random weights").count() == 0, f"{how} of {title}"
    finally:
        fresh.close()


def _slug(title: str) -> str:
    from core.journey import PAGES

    path = next(p.path for p in PAGES if p.title == title)
    return "" if path == PAGES[0].path else path.removeprefix("views/").removesuffix(".py")
