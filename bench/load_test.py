"""Load test: N browser sessions use the app at once while one session trains a model.

What it does, all on loopback:

1. starts its own ``streamlit run app.py`` on a free 127.0.0.1 port with ``LLMLAB_DEMO=1`` and empty temporary
   runs/data folders (stopped at the end, also on errors and Ctrl-C);
2. launches ONE headless chromium (Playwright, async API: one event loop drives every page, so no thread-safety
   issues and no browser per session);
3. a *trainer* session opens Pretraining and starts a tiny-preset run (``--steps``, default 2,000 = the demo cap);
   if the run ends before the measurement does, the trainer starts another, so something trains throughout;
4. for each N in ``--sessions`` (default 1 5 10) it opens N fresh browser contexts (fresh Streamlit sessions) that
   walk every page of ``core.journey.PAGES`` in order, ``--rounds`` times, at the same time. The first visit of a
   session is a full page load (``goto``); the rest click the sidebar link, as a visitor would (``--nav goto``
   reloads every page instead). A render is timed from the navigation until the page's ``h1`` shows its title,
   the script has reached the page's end (its closing "Next: …" link is drawn and current; on a page without one,
   ``stApp[data-test-script-state]`` is not ``running`` and the status widget is gone) and the number of elements
   in the main block has stayed the same for ``--quiet`` seconds; the time is taken at the start of that quiet
   stretch (see :func:`wait_rendered`);
5. on every visit it checks for ``[data-testid="stException"]``, error alerts, a lost connection and page
   timeouts (all failures). On Pretraining, sessions also click "Start training" while the trainer's job runs and
   must get the busy message (``core.jobs.JobBusyError``: "Another training job … is using this machine; wait …"),
   shown as a warning: a busy message is counted, anything else after that click is a failure;
6. the last ``--hostile`` sessions of each level (default 2, at most N - 1) are hostile: after each page they try
   one probe from ``bench/load_hostile.py`` (the trainer's run ids in every URL parameter that names a run, with
   and without a forged visitor token; an over-cap model, a 200-digit seed, a path as run id, GPT-2 weights by
   path, a 10 kB token, Steps = 10⁹, a 300,000-character paste). A probe that shows any of the trainer's run ids
   or offers a control over them counts as cross-visitor access (the report's ``cross_visitor_access``: must be
   0); an exception or error box on a probe is a failure;
7. a thread samples the server's RSS (VmRSS of the server process and its children, every 0.2 s) and keeps the
   peak per N.

It prints a table (N, renders, median/p95/max seconds, failures, busy messages, server peak RSS, server CPU,
the trainer's steps/s) and writes JSON (``artifacts/load_test.json`` or ``--out``) with every visit, per-page
medians, every failure, the trainer's progress and the server log's tracebacks; the whole server log goes beside
it (``load_test.server.log``) and a screenshot of each failed visit (up to 10) into ``load_test_failures/``.

The browsers run on the same machine as the server: at N = 10 on 2 cores, chromium drawing ten pages takes a
large share of the CPU, so the latencies there are an upper bound for the server's (``client_cpu_pct`` in the
JSON says how much). ``--max-seconds`` (default 600) bounds the whole run: when it is reached, the sessions
stop where they are and the report covers what was measured (``"complete": false``).

Usage:
    python bench/load_test.py [--sessions 1 5 10] [--rounds 1] [--max-seconds 600] [--out artifacts/load_test.json]
    python bench/load_test.py --quick          # smoke check: N = 1, 2, one round
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.journey import PAGES, PageInfo, next_page  # noqa: E402 - after the path fix, so the script runs from anywhere

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load_hostile as hostile  # noqa: E402 - bench/ is not a package

CHROMIUM = Path(os.environ.get("LLMLAB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]
DEFAULT_OUT = ROOT / "artifacts" / "load_test.json"
PRETRAIN = "views/pretrain.py"
# The busy sentence of core.jobs.JobBusyError ("Another training job (run …, 12% done) is using this machine; wait
# for it to finish or stop it, then try again."), loosely, so a reworded demo message still counts.
BUSY_RE = re.compile(r"another (training )?job|is using this machine|\bbusy\b|wait for it to finish|"
                     r"already (training|running)|one (training )?(job|run) at a time", re.I)

# One round trip per poll: the page's title, the app's script state and connection, what went wrong on it, the
# number of elements in the main block (to see the browser still drawing) and whether the page's last element, its
# "Next: …" link (``ui.widgets.next_page_link``), is drawn and current (not left stale from an earlier run).
JS_STATE = """(nextLabel) => {
  const app = document.querySelector('[data-testid="stApp"]');
  const main = document.querySelector('[data-testid="stMainBlockContainer"]');
  const h1 = main ? main.querySelector('h1') : null;
  const texts = (sel) => Array.from(document.querySelectorAll(sel)).map(e => e.innerText.trim()).slice(0, 5);
  const dialogs = Array.from(document.querySelectorAll('[role="dialog"]')).map(e => e.innerText.trim())
      .filter(t => /error|not found|connection|disconnect/i.test(t)).slice(0, 3);
  const links = main ? Array.from(main.querySelectorAll('[data-testid="stPageLink"]')) : [];
  return {
    h1: h1 ? h1.innerText.trim() : null,
    script: app ? app.getAttribute('data-test-script-state') : null,
    conn: app ? app.getAttribute('data-test-connection-state') : null,
    status: document.querySelector('[data-testid="stStatusWidget"]') !== null,
    exceptions: texts('[data-testid="stException"]'),
    errors: texts('[data-testid="stAlertContentError"]'),
    warnings: texts('[data-testid="stAlertContentWarning"]'),
    infos: texts('[data-testid="stAlertContentInfo"]'),
    dialogs: dialogs,
    nodes: main ? main.getElementsByTagName('*').length : -1,
    next_ok: !!nextLabel && links.some(e => e.innerText.includes(nextLabel) && !e.closest('[data-stale="true"]')),
  };
}"""


# ============================================================================================== options, server
@dataclass
class Options:
    sessions: list[int] = field(default_factory=lambda: [1, 5, 10])
    rounds: int = 1
    pages: list[str] = field(default_factory=lambda: [p.path for p in PAGES])
    max_seconds: float = 600.0
    steps: int = 2000  # the demo's cap per run; the trainer starts a new run when one ends
    nav: str = "click"  # "click": sidebar links after a first full load; "goto": a full load for every page
    busy_sessions: int = 0  # how many sessions per level click Start on Pretraining (0 = all of them)
    hostile: int = 2  # sessions per level (at most N - 1) that also probe other visitors' runs and the caps
    visit_timeout: float = 90.0
    quiet: float = 0.5
    out: Path | None = DEFAULT_OUT
    verbose: bool = True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the server gets SIGTERM if this process dies without cleaning up (e.g. SIGKILL)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_server(work: Path, port: int, timeout_s: float = 90.0) -> tuple[subprocess.Popen, str, Path]:
    """``streamlit run app.py`` on 127.0.0.1:``port`` in demo mode with runs/data under ``work``."""
    env = dict(os.environ, LLMLAB_DEMO="1", LLMLAB_RUNS_DIR=str(work / "runs"), LLMLAB_DATA_DIR=str(work / "data"),
               PYTHONUNBUFFERED="1")
    env.pop("LLMLAB_MAX_JOBS", None)  # the demo's cap (one job) is what is measured
    log_path = work / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url, log_path
        except OSError:
            time.sleep(0.3)
    stop_server(proc)
    raise RuntimeError(f"streamlit did not start within {timeout_s:.0f} s: {log_path.read_text()[-2000:]}")


def stop_server(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# ============================================================================================== memory sampling
def _children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
    return out


def _vmrss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_bytes(pid: int) -> int:
    """VmRSS of ``pid`` and all its descendants, in bytes (0 if it is gone)."""
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        total += _vmrss_kib(p)
        todo += _children(p)
    return total * 1024


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its descendants so far (0 if it is gone)."""
    total, todo, seen, tick = 0, [pid], set(), os.sysconf("SC_CLK_TCK")
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{p}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
        todo += _children(p)
    return total / tick


