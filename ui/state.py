"""Session-state keys and the active-model spec shared by every page.

The spec (see :mod:`core.model_spec`) is a small JSON-able dict, so it survives reruns, can be shown in the
sidebar and hashed cheaply by the caches.
"""

from __future__ import annotations

import os
import re

import streamlit as st

from core.access import new_visitor_token
from core.errors import LabError
from core.lab_state import MODEL_PARAM, load_choice, parse_spec_param, save_choice, spec_param
from core.limits import Limits, current_limits, demo_requested
from core.model_spec import DEFAULT_MODEL, describe_spec  # noqa: F401  (pages import them here)

ACTIVE_MODEL = "active_model"
MODEL_NOTICE = "active_model_notice"
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
    """The active model's spec: this session's choice; on a session's first run, the model the URL names
    (``?model=…``), else the one this visitor last chose (kept on the server: a new tab, a restart), else the
    default preset. It is put back in the URL on every page, so a reload or a copied link keeps it."""
    if ACTIVE_MODEL not in st.session_state:
        st.session_state[ACTIVE_MODEL] = _restored_spec()
    spec = dict(st.session_state[ACTIVE_MODEL])
    if spec.get("kind") == "hf" and not limits().allow_gpt2:  # e.g. a session left over from before demo mode
        spec = dict(DEFAULT_MODEL)
    _keep_in_url(spec)
    return spec


def _restored_spec() -> dict:
    given = st.query_params.get(MODEL_PARAM)
    if given is not None:
        try:
            return parse_spec_param(given, visitor())
        except LabError as err:
            st.session_state[MODEL_NOTICE] = f"The link's model was not loaded: {err}"
    return load_choice(visitor()) or dict(DEFAULT_MODEL)


def _keep_in_url(spec: dict) -> None:
    param = None if spec == DEFAULT_MODEL else spec_param(spec)
    if param is None:
        st.query_params.pop(MODEL_PARAM, None)
    elif st.query_params.get(MODEL_PARAM) != param:
        st.query_params[MODEL_PARAM] = param


def set_active_model(spec: dict) -> None:
    """Make ``spec`` the active model: for this session, in the URL and on the server (new tabs, restarts)."""
    st.session_state[ACTIVE_MODEL] = dict(spec)
    st.session_state.pop(MODEL_NOTICE, None)
    _keep_in_url(dict(spec))
    save_choice(visitor(), spec)


KEPT_VALUES = "_kept_widget_values"
KEPT_PAGE = "_kept_widget_page"
# Value types of widgets whose value a script may set (not buttons, uploads, downloads, chat inputs: Streamlit
# refuses those, and a file uploader records no type until it holds a file).
_SETTABLE = {"bool_value", "int_value", "double_value", "string_value", "string_array_value", "double_array_value",
             "int_array_value"}


def _value_widget_keys() -> set[str]:
    """The user keys of this session's widgets that hold a setting (not buttons, uploads or downloads).

    Reads Streamlit's widget metadata (which records each widget's value type); if a Streamlit release moves it,
    nothing is kept and the pages behave as plain Streamlit (settings reset when the page is left)."""
    try:
        from streamlit.runtime.state.session_state_proxy import get_session_state

        inner = get_session_state()._state
        metadata = inner._new_widget_state.widget_metadata
        return {key for wid, key in inner._key_id_mapper.id_key_mapping.items()
                if isinstance(key, str) and not key.startswith("$$") and wid in metadata
                and metadata[wid].value_type in _SETTABLE}
    except Exception:  # noqa: BLE001 - an internal that moved: keep nothing rather than break every page
        return set()


def keep_page_settings(page: str) -> None:
    """Keep every page's settings when the learner switches pages (called by the router before each page).

    Streamlit forgets a widget's value once a run does not draw it, so the Pretraining settings would reset on
    a visit to another page. Each run copies the values of the widgets it finds into a private dict (reading
    only: while the learner stays on a page its widgets are left alone, so nothing is pushed to the browser
    while they drag or type); when the learner arrives on a page, the values kept for the widgets it is about to
    draw are written back into the session state, which the widgets then take."""
    kept: dict = st.session_state.setdefault(KEPT_VALUES, {})
    # The widgets of the last run that still hold a value (Streamlit keeps a left page's metadata, not its values).
    drawn = {key for key in _value_widget_keys() if key in st.session_state}
    for key in drawn:
        kept[key] = st.session_state[key]
    if st.session_state.get(KEPT_PAGE) == page:
        return
    st.session_state[KEPT_PAGE] = page
    for key, value in kept.items():
        if key not in drawn:
            st.session_state[key] = value
