"""`import core` must work without Streamlit: people script it from notebooks and the CLI."""

import subprocess
import sys

from tests.conftest import ROOT

CORE_MODULES = ["core", "core.config", "core.model", "core.stats", "core.tokenizers", "core.data",
                "core.attention", "core.generate", "core.checkpoint", "core.lora", "core.classify",
                "core.instruct", "core.datasets", "core.train", "core.train_config", "core.runs", "core.jobs",
                "core.cli", "core.embeddings", "core.teaching"]


def test_core_does_not_import_streamlit():
    code = (
        "import importlib, sys\n"
        f"for m in {CORE_MODULES!r}:\n"
        "    importlib.import_module(m)\n"
        "bad = sorted(k for k in sys.modules if k == 'streamlit' or k.startswith('streamlit.'))\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
