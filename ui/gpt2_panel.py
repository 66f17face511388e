"""The Pretraining page's GPT-2 weights section and the book's "Every effort moves you" check (Streamlit
panels)."""

from __future__ import annotations

import logging

import streamlit as st

from core.errors import LabError
from core.hf_gpt2 import gpt2_state_from_hf, load_hf_gpt2
from core.pretrained import (
    GPT2_FILE_SIZES,
    GPT2_SIZES,
    download_gpt2,
    find_local_gpt2,
    hf_url,
    local_path,
    resolve_gpt2_path,
    store_gpt2_upload,
    verify_gpt2_file,
)
from ui import state
from ui.figures_train import continuation_html
from ui.format import format_bytes
from ui.train_panel import FLASH, PROMPT
from ui.widgets import download_with_progress, guard, show_code, uploader

log = logging.getLogger("llm_scratch_lab")


def gpt2_section() -> None:
    """OpenAI's GPT-2 weights, then the code that maps Hugging Face's tensors onto GPTModel (shown even where
    the hosted demo offers no GPT-2) and the download code."""
    _weights_panel()
    show_code(gpt2_state_from_hf, load_hf_gpt2, label="Show the code: GPT-2's weights mapped into GPTModel "
              "(book §5.5)")
    show_code(download_gpt2, label="Show the download code")


def _weights_panel() -> None:
    """Found on disk, downloaded, a local path or an upload → checked → active model."""
    try:
        state.limits().check_gpt2()
    except LabError as err:
        st.info(str(err), icon=":material/cloud:")
        return
    size = st.selectbox("GPT-2 size", list(GPT2_SIZES), key="pt_gpt2_size",
                        format_func=lambda s: f"{s} ({GPT2_FILE_SIZES[s]})",
                        on_change=lambda: st.session_state.pop("pt_gpt2_path", None))
    found = find_local_gpt2(size)
    if found is not None:
        st.success(f"Found on this machine: {found}", icon=":material/check_circle:")
    how = st.radio("Get the weights", ["download", "path", "upload"], horizontal=True, key="pt_gpt2_how",
                   format_func={"download": "Download from Hugging Face", "path": "A file on this machine",
                                "upload": "Upload model.safetensors"}.get)
    if how == "download":
        st.caption(f"From {hf_url(size)} into {local_path(size)}. Hugging Face publishes no checksum for this file, "
                   "so the lab checks its structure: valid safetensors, GPT-2's tensor names, this size's shape.")
        path = download_with_progress("Download", lambda progress: download_gpt2(size, progress=progress),
                                      key="pt_gpt2_download", what=f"GPT-2 {size}")
        if path is not None:
            st.session_state["pt_gpt2_path"] = str(path)
    elif how == "path":
        text = st.text_input("Path to model.safetensors (or its folder)", key="pt_gpt2_local")
        if st.button("Check this file", key="pt_gpt2_check"):
            with guard("checking the file"):
                st.session_state["pt_gpt2_path"] = str(resolve_gpt2_path(text))
    else:
        limit = st.get_option("server.maxUploadSize")
        st.caption(f"Uploads are limited to {limit} MB (server.maxUploadSize in .streamlit/config.toml): enough "
                   "for a small test model; for GPT-2's 0.5–6.4 GB files give the path instead.")
        up = uploader("model.safetensors", type=["safetensors"], key="pt_gpt2_upload")
        if up is not None and st.button("Store and check", key="pt_gpt2_store"):
            with guard("storing the upload"):
                st.session_state["pt_gpt2_path"] = str(store_gpt2_upload(up))
    chosen = st.session_state.get("pt_gpt2_path") or (str(found) if found else None)
    if chosen is None:
        return
    with guard("checking the weights"):
        info = verify_gpt2_file(chosen)
        st.markdown(f"**Ready:** `{chosen}` — {info['n_layers']} blocks, {info['emb_dim']} wide, "
                    f"{info['n_parameters']:,} parameters ({format_bytes(info['file_size'])}).")
        if st.button("Make active", type="primary", key="pt_gpt2_activate", icon=":material/neurology:"):
            state.set_active_model({"kind": "hf", "path": chosen})
            st.session_state[FLASH] = "GPT-2's weights are now the active model; try the book's check below."
            st.rerun()


def book_check() -> None:
    """The book's first test of a model: greedily continue 'Every effort moves you' with the active model."""
    from core.generate import generate_text
    from ui.cache import active_model, active_tokenizer

    spec = state.active_model_spec()
    st.caption(f"Active model: **{state.describe_spec(spec)}** (set it above or in the sidebar).")
    if st.button(f"Continue “{PROMPT}”", key="pt_check", icon=":material/edit_note:"):
        with guard("generating"), st.spinner("Generating 25 tokens…"):
            text = generate_text(active_model(), active_tokenizer(), PROMPT, 25, temperature=0.0)
            st.session_state["pt_check_out"] = (state.describe_spec(spec), text)
    out = st.session_state.get("pt_check_out")
    if out is not None:
        st.caption(f"Greedy output of {out[0]}:")
        st.html(continuation_html(out[1], PROMPT))
    show_code(generate_text, label="Show the code: the greedy continuation")
