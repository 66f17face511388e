"""The two ways in: the Makefile (``make run`` / ``make test``) and ``pip install .`` (the ``llm-lab`` command).

The install test builds the project from a copy of the files a wheel needs, installs it (not editable) into a
fresh virtual environment and uses it from a folder outside the checkout, so it proves the installed ``core``
finds its shipped files (GPT-2's ranks, the built-in datasets) without the repository around it. It fails, and
says why, when it cannot build: it is never skipped.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_imports import core_module_names

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pip carries the same parser
    from pip._vendor import tomli as tomllib

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CPU_INDEX_LINE = "--extra-index-url https://download.pytorch.org/whl/cpu"


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment minus anything that would put the checkout on the import path or steer make."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "MAKEFLAGS", "MAKELEVEL", "MFLAGS"}}
    return {**env, "PIP_DISABLE_PIP_VERSION_CHECK": "1", **extra}


def _make(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    if shutil.which("make") is None:
        pytest.fail("`make` is not installed; the README's first commands need it (macOS: xcode-select --install).")
    return subprocess.run(["make", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=timeout,
                          env=_clean_env())


def _pins(lines: list[str]) -> list[str]:
    return [s for s in (line.strip() for line in lines) if s and not s.startswith(("#", "-"))]


# ---- the Makefile -------------------------------------------------------------------------------------------------


def test_make_help_run_and_test_exist(tmp_path):
    helped = _make()
    assert helped.returncode == 0, helped.stderr
    for target in ("run", "test", "setup", "clean-venv"):
        assert f"make {target} " in helped.stdout, helped.stdout
    venv = f"VENV={tmp_path / 'venv'}"  # a dry run must not touch the real .venv either way
    run = _make("-n", "run", venv, "STREAMLIT_ARGS=--server.port 8600")
    assert run.returncode == 0, run.stderr
    assert "-m venv" in run.stdout and "streamlit run app.py --server.port 8600" in run.stdout
    test = _make("-n", "test", venv, "PYTEST_ARGS=tests/test_layout.py -x")
    assert test.returncode == 0, test.stderr
    assert "requirements-dev" in test.stdout and "-m pytest tests/test_layout.py -x" in test.stdout
    assert not (tmp_path / "venv").exists()


def test_the_readme_starts_with_make_run_and_make_test_and_ci_runs_make_test():
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].strip() for line in first_block.splitlines() if line.strip()]
    assert commands == ["make run", "make test"], commands
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert ci[-1] == "exec make test", ci[-1]


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def _probe(tmp_path: Path, url: str, *extra: str) -> tuple[float, str, str]:
    """Run the Makefile's probe against ``url``: (seconds, what it printed, the requirements pip would read)."""
    venv = tmp_path / "venv"
    start = time.monotonic()
    done = _make("-s", "pip-requirements", f"VENV={venv}", f"PYTHON={sys.executable}", f"TORCH_INDEX_URL={url}",
                 "UNAME=Linux", *extra, timeout=30)
    assert done.returncode == 0, done.stderr
    return time.monotonic() - start, done.stdout, (venv / ".pip-requirements.txt").read_text()


def test_probe_leaves_the_cpu_index_out_when_it_hangs_or_refuses(tmp_path):
    # A server that accepts the connection and never answers: the slow kind of unreachable.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        seconds, said, reqs = _probe(tmp_path, f"http://127.0.0.1:{silent.getsockname()[1]}/whl/cpu")
    finally:
        silent.close()
    assert seconds < 10, f"the probe took {seconds:.1f} s"
    assert "not reachable" in said and len(said.strip().splitlines()) == 1, said
    assert "--extra-index-url" not in reqs and "torch==" in reqs
    # A closed port: refused at once.
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    seconds, said, reqs = _probe(tmp_path, f"http://127.0.0.1:{port}/whl/cpu")
    assert seconds < 10 and "not reachable" in said and "--extra-index-url" not in reqs


def test_probe_keeps_the_cpu_index_when_it_answers_and_macos_never_needs_it(tmp_path):
    server = http.server.HTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/whl/cpu"
        _, said, reqs = _probe(tmp_path, url)
        assert said == "" and reqs == (ROOT / "requirements.txt").read_text()
        # CPU_INDEX=no (a GPU machine) and macOS leave it out without probing.
        _, said, reqs = _probe(tmp_path, url, "CPU_INDEX=no")
        assert "CUDA" in said and "--extra-index-url" not in reqs
        _, said, reqs = _probe(tmp_path, url, "UNAME=Darwin")
        assert "macOS" in said and "--extra-index-url" not in reqs and "torch==" in reqs
    finally:
        server.shutdown()
        server.server_close()


# ---- pyproject.toml -----------------------------------------------------------------------------------------------


