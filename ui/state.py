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

ACTIVE_MODEL = "active_model"
DEFAULT_MODEL = {"kind": "preset", "name": "tiny", "seed": 123}
RUNS_DIR = Path(os.environ.get("LLMLAB_RUNS_DIR", "runs"))


def active_model_spec() -> dict:
    return dict(st.session_state.get(ACTIVE_MODEL, DEFAULT_MODEL))


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
