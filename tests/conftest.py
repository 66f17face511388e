"""Shared fixtures: tiny seeded models and paths to optional real data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from core.config import GPTConfig
from core.model import GPTModel

ROOT = Path(__file__).resolve().parents[1]
# Copies of the book's real data files live beside the repository on dev machines and in CI; never committed.
SHARED_DATA = Path(os.environ.get("LLMLAB_SHARED_DATA", ROOT.parent / "shared" / "data"))

# One thread: most test tensors are tiny, where thread start-up costs more than the math saves.
torch.set_num_threads(1)


@pytest.fixture
def tiny_cfg() -> GPTConfig:
    """Small enough for a forward pass in milliseconds, big enough to have several heads and blocks."""
    return GPTConfig(vocab_size=101, context_length=32, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)


@pytest.fixture
def tiny_model(tiny_cfg) -> GPTModel:
    torch.manual_seed(0)
    return GPTModel(tiny_cfg).eval()


@pytest.fixture
def shared_data() -> Path:
    return SHARED_DATA


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """Empty runs and data folders of this test's own (``LLMLAB_RUNS_DIR`` is read on every call); every job
    started meanwhile is stopped and waited for at the end (jobs live in the process-wide registry)."""
    from core.jobs import registry

    folder = tmp_path / "runs"
    monkeypatch.setenv("LLMLAB_RUNS_DIR", str(folder))
    monkeypatch.setenv("LLMLAB_DATA_DIR", str(tmp_path / "data"))
    yield folder
    for job in registry().list():
        job.stop()
    for job in registry().list():
        assert job.wait(60), f"job {job.run_id} did not stop"


def open_code(at):
    """Open every "Show the code" expander of the page (their source is sent only while open) and rerun."""
    keys = [k for k in at.session_state.keys() if k.startswith("code_")]
    assert keys, "the page has no 'Show the code' expander"
    for key in keys:
        at.session_state[key] = True
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def app_page(page: str, **params: str):
    """A new AppTest session of the whole app (router and sidebar) on ``page``, with URL ``params``; it must
    render without an exception."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def open_page(path: str, timeout: float = 120):
    """A fresh AppTest session of the app (its router and sidebar) switched to the page ``path``."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
    at.run()
    at.switch_page(path)
    at.run()
    return at
