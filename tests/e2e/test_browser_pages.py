"""Visit every page in a real browser: it renders, shows no exception or error box, and gets a screenshot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.journey import PAGES
from tests.e2e.conftest import ARTIFACTS, screenshot, wait_for_app

EXISTING = list(PAGES)
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module", autouse=True)
def write_timings():
    """After the pages: their warm first-render times, for the closing note and the README."""
    yield
    if TIMINGS:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "page_timings.json").write_text(json.dumps(TIMINGS, indent=2))


@pytest.mark.parametrize("info", EXISTING, ids=[p.path for p in EXISTING])
def test_page_renders_without_errors(server, page, info):
    slug = info.path.removeprefix("views/").removesuffix(".py")
    url = server + ("/" if slug == "home" else f"/{slug}")
    page.goto(url)
    seconds = wait_for_app(page)
    # Warm timing: load the page a second time now that caches and imports are warm.
    page.goto(url)
    TIMINGS[info.path] = round(wait_for_app(page), 2)
    screenshot(page, slug)
    assert page.locator('[data-testid="stException"]').count() == 0, f"{info.path} shows an exception"
    errors = page.locator('[data-testid="stAlertContentError"]').all_inner_texts()
    assert not errors, f"{info.path} shows an error: {errors}"
    assert page.locator("h1").first.inner_text().strip() == info.title
    assert seconds < 60
    if slug != "home":  # every stage page offers its script with the default settings
        assert page.get_by_role("button", name="Download as script").count() == 1, f"{info.path}: no script"


def test_the_downloaded_script_is_the_pages_python(server, page, tmp_path):
    page.goto(server + "/sampling")
    wait_for_app(page)
    with page.expect_download() as got:
        page.get_by_role("button", name="Download as script").click()
    download = got.value
    assert download.suggested_filename == "llm_lab_sampling.py"
    text = Path(download.path()).read_text(encoding="utf-8")
    compile(text, download.suggested_filename, "exec")
    assert "MAX_LENGTH, STRIDE, BATCH_SIZE = 4, 4, 8" in text and "load_corpus('builtin-corpus')" in text