class RssSampler(threading.Thread):
    """Samples :func:`tree_rss_bytes` every ``interval`` s; :meth:`take_peak` returns and resets the peak."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.pid, self.interval = pid, interval
        self.current = self.peak = self.overall_peak = 0
        self._lock = threading.Lock()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            rss = tree_rss_bytes(self.pid)
            with self._lock:
                self.current = rss
                self.peak = max(self.peak, rss)
                self.overall_peak = max(self.overall_peak, rss)
            self._stop_event.wait(self.interval)

    def take_peak(self) -> int:
        with self._lock:
            peak, self.peak = self.peak, self.current
            return peak

    def stop(self) -> None:
        self._stop_event.set()


# ============================================================================================== browser helpers
class RenderTimeout(Exception):
    pass


def page_url(server: str, info: PageInfo) -> str:
    slug = info.path.removeprefix("views/").removesuffix(".py")
    return server + ("/" if info.path == PAGES[0].path else f"/{slug}")


async def app_state(page: Any, next_label: str | None = None) -> dict[str, Any]:
    from playwright.async_api import Error as PlaywrightError

    try:
        return await page.evaluate(JS_STATE, next_label)
    except PlaywrightError:  # a navigation replaced the document under the call
        return {"h1": None, "script": None, "conn": None, "status": True, "exceptions": [], "errors": [],
                "warnings": [], "infos": [], "dialogs": [], "nodes": -1, "next_ok": False}


def next_label(info: PageInfo) -> str | None:
    """The text of the "Next: …" link that ends ``info``'s page, or None if the page does not end with one."""
    nxt = next_page(info.path)
    try:
        ends_with_link = "next_page_link(" in (ROOT / info.path).read_text()
    except OSError:
        ends_with_link = False
    return f"Next: {nxt.title}" if nxt is not None and ends_with_link else None


