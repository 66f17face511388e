"""Helpers for the "Download as script" tests: run the script a page offers and compare what it prints with what
the page shows (the page's metrics, by label)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.page_scripts import parse_printed
from tests import conftest
from tests.conftest import ROOT
from ui.widgets import SCRIPT_TEXT


def open_page(path: str) -> AppTest:
    at = conftest.open_page(path)
    assert not at.exception, [e.value for e in at.exception]
    return at


def run_script(text: str, folder: Path, timeout: float = 300) -> dict[str, str]:
    """Run ``text`` as a file in ``folder`` (outside the checkout, ``core`` found through PYTHONPATH, as after
    ``pip install .``); its ``label: value`` lines."""
    path = folder / "exported.py"
    path.write_text(text, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(path)], cwd=folder, capture_output=True, text=True, timeout=timeout,
                          env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return parse_printed(done.stdout)


def page_metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def assert_script_matches_page(at: AppTest, page: str, folder: Path, labels: list[str]) -> dict[str, str]:
    """The page's script prints each of ``labels`` with the value the page shows; returns what it printed."""
    assert not at.exception and not at.error, [e.value for e in (*at.exception, *at.error)]
    script = at.session_state[SCRIPT_TEXT + page]
    printed, shown = run_script(script, folder), page_metrics(at)
    for label in labels:
        assert label in shown, f"the page shows no {label!r}; it shows {sorted(shown)}"
        assert printed.get(label) == shown[label], (label, printed.get(label), shown[label])
    return printed
