"""What an open dashboard costs, and how honest the pre-flight estimate is — in a real browser.

Starts its own app server (empty runs/ folder) and drives Debian's chromium on the Pretraining page, as a learner
does: choose the model, press **Measure speed**, press **Start training**. Each case is one run:

- ``open``: the tab stays on the Pretraining page, so the live dashboard polls the server and redraws its chart,
  metrics and samples while the run trains (what a learner watching the run does);
- ``away``: the same run, but right after Start the tab goes to the Start page, so nothing polls (the peer).

Both run the page's way (a job in a thread of the server, with chromium on the same cores). Throughput is the
trainer's own tokens/s at the last step (tokens trained ÷ wall time since training started, evaluations included)
from the run's ``run.json``; the overhead is ``1 − open ÷ away`` (target ≤ 5 %). With ``--rounds N`` the pairs
alternate order and the median ratio is reported. The estimate check compares the page's "Estimated time on this
device" with the measured time from the Start click to the finished dashboard (target 0.7–1.3×) for tiny, mini
and a custom configuration, each with the dashboard open.

Usage (about 8 minutes on 2 cores with the defaults; nothing else should run meanwhile):
    python bench/dashboard_browser.py [--steps 100] [--rounds 1] [--skip-eta]
    python bench/dashboard_browser.py --rounds 0          # only the estimate check
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RUN_TIMEOUT_S = 900
CUSTOM = {"Layers": 3, "Embedding dim": 96}  # on top of mini: a configuration no preset has


def _page_setup(page, url: str, preset: str, steps: int, custom: dict[str, int] | None) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    from tests.e2e.conftest import wait_for_app
    from tests.e2e.test_journey import _main, _select, _set_number

    page.goto(f"{url}/pretrain")
    wait_for_app(page)
    if preset != "mini":
        try:
            _select(page, "Model preset", re.compile(rf"^{preset} —"))
        except PlaywrightTimeout:  # the list did not open on a first, cold page: once more
            page.keyboard.press("Escape")
            _select(page, "Model preset", re.compile(rf"^{preset} —"))
    if custom:
        _main(page).get_by_text(re.compile(r"^Sizes:")).click()
        for label, value in custom.items():
            _set_number(page, label, value)
    _set_number(page, "Steps", steps)


def _estimate(page) -> float:
    from tests.e2e.test_journey import _seconds, _text

    page.get_by_role("button", name="Measure speed", exact=True).click()
    text = _text(page, re.compile(r"^Estimated time on this device"), timeout_ms=120_000).inner_text()
    return _seconds(re.search(r"≈ ([^—]+?) —", text).group(1))


def _finished(run_json: Path, timeout_s: float) -> dict:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            data = json.loads(run_json.read_text())
        except (OSError, ValueError):
            data = {}
        if data.get("status") in ("finished", "failed", "diverged", "stopped"):
            return data
        time.sleep(0.5)
    raise TimeoutError(f"{run_json.parent.name} did not finish within {timeout_s:.0f} s")


def one_run(browser, url: str, runs: Path, *, preset: str, steps: int, mode: str,
            custom: dict[str, int] | None = None, estimate: bool = False) -> dict:
    """One run from the page; returns tokens/s, the measured seconds and (if asked) the page's estimate."""
    from tests.e2e.make_screenshots import VIEWPORT
    from tests.e2e.test_journey import _main, _text

    page = browser.new_context(viewport=VIEWPORT, device_scale_factor=1).new_page()
    page.set_default_timeout(60_000)
    try:
        _page_setup(page, url, preset, steps, custom)
        est = _estimate(page) if estimate else None
        run_id = _main(page).get_by_label(re.compile(r"^Run id")).input_value()
        start = time.perf_counter()
        page.get_by_role("button", name="Start training", exact=True).click()
        _text(page, re.compile(r"^Step \d"), timeout_ms=120_000)  # the dashboard is up: the job runs
        if mode == "away":
            page.goto(url + "/")
        if mode == "open":
            _text(page, f"Finished {steps} steps", timeout_ms=RUN_TIMEOUT_S * 1000)
            seconds = time.perf_counter() - start
            data = _finished(runs / run_id / "run.json", 30)
        else:
            data = _finished(runs / run_id / "run.json", RUN_TIMEOUT_S)
            seconds = time.perf_counter() - start
    finally:
        page.context.close()
    assert data["status"] == "finished", data.get("message")
    last = data["metrics"][-1]
    return {"tokens_per_s": last["tokens_per_s"], "seconds": seconds, "estimate_s": est, "step": last["step"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="steps of the mini run compared open vs away")
    parser.add_argument("--rounds", type=int, default=1, help="open/away pairs, alternating order (0: none)")
    parser.add_argument("--skip-eta", action="store_true", help="only the overhead, not the estimate check")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, app_server

    if not CHROMIUM.exists():
        print(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)", file=sys.stderr)
        return 2
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; mini, {args.steps} steps, "
          "the page's other defaults")
    checks: dict[str, bool] = {}
    with tempfile.TemporaryDirectory(prefix="llmlab-dash-") as tmp, app_server(Path(tmp), inside_work=True) as url, \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        runs = Path(tmp) / "runs"
        try:
            ratios = []
            for r in range(args.rounds):
                order = ("away", "open") if r % 2 == 0 else ("open", "away")
                got = {m: one_run(browser, url, runs, preset="mini", steps=args.steps, mode=m) for m in order}
                ratio = got["open"]["tokens_per_s"] / got["away"]["tokens_per_s"]
                ratios.append(ratio)
                print(f"round {r + 1}: dashboard open {got['open']['tokens_per_s']:,.0f} tok/s, tab away "
                      f"{got['away']['tokens_per_s']:,.0f} tok/s → open/away {ratio:.3f}")
            if ratios:
                med = statistics.median(ratios)
                print(f"open dashboard costs {100 * (1 - med):+.1f} % of throughput (median of {len(ratios)}; "
                      "target ≤ 5 %)")
                checks["open dashboard ≤ 5 % slower"] = med >= 0.95
            if not args.skip_eta:
                print("\n| configuration | steps | estimate | measured (dashboard open) | estimate ÷ measured |\n"
                      "|---|---|---|---|---|")
                for name, preset, steps, custom in (("tiny", "tiny", 200, None), ("mini", "mini", 200, None),
                                                    ("custom (mini, 3 blocks × 96)", "mini", 150, CUSTOM)):
                    got = one_run(browser, url, runs, preset=preset, steps=steps, mode="open", custom=custom,
                                  estimate=True)
                    q = got["estimate_s"] / got["seconds"]
                    print(f"| {name} | {steps} | {got['estimate_s']:.0f} s | {got['seconds']:.0f} s | {q:.2f}× |")
                    checks[f"{name}: estimate within ±30 %"] = 0.7 <= q <= 1.3
        finally:
            browser.close()
    for what, ok in checks.items():
        print(f"  {'ok ' if ok else 'NO '} {what}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