async def wait_rendered(page: Any, info: PageInfo, t0: float, timeout_s: float, quiet_s: float) -> tuple[float, dict]:
    """Seconds from ``t0`` until ``info``'s page is drawn, and the state then.

    Drawn: the ``h1`` shows the page's title, the script has reached the page's end, and the number of elements in
    the main block has not changed for ``quiet_s`` (the browser keeps drawing after the script ends: seconds on a
    busy machine); the time is taken at the start of that quiet stretch. "Reached the end": the page's closing
    "Next: …" link is drawn and current, or, on a page without one, the app reports no script run
    (``stApp[data-test-script-state]``, no status widget). The link is what makes pages with a live fragment
    measurable: Pretraining's dashboard re-runs every second while a job trains, so on a busy server the app is
    hardly ever idle once the page is complete.

    Raises :class:`RenderTimeout` (with the last state) after ``timeout_s``. An exception, an error dialog or a lost
    connection ends the wait early with the state (the caller counts it as a failure).
    """
    label = next_label(info)
    quiet_since: float | None = None
    state: dict[str, Any] = {}
    nodes = -1
    while True:
        state = await app_state(page, label)
        now = time.perf_counter()
        if state["exceptions"] or state["dialogs"] or state["conn"] in ("DISCONNECTED_FOREVER",):
            return now - t0, state
        if label is not None:
            at_end = state["next_ok"]
        else:
            at_end = state["script"] not in (None, "running", "rerunRequested", "initial") and not state["status"]
        steady, nodes = state["nodes"] == nodes, state["nodes"]
        if state["h1"] == info.title and at_end and steady:
            quiet_since = quiet_since or now
            if now - quiet_since >= quiet_s:
                return quiet_since - t0, state
        else:
            quiet_since = None
        if now - t0 > timeout_s:
            raise RenderTimeout(f"not drawn after {timeout_s:.0f} s (h1={state['h1']!r}, script={state['script']}, "
                                f"end reached={at_end}, connection={state['conn']})")
        await asyncio.sleep(0.05)


