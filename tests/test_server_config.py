"""The server settings in ``.streamlit/config.toml``, read the way Streamlit reads them (a typo in a section or key
name is silently ignored by Streamlit, so each setting is checked through Streamlit's own config loader)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = ("runner.postScriptGC", "client.showErrorDetails", "server.maxUploadSize", "browser.gatherUsageStats")


def _options_as_streamlit_reads_them(cwd: Path) -> dict:
    code = ("import json; from streamlit import config; "
            f"print(json.dumps({{k: config.get_option(k) for k in {OPTIONS!r}}}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_project_config_is_what_streamlit_runs_with(tmp_path):
    ours = _options_as_streamlit_reads_them(ROOT)
    default = _options_as_streamlit_reads_them(tmp_path)  # no config file there: Streamlit's defaults
    # A full gc.collect(2) after every script run (each dashboard poll) held the GIL ~0.1 s with torch loaded and
    # stalled a run training in the same process (bench/dashboard_cpu.py: the server's own work 0.100 → 0.008
    # cores with it off); the default is on, so the setting must really take.
    assert default["runner.postScriptGC"] is True
    assert ours["runner.postScriptGC"] is False
    assert ours["client.showErrorDetails"] == "none"  # never a traceback in the browser
    assert ours["server.maxUploadSize"] == 50
    assert ours["browser.gatherUsageStats"] is False