def test_pyproject_pins_match_the_requirements_files():
    runtime = (ROOT / "requirements.txt").read_text().splitlines()
    assert CPU_INDEX_LINE in runtime, "requirements.txt must keep PyTorch's CPU index for Community Cloud"
    assert PYPROJECT["project"]["dependencies"] == _pins(runtime)
    dev = _pins((ROOT / "requirements-dev.txt").read_text().splitlines())
    assert PYPROJECT["project"]["optional-dependencies"]["dev"] == dev
    assert PYPROJECT["project"]["scripts"] == {"llm-lab": "core.cli:main"}


def test_every_core_package_is_packaged():
    listed = PYPROJECT["tool"]["setuptools"]["packages"]
    on_disk = sorted(
        ".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "core").rglob("__init__.py")
        if "__pycache__" not in init.parts
    )
    missing = sorted(set(on_disk) - set(listed))
    assert not missing, f"add {missing} to [tool.setuptools] packages in pyproject.toml, or they are not installed"
    assert PYPROJECT["tool"]["setuptools"]["package-dir"] == {"core._assets": "assets"}
    assert sorted(set(listed) - set(on_disk)) == ["core._assets"]


# ---- pip install . ------------------------------------------------------------------------------------------------

# The files a wheel is built from (the sdist's content); nothing else of the checkout is copied.
BUILD_FILES = ("pyproject.toml", "README.md", "core", "assets")

INSTALLED_CHECK = textwrap.dedent("""
    import importlib, json, sys
    import core, core.paths
    from core.datasets import list_datasets, load_corpus
    from core.tokenizers import get_tokenizer
    from core.tokenizers.gpt2 import gpt2_ranks_path
    modules = {name: importlib.import_module(name).__file__ for name in json.loads(sys.argv[1])}
    print(json.dumps({
        "modules": modules,
        "assets": str(core.paths.assets_dir()),
        "ranks": str(gpt2_ranks_path()),
        "ids": get_tokenizer("gpt2").encode("Hello, world"),
        "builtin": [i.name for i in list_datasets() if i.source == "builtin"],
        "corpus_chars": len(load_corpus("builtin-corpus")),
    }))
""")


def _run(cmd: list[str], cwd: Path, what: str, timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=_clean_env())
    if done.returncode != 0:
        pytest.fail(f"{what} failed (exit {done.returncode}): {' '.join(cmd)}\n{done.stdout[-3000:]}\n"
                    f"{done.stderr[-3000:]}")
    return done


def _venv_with_our_packages(venv: Path, cwd: Path) -> Path:
    """A fresh venv that also sees this interpreter's packages (torch etc.), so nothing is downloaded.

    ``--system-site-packages`` would not do: from inside a venv it exposes the *base* Python's packages, not the
    venv's. So the new venv gets a ``.pth`` line naming our site-packages, after its own (where ``core`` goes).
    ``--without-pip`` keeps the bundled pip and setuptools out, which would shadow ours (old setuptools cannot
    build a wheel without the ``wheel`` package).
    """
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd, "creating a virtual environment")
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd,
                   "asking the new venv for its site-packages").stdout.strip()
    ours = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (Path(purelib) / "_llmlab_test_parent.pth").write_text("".join(f"{p}\n" for p in ours))
    return python


@pytest.mark.slow
def test_pip_install_gives_a_working_core_and_llm_lab_outside_the_checkout(tmp_path):
    try:
        import setuptools
    except ModuleNotFoundError:
        pytest.fail("setuptools is missing from this environment: pip install -r requirements-dev.txt")
    assert int(setuptools.__version__.split(".")[0]) >= 70, f"setuptools {setuptools.__version__} is too old"
    src, away = tmp_path / "src", tmp_path / "elsewhere"
    away.mkdir()
    for name in BUILD_FILES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "screenshots"))
        else:
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    venv = tmp_path / "venv"
    python = _venv_with_our_packages(venv, away)
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", str(src)], away,
         "building and installing the project (pip install --no-deps --no-build-isolation --no-index .)")

    cli = _run([str(python.parent / "llm-lab"), "--help"], away, "llm-lab --help")
    for command in ("pretrain", "generate", "export", "runs", "data", "classify", "instruct"):
        assert command in cli.stdout, cli.stdout

    done = _run([str(python), "-c", INSTALLED_CHECK, json.dumps(core_module_names())], away,
                "using the installed core")
    got = json.loads(done.stdout.strip().splitlines()[-1])
    root = str(ROOT.resolve())
    for name, file in got["modules"].items():
        assert Path(file).resolve().is_relative_to(venv.resolve()), f"{name} came from {file}, not the venv"
        assert not file.startswith(root)
    assert Path(got["assets"]).is_relative_to(venv.resolve()) and Path(got["assets"]).name == "_assets"
    assert Path(got["ranks"]).is_relative_to(Path(got["assets"]))
    assert got["ids"] == [15496, 11, 995]
    assert got["builtin"] == ["builtin-corpus", "builtin-instructions", "builtin-spam"]
    assert got["corpus_chars"] > 600_000