def problems(state: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(failures, busy messages) on a page state: exceptions, non-busy errors, error dialogs, a lost connection."""
    fails = [f"exception: {t[:300]}" for t in state.get("exceptions", [])]
    fails += [f"error dialog: {t[:300]}" for t in state.get("dialogs", [])]
    busy = [t for t in state.get("errors", []) + state.get("warnings", []) + state.get("infos", [])
            if BUSY_RE.search(t)]
    fails += [f"error: {t[:300]}" for t in state.get("errors", []) if not BUSY_RE.search(t)]
    if state.get("conn") not in (None, "CONNECTED"):
        fails.append(f"connection state {state.get('conn')}")
    return fails, busy


async def sidebar_link(page: Any, info: PageInfo) -> Any | None:
    """The sidebar navigation link to ``info`` (None if the sidebar does not show it)."""
    links = page.locator('[data-testid="stSidebarNav"] a[data-testid="stSidebarNavLink"]').filter(
        has_text=re.compile(rf"^\s*\S*\s*{re.escape(info.title)}\s*$"))
    if await links.count() == 0:
        links = page.locator('[data-testid="stSidebarNav"] a').filter(has_text=info.title)
    return links.first if await links.count() else None


# ============================================================================================== the trainer
@dataclass
class TrainerState:
    runs_dir: Path | None = None  # the server's runs folder: a job's run folder appears there when it starts
    run_ids: list[str] = field(default_factory=list)
    active: bool = False
    progress: str = ""
    step: int = 0
    starts: int = 0
    busy_when_starting: int = 0
    problems: list[str] = field(default_factory=list)
    max_steps_requested: int = 0
    max_steps_set: str = ""
    page_s: float | None = None  # the trainer's first load of Pretraining (a cold server: imports, tokenizing)
    start_s: float | None = None  # from the first click on Start training to the job's progress bar


STEP_RE = re.compile(r"Step ([\d,]+)(?: of ([\d,]+))?")


async def read_progress(page: Any) -> str:
    from playwright.async_api import Error as PlaywrightError

    try:
        bars = page.locator('[data-testid="stProgress"]')
        if await bars.count():
            return (await bars.first.inner_text(timeout=5_000)).strip()
    except PlaywrightError:
        pass
    return ""


def _pretrain() -> PageInfo:
    return next(p for p in PAGES if p.path == PRETRAIN)


async def _set_number(page: Any, label: str, value: int, opts: Options) -> str:
    box = page.get_by_label(label, exact=True)
    await box.fill(str(value))
    await box.press("Tab")
    await asyncio.sleep(0.3)
    await wait_rendered(page, _pretrain(), time.perf_counter(), opts.visit_timeout, opts.quiet)
    return await box.input_value()


def _new_runs(ts: TrainerState) -> list[str]:
    """Run folders in the server's runs dir that the trainer has not seen yet (a job exists once its folder does)."""
    if ts.runs_dir is None or not ts.runs_dir.is_dir():
        return []
    return sorted(p.name for p in ts.runs_dir.iterdir() if p.is_dir() and p.name not in ts.run_ids)


async def trainer_start(page: Any, ts: TrainerState, opts: Options, timeout_s: float = 120.0) -> bool:
    """Click Start training on the (rendered) Pretraining page; True once the job exists.

    The job exists when its run folder appears in the server's runs dir (the server builds the trainer before it
    answers, and the browser may take seconds more to draw the dashboard) or the progress bar says it trains.
    """
    await page.get_by_role("button", name="Start training").click()
    ts.starts += 1
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        if new := _new_runs(ts):
            ts.run_ids += new
            ts.active = True
            return True
        text = await read_progress(page)
        if "training" in text or "starting" in text:
            ts.active, ts.progress = True, text
            return True
        fails, busy = problems(await app_state(page))
        if busy:  # someone else's job (e.g. a session that raced the trainer) holds the machine
            ts.busy_when_starting += 1
            return False
        if fails:
            ts.problems += [f"starting the run: {f}" for f in fails]
            return False
        await asyncio.sleep(0.2)
    ts.problems.append(f"starting the run: no run folder or progress bar within {timeout_s:.0f} s")
    return False


ENDED = ("finished", "stopped", "diverged", "failed", "interrupted", "broken")


async def trainer_loop(page: Any, ts: TrainerState, opts: Options, stop: asyncio.Event) -> None:
    """Keep a run training until ``stop``: watch the progress bar, start a new run when one has ended.

    Ended: the bar says so ("· finished", "· stopped" …), or there has been no bar for ~15 s on an idle page.
    """
    missing = 0
    while not stop.is_set():
        text = await read_progress(page)
        ended = False
        if text:
            missing = 0
            ts.progress = text
            if m := STEP_RE.search(text):
                ts.step = int(m.group(1).replace(",", ""))
            ts.active = "training" in text or "starting" in text
            ended = any(word in text for word in ENDED)
        else:
            missing += 1  # the dashboard is not drawn (yet): keep the last known state
        if ended or missing >= 15:
            ts.active = False
            state = await app_state(page)
            if state["script"] not in ("running", "rerunRequested") and not state["status"]:
                if len(ts.problems) > 20:
                    return
                missing = 0
                await trainer_start(page, ts, opts)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def open_trainer(browser: Any, server: str, opts: Options, ts: TrainerState) -> tuple[Any, Any]:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    info = _pretrain()
    t0 = time.perf_counter()
    await page.goto(page_url(server, info))
    ts.page_s = round((await wait_rendered(page, info, t0, 120.0, opts.quiet))[0], 2)
    ts.max_steps_requested = opts.steps
    ts.max_steps_set = await page.get_by_label("Steps", exact=True).input_value()
    if ts.max_steps_set.replace(",", "") != str(opts.steps):
        ts.max_steps_set = await _set_number(page, "Steps", opts.steps, opts)
    t1 = time.perf_counter()
    started = await trainer_start(page, ts, opts)
    ts.start_s = round(time.perf_counter() - t1, 2)
    if not started:
        raise RuntimeError(f"the trainer could not start a run: {ts.problems or ts.progress}")
    return context, page


# ============================================================================================== the visitors
@dataclass
class Visit:
    n: int
    session: int
    round: int
    page: str
    how: str  # "load" (goto) or "click" (sidebar link)
    seconds: float | None
    failures: list[str]
    busy: list[str]
    busy_check: str = ""  # "", "busy" (the message came), "no-message", "error", "disabled", "skipped", "raced"
    busy_s: float | None = None  # from the click on Start training to the busy message
    t: float = 0.0  # when the visit started, seconds since the level started


async def busy_check(page: Any, ts: TrainerState, opts: Options) -> tuple[str, list[str], list[str], float | None]:
    """Click Start training while the trainer's job runs; the page must answer with the busy message.

    Returns (outcome, failures, busy messages, seconds from the click to the message).
    """
    from playwright.async_api import Error as PlaywrightError

    for _ in range(50):  # e.g. the trainer is between two runs
        if ts.active:
            break
        await asyncio.sleep(0.2)
    else:
        return "skipped", [], [], None
    button = page.get_by_role("button", name="Start training")
    try:
        await button.first.wait_for(timeout=15_000)
    except PlaywrightError:
        return "no-button", ["no Start training button on Pretraining"], [], None
    if await button.first.is_disabled():
        _, busy = problems(await app_state(page))
        return ("busy" if busy else "disabled"), [], busy, None
    await button.first.click()
    t0 = time.perf_counter()
    fails, busy = [], []
    wait_s = min(opts.visit_timeout, 60.0)  # the message comes with the rerun, which a busy server starts late
    while time.perf_counter() - t0 < wait_s:
        fails, busy = problems(await app_state(page))
        if busy or fails:
            break
        await asyncio.sleep(0.1)
    seconds = round(time.perf_counter() - t0, 3)
    if busy:
        return "busy", fails, busy, seconds
    if fails:
        return "error", fails, busy, None
    progress = await read_progress(page)
    if ts.active:  # the trainer's job still runs: the click must have been refused with the busy message
        return "no-message", [f"Start training while a job ran gave no busy message within {wait_s:.0f} s "
                              f"(progress: {progress!r})"], [], None
    return "raced", [], [], None  # the trainer's run ended around the click; not the app's fault


_SHOTS = {"taken": 0}
MAX_SHOTS = 10


async def _failure_screenshot(page: Any, opts: Options, name: str) -> None:
    """A full-page screenshot beside the report (at most MAX_SHOTS per run)."""
    if not opts.out or _SHOTS["taken"] >= MAX_SHOTS:
        return
    _SHOTS["taken"] += 1
    folder = opts.out.parent / (opts.out.stem + "_failures")
    with contextlib.suppress(Exception):
        folder.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(folder / f"{name}.png"), full_page=True, timeout=20_000)


