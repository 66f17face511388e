"""A real `streamlit run` server on localhost and Debian's chromium driven by Playwright.

The whole e2e directory is skipped (with a reason) when /usr/bin/chromium is missing; `.ci/run` installs it.
Screenshots go to $LLMLAB_ARTIFACTS/screenshots (default: artifacts/screenshots).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

CHROMIUM = Path(os.environ.get("LLMLAB_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("LLMLAB_ARTIFACTS", ROOT / "artifacts"))
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]


E2E_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    """Mark (and, without chromium, skip) the browser tests only: pytest hands this hook every collected item."""
    ours = [item for item in items if E2E_DIR in Path(str(item.path)).resolve().parents]
    skip = pytest.mark.skip(reason=f"no browser at {CHROMIUM} (LLMLAB_CHROMIUM names it): install Debian's chromium "
                            "(make test does, where apt-get can) to run the browser tests")
    for item in ours:
        item.add_marker(pytest.mark.e2e)
        if not CHROMIUM.exists():
            item.add_marker(skip)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def app_server(work: Path, *, inside_work: bool = False, timeout_s: float = 60.0,
               **env_extra: str) -> Iterator[str]:
    """``streamlit run app.py`` on a free localhost port with empty runs/ and data folders under ``work``.

    ``inside_work``: run the server from ``work`` (with a copy of ``.streamlit/config.toml``) so the pages show the
    runs folder as plain ``runs`` rather than a temporary path, as they do for someone who runs the app themselves.
    The file watcher is off: the tests edit no source, and a file saved elsewhere during the run (an editor, a
    checkout) would otherwise pop up Streamlit's "source changed" prompt and keep the status widget busy.
    """
    work.mkdir(parents=True, exist_ok=True)
    cwd, dirs = ROOT, {"LLMLAB_RUNS_DIR": str(work / "runs"), "LLMLAB_DATA_DIR": str(work / "data")}
    if inside_work:
        (work / ".streamlit").mkdir(exist_ok=True)
        shutil.copy(ROOT / ".streamlit" / "config.toml", work / ".streamlit" / "config.toml")
        cwd, dirs = work, {"LLMLAB_RUNS_DIR": "runs", "LLMLAB_DATA_DIR": "data"}
    port = _free_port()
    env = dict(os.environ, **dirs, PYTHONUNBUFFERED="1", **env_extra)
    log_path = work / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true", "--server.fileWatcherType", "none",
             "--browser.gatherUsageStats", "false"],
            cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.time() + timeout_s
            while True:
                try:
                    with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    if proc.poll() is not None or time.time() > deadline:
                        raise RuntimeError("streamlit did not start: " + log_path.read_text()[-2000:]) from None
                    time.sleep(0.5)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """Start the app once per session with its own empty runs/ and data directories."""
    with app_server(tmp_path_factory.mktemp("e2e")) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    yield pg
    context.close()


def wait_for_app(page, timeout_s: float = 60.0) -> float:
    """Wait until the script run is over (the 'running' status widget gone and content rendered)."""
    start = time.perf_counter()
    page.wait_for_selector('[data-testid="stAppViewContainer"]', timeout=timeout_s * 1000)
    page.wait_for_selector('[data-testid="stMainBlockContainer"] h1', timeout=timeout_s * 1000)
    # The status widget shows "Running…" while the script runs; give it a moment to appear, then to go.
    deadline = time.time() + timeout_s
    quiet_since = None
    while time.time() < deadline:
        running = page.locator('[data-testid="stStatusWidget"]').count() > 0
        if running:
            quiet_since = None
        else:
            quiet_since = quiet_since or time.time()
            if time.time() - quiet_since > 1.0:
                break
        time.sleep(0.2)
    return time.perf_counter() - start - 1.0


def screenshot(page, name: str) -> Path:
    out = ARTIFACTS / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
