"""Regenerate the README's screenshots by walking the full journey in a real browser.

    .venv/bin/python -m tests.e2e.make_screenshots            # writes assets/screenshots/01_home.png …

It starts its own app server (temporary runs/ and data folders, so nothing of yours is touched or shown), drives
Debian's chromium through :func:`tests.e2e.test_journey.walk_journey` — the same journey the browser test checks —
and saves one 1280 × 800 picture per page, scrolled to the page's key result. A PNG over the size limit is saved
as a JPEG instead. Takes a few minutes on a laptop CPU (it trains a small model and two fine-tunes).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from tests.conftest import ROOT
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, app_server
from tests.e2e.test_journey import walk_journey

OUT = ROOT / "assets" / "screenshots"
VIEWPORT = {"width": 1280, "height": 800}
MAX_BYTES = 250_000
HEADER_PX = 70  # Streamlit's top bar: the focused element is placed just below it
TOP_PX = {"11_instruct": 360}  # place the focus lower: the loss curves above the before/after table stay in view

_SCROLL_JS = """(el, offset) => {
    let box = el.parentElement;
    while (box && !(box.scrollHeight > box.clientHeight && /(auto|scroll)/.test(getComputedStyle(box).overflowY))) {
        box = box.parentElement;
    }
    (box || document.scrollingElement).scrollBy(0, el.getBoundingClientRect().top - offset);
}"""


def save(page, out: Path, name: str, focus) -> Path:
    """One viewport-sized picture of ``page``: PNG, or a JPEG (quality 70) when the PNG is too large."""
    if focus is not None:
        focus.first.evaluate(_SCROLL_JS, TOP_PX.get(name, HEADER_PX))
    else:
        page.locator('[data-testid="stMainBlockContainer"] h1').first.evaluate(_SCROLL_JS, 10_000)  # the top
    page.mouse.move(VIEWPORT["width"] - 5, VIEWPORT["height"] - 5)  # no hover tooltip in the picture
    time.sleep(0.8)  # plotly and the scroll settle
    png, jpg = out / f"{name}.png", out / f"{name}.jpg"
    page.screenshot(path=str(png))
    keep, drop = png, jpg
    if png.stat().st_size > MAX_BYTES:
        page.screenshot(path=str(jpg), type="jpeg", quality=70)
        keep, drop = jpg, png
    drop.unlink(missing_ok=True)
    print(f"{keep.relative_to(ROOT) if keep.is_relative_to(ROOT) else keep}  {keep.stat().st_size / 1000:.0f} kB",
          flush=True)
    return keep


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.make_screenshots", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"folder for the pictures (default: {OUT})")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="llmlab-shots-") as tmp, app_server(Path(tmp), inside_work=True) as url, \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_context(viewport=VIEWPORT, device_scale_factor=1).new_page()
            walk_journey(page, url, lambda pg, name, focus: save(pg, args.out, name, focus))
        finally:
            browser.close()
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