def hostile_count(n: int, opts: Options) -> int:
    """How many of a level's N sessions are hostile: ``opts.hostile``, leaving at least one plain visitor."""
    return max(0, min(opts.hostile, n - 1))


async def hostile_step(page: Any, k: int, server: str, ts: TrainerState, opts: Options, n: int, sid: int,
                       probes: list[hostile.Probe]) -> None:
    """One hostile probe (see bench/load_hostile.py); a crash of the probe itself is a failure, not a leak."""
    try:
        probe = await hostile.run_probe(page, k, server, sys.modules[__name__], ts, opts, n, sid)
    except asyncio.CancelledError:
        raise
    except Exception as err:  # noqa: BLE001 - e.g. a render timeout: a result, not a crash of the bench
        names = hostile.probe_names()
        probe = hostile.Probe(n, sid, names[k % len(names)], "", failures=[f"{type(err).__name__}: "
                                                                           f"{str(err).splitlines()[0][:300]}"])
    probes.append(probe)
    if opts.verbose and (probe.leaks or probe.failures):
        print(f"  N={n} s{sid} hostile {probe.name}: leaks {probe.leaks} failures {probe.failures}", flush=True)


async def walker(browser: Any, server: str, n: int, sid: int, pages: list[PageInfo], opts: Options,
                 ts: TrainerState, visits: list[Visit], t_level: float, deadline: float,
                 probes: list[hostile.Probe] | None = None) -> None:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = await context.new_page()
        current: str | None = None
        is_hostile = probes is not None
        do_busy = (opts.busy_sessions == 0 or sid < opts.busy_sessions) and not is_hostile
        k = sid * len(pages)  # hostile sessions start at different probes, so together they try more of them
        for rnd in range(opts.rounds):
            for info in pages:
                if time.monotonic() >= deadline:
                    return
                visit = Visit(n, sid, rnd, info.title, "", None, [], [], t=round(time.perf_counter() - t_level, 2))
                timeout = max(5.0, min(opts.visit_timeout, deadline - time.monotonic()))
                try:
                    link = None
                    if opts.nav == "click" and current is not None and current != info.path:
                        link = await sidebar_link(page, info)
                    t0 = time.perf_counter()
                    if link is not None:
                        visit.how = "click"
                        await link.click(timeout=timeout * 1000)
                    else:
                        visit.how = "load"
                        await page.goto(page_url(server, info), timeout=timeout * 1000)
                    seconds, state = await wait_rendered(page, info, t0, timeout, opts.quiet)
                    current = info.path
                    visit.failures, visit.busy = problems(state)
                    visit.seconds = None if visit.failures else round(seconds, 3)
                    if info.path == PRETRAIN and do_busy and not visit.failures:
                        visit.busy_check, fails, busy, visit.busy_s = await busy_check(page, ts, opts)
                        visit.failures += fails
                        visit.busy += busy
                except RenderTimeout as err:
                    if time.monotonic() >= deadline:
                        return  # cut by the time limit, not a failure
                    visit.failures.append(f"timeout: {err}")
                    current = None  # reload next time
                except asyncio.CancelledError:
                    raise
                except Exception as err:  # noqa: BLE001 - a broken visit is a result, not a crash of the bench
                    if time.monotonic() >= deadline:
                        return
                    visit.failures.append(f"{type(err).__name__}: {str(err).splitlines()[0][:300]}")
                    current = None
                visits.append(visit)
                if is_hostile and time.monotonic() < deadline:
                    await hostile_step(page, k, server, ts, opts, n, sid, probes)
                    k, current = k + 1, None  # the probe left the page: load the next one
                if visit.failures:
                    await _failure_screenshot(page, opts, f"n{n}-s{sid}-r{rnd}-{info.path[6:-3]}")
                    if opts.verbose:
                        print(f"  N={n} s{sid} {info.title}: FAIL {visit.failures}", flush=True)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(context.close(), 15)


