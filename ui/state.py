"""Session-state keys and the active-model spec shared by every page.

The spec (see :mod:`core.model_spec`) is a small JSON-able dict, so it survives reruns, can be shown in the
sidebar and hashed cheaply by the caches.
"""

from __future__ import annotations

import os
import re

import streamlit as st

from core.access import new_visitor_token
from core.limits import Limits, current_limits, demo_requested
from core.model_spec import DEFAULT_MODEL, describe_spec  # noqa: F401  (pages import them here)

ACTIVE_MODEL = "active_model"
VISITOR = "visitor"
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{24}")


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


def visitor() -> str:
    """This browser's private visitor token (see :mod:`core.access`): what makes its runs its own.

    Kept in the session and, in the hosted demo, in the URL (``?v=…``), so a reload or a bookmarked link keeps the
    visitor's runs; a token that does not look like one is replaced by a fresh one.
    """
    token = st.session_state.get(VISITOR)
    if token is None:
        given = st.query_params.get("v")
        token = given if isinstance(given, str) and TOKEN_RE.fullmatch(given) else new_visitor_token()
        st.session_state[VISITOR] = token
    if limits().demo and st.query_params.get("v") != token:
        st.query_params["v"] = token
    return token


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
