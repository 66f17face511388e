"""Session-state keys and the active-model spec shared by every page.

The active model is described by a small JSON-able dict (never a tensor), so it survives reruns, can be shown in
the sidebar and hashed cheaply by the caches:

- ``{"kind": "preset", "name": "tiny", "seed": 123}`` — a randomly initialised preset
- ``{"kind": "run", "run_id": "...", "runs_dir": "runs"}`` — a checkpoint trained in the app or the CLI
- ``{"kind": "hf", "path": ".../model.safetensors"}`` — GPT-2 weights in Hugging Face's layout
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from core.limits import Limits, current_limits, demo_requested

ACTIVE_MODEL = "active_model"
DEFAULT_MODEL = {"kind": "preset", "name": "tiny", "seed": 123}
RUNS_DIR = Path(os.environ.get("LLMLAB_RUNS_DIR", "runs"))


def adopt_demo_secret() -> None:
    """Carry ``LLMLAB_DEMO`` from ``st.secrets`` (Streamlit Community Cloud's settings) into the environment, so
    ``core`` and background jobs see the same caps as the pages. The environment wins when both are set."""
    if "LLMLAB_DEMO" in os.environ:
        return
    try:  # load_if_toml_exists: False (no warning, no error) when there is no secrets.toml anywhere
        if not st.secrets.load_if_toml_exists():
            return
    except Exception:  # noqa: BLE001 - a malformed secrets.toml must not take the app down
        return
    if demo_requested(env={}, secrets=st.secrets):
        os.environ["LLMLAB_DEMO"] = "1"


def limits() -> Limits:
    """The caps in force: the hosted-demo caps when ``LLMLAB_DEMO`` is on, else none (see :mod:`core.limits`)."""
    return current_limits()


def active_model_spec() -> dict:
    spec = dict(st.session_state.get(ACTIVE_MODEL, DEFAULT_MODEL))
    if spec.get("kind") == "hf" and not limits().allow_gpt2:  # e.g. a session left over from before demo mode
        return dict(DEFAULT_MODEL)
    return spec


def set_active_model(spec: dict) -> None:
    st.session_state[ACTIVE_MODEL] = dict(spec)


def describe_spec(spec: dict) -> str:
    kind = spec.get("kind")
    if kind == "preset":
        return f"{spec['name']} preset, random init (seed {spec.get('seed', 123)})"
    if kind == "run":
        return f"trained run '{spec['run_id']}'"
    if kind == "hf":
        return f"GPT-2 weights from {Path(spec['path']).name}"
    return "unknown model"