# ============================================================================================== report
def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0…100); None for no values."""
    if not values:
        return None
    xs = sorted(values)
    k = (len(xs) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summarize(n: int, visits: list[Visit], peak_rss: int, elapsed: float, truncated: bool,
              steps: tuple[int, int], server_cpu_s: float | None = None,
              client_cpu_s: float | None = None, probes: list[hostile.Probe] | None = None) -> dict[str, Any]:
    times = [v.seconds for v in visits if v.seconds is not None]
    per_page: dict[str, list[float]] = {}
    for v in visits:
        if v.seconds is not None:
            per_page.setdefault(v.page, []).append(v.seconds)
    fails = [{"session": v.session, "round": v.round, "page": v.page, "failures": v.failures}
             for v in visits if v.failures]
    checks = [v.busy_check for v in visits if v.busy_check]
    r3 = lambda x: None if x is None else round(x, 3)  # noqa: E731
    return {
        "n": n, "renders": len(times), "visits": len(visits),
        "median_s": r3(statistics.median(times)) if times else None, "p95_s": r3(percentile(times, 95)),
        "max_s": r3(max(times)) if times else None,
        "median_click_s": r3(statistics.median(t)) if (t := [v.seconds for v in visits
                                                            if v.seconds is not None and v.how == "click"]) else None,
        "median_load_s": r3(statistics.median(t)) if (t := [v.seconds for v in visits
                                                           if v.seconds is not None and v.how == "load"]) else None,
        "failures": len(fails), "failure_details": fails[:50],
        "busy_seen": sum(1 for v in visits if v.busy), "busy_checks": {c: checks.count(c) for c in sorted(set(checks))},
        "busy_examples": sorted({b for v in visits for b in v.busy})[:3],
        "busy_message_median_s": r3(statistics.median(b)) if (b := [v.busy_s for v in visits
                                                                   if v.busy_s is not None]) else None,
        "peak_rss_mib": round(peak_rss / 2**20, 1), "elapsed_s": round(elapsed, 1), "truncated": truncated,
        "server_cpu_pct": round(100 * server_cpu_s / elapsed) if server_cpu_s is not None and elapsed > 0 else None,
        # this process and chromium (the simulated visitors share the machine's CPUs with the server)
        "client_cpu_pct": round(100 * client_cpu_s / elapsed) if client_cpu_s is not None and elapsed > 0 else None,
        "trainer_steps": list(steps),
        "trainer_steps_per_s": round((steps[1] - steps[0]) / elapsed, 2) if elapsed > 0 and steps[1] >= steps[0]
        else None,
        "per_page_median_s": {k: r3(statistics.median(v)) for k, v in per_page.items()},
        **hostile.summarize_probes(probes or []),
        "visits_detail": [asdict(v) for v in visits],
    }


def format_table(levels: list[dict[str, Any]]) -> str:
    head = f"{'N':>3} {'renders':>8} {'median s':>9} {'p95 s':>7} {'max s':>7} {'failures':>9} {'busy':>5} " \
           f"{'probes':>7} {'leaks':>6} {'peak RSS MiB':>13} {'server CPU %':>13} {'train steps/s':>14}"
    rows = [head, "-" * len(head)]
    f = lambda x: "—" if x is None else f"{x:.2f}"  # noqa: E731
    for lv in levels:
        rows.append(f"{lv['n']:>3} {lv['renders']:>8} {f(lv['median_s']):>9} {f(lv['p95_s']):>7} "
                    f"{f(lv['max_s']):>7} {lv['failures']:>9} {lv['busy_seen']:>5} {lv['hostile_probes']:>7} "
                    f"{lv['cross_visitor_access']:>6} {lv['peak_rss_mib']:>13.1f} "
                    f"{lv['server_cpu_pct'] if lv['server_cpu_pct'] is not None else '—':>13} "
                    f"{f(lv['trainer_steps_per_s']):>14}"
                    + ("  (cut by the time limit)" if lv["truncated"] else ""))
    return "\n".join(rows)


def server_log_problems(log_path: Path) -> list[str]:
    """Tracebacks and logged errors from the server's output (the last 20)."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return []
    out, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Traceback") or " ERROR " in line or "Exception" in line.split(":")[0]:
            out.append("\n".join(lines[i:i + 12])[:1500])
    return out[-20:]


