"""Every st.cache_* wrapper lives here, so caching rules are in one place.

Rules: models and tokenizers go through ``st.cache_resource`` (one shared object, never trained in place: the
training pages build their own copy); arrays and tables go through ``st.cache_data``. Arguments are plain strings
and numbers — tensors are never hashed.
"""

from __future__ import annotations

import json

import streamlit as st

from core.datasets import parse_instruction_upload, parse_table_upload
from core.model import GPTModel
from core.model_spec import build_model, spec_stamp, spec_tokenizer
from core.tokenizers import get_tokenizer
from ui.state import active_model_spec


@st.cache_resource(max_entries=8, show_spinner=False)
def tokenizer(name: str, text: str | None = None):
    """A tokenizer by name; text-built vocabularies (simple-v1/v2, char) are keyed by their text."""
    return get_tokenizer(name, text=text)


@st.cache_resource(max_entries=3, show_spinner="Loading the model…")
def _model(spec_json: str, stamp: float) -> GPTModel:
    return build_model(json.loads(spec_json))


@st.cache_resource(max_entries=8, show_spinner=False)
def _model_tokenizer(spec_json: str, stamp: float):
    return spec_tokenizer(json.loads(spec_json), active_model().cfg.vocab_size)


def active_tokenizer():
    """The tokenizer the active model's ids mean: the one its checkpoint records (GPT-2's for presets and GPT-2
    weights). Every page that feeds the active model text uses this, never a hard-coded name."""
    spec = active_model_spec()
    return _model_tokenizer(json.dumps(spec, sort_keys=True), spec_stamp(spec))


def active_model() -> GPTModel:
    """The model chosen in the sidebar (cached; reloaded when its checkpoint file changes)."""
    spec = active_model_spec()
    return _model(json.dumps(spec, sort_keys=True), spec_stamp(spec))


def preset_model(name: str, seed: int = 123) -> GPTModel:
    """A randomly initialised preset, e.g. to compare with the trained active model."""
    return _model(json.dumps({"kind": "preset", "name": name, "seed": seed}, sort_keys=True), 0.0)


@st.cache_data(max_entries=4, show_spinner="Reading the table…")
def parsed_table(data: bytes, name: str, text_col: str | None, label_col: str | None):
    """:func:`core.datasets.parse_table_upload`, once per upload and column choice (not on every rerun)."""
    return parse_table_upload(data, name, text_col, label_col)


@st.cache_data(max_entries=4, show_spinner="Reading the records…")
def parsed_instructions(data: bytes, name: str):
    """:func:`core.datasets.parse_instruction_upload`, once per upload."""
    return parse_instruction_upload(data, name)
