"""The dashboard's "Download as Hugging Face GPT-2 (.zip)": prepare the zip on a click, then hand it to the browser.

Building the zip (:func:`core.hf_export.hf_export_zip`: load the checkpoint, write it in GPT-2's layout, zip it)
takes a moment and as much memory as the weights, so it happens only when the visitor asks ("Prepare Hugging
Face export"). The bytes stay in the session for that run and checkpoint (one export per session: another run, or
a newer checkpoint, lets the old zip go), and the download button receives them through a callable, so a rerun
neither hashes nor copies them; Streamlit reads them only when the button is clicked.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from core.hf_export import hf_export_zip
from core.run_view import RunView
from ui import state
from ui.format import format_bytes
from ui.train_panel import MAX_DOWNLOAD_BYTES, runs_dir
from ui.widgets import guard

EXPORT = "pt_hf_export"  # session key: ((run id, checkpoint step, file time), zip bytes, file name)


def hf_export_control(view: RunView, where: Any) -> None:
    """"Prepare Hugging Face export", then the download button, in ``where`` (a column); for a run whose
    checkpoint is too big for the browser, the command that writes the folder instead."""
    if view.checkpoint is None:
        return
    try:
        stamp = view.checkpoint.stat()
    except OSError:  # the run was deleted meanwhile: the next rerun shows it
        return
    if stamp.st_size > MAX_DOWNLOAD_BYTES:
        where.caption(f"For Hugging Face: `python -m core export --run-id {view.run_id} --out DIR`.")
        return
    key = (view.run_id, view.checkpoint_step, stamp.st_mtime_ns)
    ready = st.session_state.get(EXPORT)
    if ready is not None and ready[0] != key:
        del st.session_state[EXPORT]  # another run or a newer checkpoint: free the old zip
        ready = None
    if ready is None:
        if not where.button("Prepare Hugging Face export", key="pt_hf_prepare", icon=":material/archive:",
                            help="Builds a zip of config.json + model.safetensors that transformers' "
                                 "GPT2LMHeadModel loads, with a README on how (GPT-2's tokenizer)."):
            return
        with where, guard("preparing the Hugging Face export"), st.spinner("Building the zip…"):
            data, name = hf_export_zip(runs_dir() / view.run_id, visitor=state.visitor())
            st.session_state[EXPORT] = ready = (key, data, name)
        if ready is None:
            return
    _, data, name = ready
    where.download_button("Download as Hugging Face GPT-2 (.zip)", data=lambda: data, file_name=name,
                          mime="application/zip", key="pt_hf_download", on_click="ignore",
                          icon=":material/download:",
                          help=f"{name}, {format_bytes(len(data))}: unzip it and load the folder with "
                               "transformers.GPT2LMHeadModel.from_pretrained; its README says how.")