# ============================================================================================== the run
async def run_levels(server: str, pid: int, opts: Options, t_start: float, result: dict[str, Any],
                     runs_dir: Path | None = None) -> None:
    from playwright.async_api import async_playwright

    deadline = t_start + opts.max_seconds - 10.0  # keep a few seconds for closing and the report
    pages = [next(p for p in PAGES if p.path == path) for path in opts.pages]
    sampler = RssSampler(pid)
    sampler.start()
    ts = TrainerState(runs_dir=runs_dir)
    result["trainer"] = ts
    stop = asyncio.Event()
    trainer_task = None
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            try:
                _, tpage = await asyncio.wait_for(open_trainer(browser, server, opts, ts),
                                                  max(10.0, deadline - time.monotonic()))
                result["trainer_ready_s"] = round(time.monotonic() - t_start, 1)
                trainer_task = asyncio.create_task(trainer_loop(tpage, ts, opts, stop))
                await asyncio.sleep(1.0)  # let the dashboard settle into its polling
                result["baseline_rss_mib"] = round(sampler.take_peak() / 2**20, 1)
                if opts.verbose:
                    print(f"trainer ready after {result['trainer_ready_s']} s (Pretraining's first load "
                          f"{ts.page_s} s, Start → job {ts.start_s} s): run {ts.run_ids[-1] if ts.run_ids else '?'} "
                          f"(steps requested "
                          f"{ts.max_steps_requested}, widget says {ts.max_steps_set}); server RSS "
                          f"{result['baseline_rss_mib']} MiB", flush=True)
                for n in opts.sessions:
                    if time.monotonic() >= deadline:
                        result["skipped_levels"].append(n)
                        continue
                    sampler.take_peak()
                    visits: list[Visit] = []
                    probes: list[hostile.Probe] = []
                    t_level = time.perf_counter()
                    step0, cpu0, all0 = ts.step, tree_cpu_seconds(pid), tree_cpu_seconds(os.getpid())
                    bad = n - hostile_count(n, opts)  # sessions bad … n-1 are hostile
                    tasks = [asyncio.create_task(walker(browser, server, n, i, pages, opts, ts, visits, t_level,
                                                        deadline, probes if i >= bad else None))
                             for i in range(n)]
                    done, pending = await asyncio.wait(tasks, timeout=max(1.0, deadline - time.monotonic() + 5))
                    for t in pending:
                        t.cancel()
                    if pending:
                        await asyncio.wait(pending, timeout=20)
                    for t in done:
                        if t.exception() is not None:
                            visits.append(Visit(n, -1, -1, "-", "", None, [f"session crashed: {t.exception()!r}"],
                                                []))
                    truncated = bool(pending) or time.monotonic() >= deadline
                    server_cpu = tree_cpu_seconds(pid) - cpu0
                    client_cpu = tree_cpu_seconds(os.getpid()) - all0 - server_cpu
                    level = summarize(n, visits, sampler.take_peak(), time.perf_counter() - t_level, truncated,
                                      (step0, ts.step), server_cpu, client_cpu, probes)
                    result["levels"].append(level)
                    if opts.verbose:
                        print(format_table([level]).splitlines()[-1], f"  (trainer: {ts.progress})", flush=True)
            finally:
                stop.set()
                if trainer_task is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(trainer_task, 10)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(browser.close(), 20)
    finally:
        sampler.stop()
        result["overall_peak_rss_mib"] = round(sampler.overall_peak / 2**20, 1)


def run_load_test(opts: Options) -> dict[str, Any]:
    """Run the whole load test (server, trainer, every level) and return the report; writes ``opts.out``."""
    t_start = time.monotonic()
    _SHOTS["taken"] = 0
    result: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"), "complete": False, "levels": [], "skipped_levels": [],
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "loadavg_before": os.getloadavg()},
    }
    proc = None
    with tempfile.TemporaryDirectory(prefix="llmlab-load-") as tmp:
        work = Path(tmp)
        try:
            proc, server, log_path = start_server(work, free_port())
            result["server_start_s"] = round(time.monotonic() - t_start, 1)
            if opts.verbose:
                print(f"server {server} (pid {proc.pid}, LLMLAB_DEMO=1) up in {result['server_start_s']} s",
                      flush=True)
            try:
                asyncio.run(run_levels(server, proc.pid, opts, t_start, result, work / "runs"))
            except Exception as err:  # noqa: BLE001 - report what was measured, with the reason it stopped
                result["error"] = f"{type(err).__name__}: {err}"
            result["server_exit_code_during_run"] = proc.poll()
            result["server_log_problems"] = server_log_problems(log_path)
            if opts.out:  # the whole server log beside the report: tracebacks under load are findings
                opts.out.parent.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(OSError):
                    opts.out.with_suffix(".server.log").write_text(log_path.read_text(errors="replace"))
        finally:
            stop_server(proc)
    if isinstance(result.get("trainer"), TrainerState):
        result["trainer"] = asdict(result["trainer"])
    result["machine"]["loadavg_after"] = os.getloadavg()
    result["elapsed_s"] = round(time.monotonic() - t_start, 1)
    result["complete"] = ("error" not in result and not result["skipped_levels"]
                          and all(not lv["truncated"] for lv in result["levels"]))
    result["total_failures"] = sum(lv["failures"] + lv["hostile_failures"] for lv in result["levels"])
    result["cross_visitor_access"] = sum(lv["cross_visitor_access"] for lv in result["levels"])
    if opts.out:
        opts.out.parent.mkdir(parents=True, exist_ok=True)
        opts.out.write_text(json.dumps(result, indent=2, default=str))
    return result


