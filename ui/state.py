"""Session-state keys and the active-model spec shared by every page.

The spec (see :mod:`core.model_spec`) is a small JSON-able dict, so it survives reruns, can be shown in the
sidebar and hashed cheaply by the caches.
"""

from __future__ import annotations

import os

import streamlit as st

from core.limits import Limits, current_limits, demo_requested
from core.model_spec import DEFAULT_MODEL, describe_spec  # noqa: F401  (pages import them here)

ACTIVE_MODEL = "active_model"


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
