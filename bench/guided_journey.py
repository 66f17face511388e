"""The whole guided path in a real browser with the guide's settings: what each stage shows, and how long it takes.

Starts its own app server (empty runs/ and data folders), drives Debian's chromium through
:func:`tests.e2e.test_journey.walk_journey` with ``guided=True`` — every page in the guide's order, the training
pages on their default settings, which are the guide's (``core.guided``) — and prints one row per training stage:
the compute time from its Start click to its result on screen, and the figure the page shows next to its peer
(validation loss against ln(V) = 10.82, test accuracy against the majority baseline, the instruction score against
the same model before fine-tuning). It also compares the Pretraining page's pre-flight estimate with the measured
time. The browser test suite walks the same journey on CI with short tiny runs (tests/e2e/test_journey.py).

Usage (about 6 minutes on 2 cores; nothing else should run meanwhile):
    python bench/guided_journey.py [--screenshots DIR]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BUDGET_S = 15 * 60  # the guide's promise for the whole path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--screenshots", type=Path, help="also save one picture per page here (README style)")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, app_server
    from tests.e2e.make_screenshots import VIEWPORT, save
    from tests.e2e.test_journey import walk_journey

    if not CHROMIUM.exists():
        print(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)", file=sys.stderr)
        return 2
    if args.screenshots:
        args.screenshots.mkdir(parents=True, exist_ok=True)

    def shot(page, name, focus):
        if args.screenshots:
            save(page, args.screenshots, name, focus)

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="llmlab-guided-") as tmp, app_server(Path(tmp), inside_work=True) as url, \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_context(viewport=VIEWPORT, device_scale_factor=1).new_page()
            made = walk_journey(page, url, shot, guided=True)
        finally:
            browser.close()
    wall = time.perf_counter() - start
    stages = made["stages"]
    print("\n| stage | compute (Start → result) | what the page shows |\n|---|---|---|")
    for name, stage in stages.items():
        print(f"| {name} | {stage['seconds'] / 60:.1f} min | {stage['figure']} |")
    compute = sum(s["seconds"] for s in stages.values())
    print(f"\ntraining compute {compute / 60:.1f} min of the guide's {BUDGET_S // 60}; the whole walk, pages and "
          f"browser included, {wall / 60:.1f} min (ln V = {math.log(50257):.2f})")
    measured = stages["Pretraining"]["seconds"]
    print(f"pre-flight estimate {made['estimate_s']:.0f} s vs measured {measured:.0f} s: "
          f"{made['estimate_s'] / measured:.2f}× (the target is 0.7–1.3×)")
    cls = stages["Classification"]
    checks = {"training within the budget": compute <= BUDGET_S,
              "classification ≥ 15 points above the majority baseline": cls["accuracy"] - cls["majority"] >= 15,
              "instruction score above the untuned model": stages["Instructions"]["token_f1_gain"].startswith("+")
              and stages["Instructions"]["token_f1_gain"] != "+0.00",
              "pre-flight estimate within ±30 %": 0.7 <= made["estimate_s"] / measured <= 1.3}
    for what, ok in checks.items():
        print(f"  {'ok ' if ok else 'NO '} {what}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