def parse_args(argv: list[str] | None = None) -> Options:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, nargs="+", default=[1, 5, 10], help="concurrent sessions per level")
    ap.add_argument("--rounds", type=int, default=1, help="passes over the pages per session")
    ap.add_argument("--pages", nargs="+", default=None,
                    help="page paths or titles to walk (default: every page of core.journey.PAGES, in order)")
    ap.add_argument("--max-seconds", type=float, default=600.0, help="time limit for the whole run")
    ap.add_argument("--steps", type=int, default=2000, help="steps of the trainer's run (new runs start as needed)")
    ap.add_argument("--nav", choices=["click", "goto"], default="click",
                    help="click: sidebar links after one full load (default); goto: a full page load every visit")
    ap.add_argument("--busy-sessions", type=int, default=0,
                    help="sessions per level that click Start training on Pretraining (0 = all)")
    ap.add_argument("--hostile", type=int, default=2,
                    help="sessions per level (at most N - 1) that also probe other visitors' runs and over-cap values")
    ap.add_argument("--visit-timeout", type=float, default=90.0, help="seconds before a page counts as failed")
    ap.add_argument("--quiet", type=float, default=0.5, help="seconds a page must stay idle to count as rendered")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON report")
    ap.add_argument("--quick", action="store_true", help="smoke check: N = 1, 2 and one round")
    a = ap.parse_args(argv)
    pages = [p.path for p in PAGES]
    if a.pages:
        by_name = {p.path: p.path for p in PAGES} | {p.title.lower(): p.path for p in PAGES} \
            | {p.path.removeprefix("views/").removesuffix(".py"): p.path for p in PAGES}
        try:
            pages = [by_name[x if x in by_name else x.lower()] for x in a.pages]
        except KeyError as err:
            ap.error(f"unknown page {err}; choose from {[p.path for p in PAGES]}")
    return Options(sessions=[1, 2] if a.quick else a.sessions, rounds=1 if a.quick else a.rounds, pages=pages,
                   max_seconds=a.max_seconds, steps=a.steps, nav=a.nav, busy_sessions=a.busy_sessions,
                   hostile=a.hostile,
                   visit_timeout=a.visit_timeout, quiet=a.quiet, out=a.out)


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} not found: install Debian's chromium (or set LLMLAB_CHROMIUM)", file=sys.stderr)
        return 2
    # SIGTERM behaves like Ctrl-C, so the finally blocks stop the server and the browser.
    signal.signal(signal.SIGTERM, _interrupt)
    result = run_load_test(opts)
    print()
    print(f"Load test: {len(opts.pages)} pages × {opts.rounds} round(s) per session, nav={opts.nav}, "
          f"LLMLAB_DEMO=1, one run training throughout; {result['machine']['cpus']} CPUs, load average "
          f"{result['machine']['loadavg_before'][0]:.1f} → {result['machine']['loadavg_after'][0]:.1f}")
    print(format_table(result["levels"]))
    cpu = ", ".join(f"N={lv['n']}: server {lv['server_cpu_pct']} %, browsers {lv['client_cpu_pct']} %"
                    for lv in result["levels"])
    if cpu:
        print(f"CPU (100 % = one core): {cpu}")
    trainer = result.get("trainer") or {}
    print(f"trainer: {trainer.get('starts', 0)} run(s) started, last progress {trainer.get('progress', '')!r}"
          + (f", problems: {trainer['problems'][:3]}" if trainer.get("problems") else ""))
    for lv in result["levels"]:
        for f in lv["failure_details"][:10]:
            print(f"  N={lv['n']} session {f['session']} {f['page']}: {f['failures']}")
    if result["skipped_levels"]:
        print(f"skipped by the time limit: N = {result['skipped_levels']}")
    if result.get("server_log_problems"):
        print(f"server log: {len(result['server_log_problems'])} traceback(s)/error(s); first:\n"
              + result["server_log_problems"][0][:800])
    if result.get("error"):
        print(f"stopped early: {result['error']}")
    if opts.out:
        print(f"JSON: {opts.out}")
    for lv in result["levels"]:
        for d in lv["hostile_details"][:10]:
            print(f"  N={lv['n']} hostile session {d['session']} {d['name']}: leaks {d['leaks']} "
                  f"failures {d['failures']}")
    print(f"cross-visitor access: {result['cross_visitor_access']} of "
          f"{sum(lv['hostile_probes'] for lv in result['levels'])} hostile probes")
    ok = result["total_failures"] == 0 and result["cross_visitor_access"] == 0 and "error" not in result
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
