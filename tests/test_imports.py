"""`import core` must work without Streamlit: people script it from notebooks and the CLI.

The modules are found by walking the package on disk, so a module added to or removed from ``core`` needs no
edit here.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def core_module_names(root: Path = ROOT) -> list[str]:
    """Every importable module of the ``core`` package (``core`` itself first), found without importing any.

    ``core.__main__`` is left out: importing it would run the command line.
    """
    names = ["core"]
    pending = [(root / "core", "core.")]
    while pending:
        folder, prefix = pending.pop()
        for info in pkgutil.iter_modules([str(folder)], prefix):
            if info.name.endswith(".__main__"):
                continue
            names.append(info.name)
            if info.ispkg:
                pending.append((folder / info.name.rsplit(".", 1)[-1], info.name + "."))
    return sorted(names, key=lambda n: (n != "core", n))


def test_the_walk_finds_modules_and_subpackages():
    names = core_module_names()
    assert names[0] == "core" and len(names) == len(set(names))
    for expected in ("core.config", "core.errors", "core.tokenizers", "core.tokenizers.bpe",
                     "core.datasets", "core.datasets.registry"):
        assert expected in names
    assert "core.__main__" not in names


IMPORT_ALL = """
import importlib, json, sys
culprits = {}
for name in json.loads(sys.argv[1]):
    before = "streamlit" in sys.modules
    importlib.import_module(name)
    if not before and "streamlit" in sys.modules:
        culprits[name] = sorted(k for k in sys.modules if k.split(".")[0] == "streamlit")[:3]
print(json.dumps({"culprits": culprits, "streamlit": "streamlit" in sys.modules}))
"""


def test_core_does_not_import_streamlit():
    names = core_module_names()
    out = subprocess.run([sys.executable, "-c", IMPORT_ALL, json.dumps(names)], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report == {"culprits": {}, "streamlit": False}, f"these core modules import Streamlit: {report}"


def test_the_import_check_itself_names_a_culprit(tmp_path):
    (tmp_path / "streamlit.py").write_text("")  # a stand-in, so the check runs without the real one
    (tmp_path / "uses_streamlit.py").write_text("import streamlit\n")
    env = {"PYTHONPATH": str(tmp_path), "PATH": ""}
    out = subprocess.run([sys.executable, "-c", IMPORT_ALL, json.dumps(["json", "uses_streamlit"])], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report == {"culprits": {"uses_streamlit": ["streamlit"]}, "streamlit": True}
