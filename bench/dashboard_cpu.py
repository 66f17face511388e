"""Where an open dashboard's cost goes: CPU seconds of chromium and of the server's own threads while a run trains.

The throughput pairs of ``bench/dashboard_browser.py`` move by ±15 % on this machine, so they cannot tell two
dashboard designs a few per cent apart. This counts the work itself instead: one long ``mini`` run starts from the
Pretraining page, then for ``--window`` seconds the tab stays on the page (the dashboard polls), then for as long
on the Start page (nothing polls). Over each window it sums, from ``/proc``, the CPU time of every chromium
process and of the server, split into its busiest threads (one per core: the training job and its OpenMP
workers) and the rest (page and fragment reruns, whose threads come and go, and the event loop). The peer is the
same window with the tab away.

Usage (about 3 minutes; nothing else should run meanwhile):
    python bench/dashboard_cpu.py [--window 45] [--preset mini] [--profile stacks.txt]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TICK = os.sysconf("SC_CLK_TCK")


def _ticks(stat_path: Path) -> int:
    try:
        fields = stat_path.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0
    return int(fields[11]) + int(fields[12])  # utime + stime


def _comm(path: Path) -> str:
    try:
        return (path / "comm").read_text().strip()
    except OSError:
        return "?"


def chromium_ticks() -> int:
    total = 0
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and "chrom" in _comm(proc):
            total += _ticks(proc / "stat")
    return total


def server_ticks(pid: int) -> tuple[int, dict[str, int]]:
    """The server process's CPU ticks in all (dead threads included), and by live thread id."""
    threads = {task.name: _ticks(task / "stat") for task in Path(f"/proc/{pid}/task").iterdir()}
    return _ticks(Path(f"/proc/{pid}/stat")), threads


def _server_pid(port: int) -> int:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "streamlit" in cmd and f"--server.port {port} " in cmd:
            return int(proc.name)
    raise RuntimeError(f"no streamlit server on port {port}")


def window(pid: int, seconds: float, training: int) -> dict[str, float]:
    """Cores used (CPU seconds ÷ wall seconds) over ``seconds``: chromium; the server's ``training`` busiest
    threads (the job thread and its OpenMP workers); the rest of the server (page and fragment reruns, tornado)."""
    c0, (total0, threads0), t0 = chromium_ticks(), server_ticks(pid), time.perf_counter()
    time.sleep(seconds)
    c1, (total1, threads1), t1 = chromium_ticks(), server_ticks(pid), time.perf_counter()
    wall = t1 - t0
    busiest = sorted((n - threads0.get(tid, 0) for tid, n in threads1.items()), reverse=True)
    train = sum(busiest[:training])
    return {"chromium": (c1 - c0) / TICK / wall, "server: training threads": train / TICK / wall,
            "server: everything else": (total1 - total0 - train) / TICK / wall}


def measure(seconds: float, preset: str = "mini", profile: Path | None = None) -> dict[str, dict[str, float]]:
    """Cores used over ``seconds`` with the dashboard open, then as long with the tab away, while a ``preset`` run
    started from the Pretraining page trains throughout: ``{"open": window(...), "away": window(...)}``."""
    from playwright.sync_api import sync_playwright

    from bench.dashboard_browser import _page_setup
    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, app_server
    from tests.e2e.make_screenshots import VIEWPORT
    from tests.e2e.test_journey import _text

    with tempfile.TemporaryDirectory(prefix="llmlab-dcpu-") as tmp, app_server(Path(tmp), inside_work=True) as url, \
            sync_playwright() as p:
        pid = _server_pid(int(url.rsplit(":", 1)[1]))
        training = os.cpu_count() or 1  # torch trains with one thread per core
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_context(viewport=VIEWPORT, device_scale_factor=1).new_page()
            page.set_default_timeout(60_000)
            _page_setup(page, url, preset, 2000, None)
            page.get_by_role("button", name="Start training", exact=True).click()
            _text(page, re.compile(r"^Step \d"), timeout_ms=120_000)
            time.sleep(5)  # past the first records and the first chart
            spy = None if profile is None else subprocess.Popen(
                ["py-spy", "record", "--pid", str(pid), "--duration", str(int(seconds)), "--format", "raw",
                 "--output", str(profile), "--threads", "--nonblocking"], stdout=subprocess.DEVNULL)
            results = {"open": window(pid, seconds, training)}
            if spy is not None:
                spy.wait(60)
            page.goto(url + "/")
            time.sleep(3)
            results["away"] = window(pid, seconds, training)
        finally:
            browser.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=45.0, help="seconds measured open, then away")
    parser.add_argument("--preset", default="mini", choices=["tiny", "mini"])
    parser.add_argument("--profile", type=Path, help="also record the server with py-spy during the open window "
                        "(collapsed stacks, e.g. for a flame graph); needs `pip install py-spy`")
    args = parser.parse_args()
    results = measure(args.window, args.preset, args.profile)
    print(f"{os.cpu_count()} cores; {args.preset} run training throughout; {args.window:.0f} s per window; cores used")
    print("| what | dashboard open | tab away |\n|---|---|---|")
    for k in results["open"]:
        print(f"| {k} | {results['open'][k]:.3f} | {results['away'][k]:.3f} |")
    o, a = results["open"]["server: training threads"], results["away"]["server: training threads"]
    print(f"training threads' CPU, open ÷ away: {o / a:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
