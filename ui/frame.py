"""The shared frame drawn on every page: device badge and the active-model picker in the sidebar."""

from __future__ import annotations

import streamlit as st

from core.device import best_device, describe_device
from core.errors import LabError
from core.limits import Limits
from core.model_spec import default_runs_dir
from core.pretrained import resolve_gpt2_path
from core.run_view import visible_runs
from ui.state import MODEL_NOTICE, active_model_spec, describe_spec, limits, set_active_model, visitor


def demo_note(caps: Limits) -> None:
    """The visible note of the hosted-demo caps (sidebar)."""
    if caps.demo:
        st.info("**Hosted demo.** To keep the app fast for everyone it allows " + ", ".join(caps.describe())
                + ". Run it on your own machine for bigger models and longer runs.", icon=":material/cloud:")


def _trained_runs() -> list[str]:
    """Runs with a checkpoint this browser may use (in the hosted demo: its own), newest first."""
    return [r.run_id for r in visible_runs(default_runs_dir(), visitor())
            if r.checkpoint_step and r.status != "broken" and r.task != "classify"]  # a classifier cannot generate


def sidebar_frame() -> None:
    visitor()  # keeps the visitor's token in the URL on every page, so a reload keeps their runs
    spec = active_model_spec()
    caps = limits()
    with st.sidebar:
        demo_note(caps)
        st.caption(f":material/memory: Device: **{describe_device(best_device())}**")
        st.caption(f":material/neurology: Active model: **{describe_spec(spec)}**")
        if notice := st.session_state.get(MODEL_NOTICE):
            st.warning(notice, icon=":material/link_off:")
        with st.expander("Change the active model", icon=":material/swap_horiz:"):
            sources = ["Preset (random init)", "Trained run"] + (["GPT-2 weights file"] if caps.allow_gpt2 else [])
            source = st.radio(
                "Model source",
                sources,
                index={"preset": 0, "run": 1, "hf": 2}.get(spec["kind"], 0),
                key="frame_source",
            )
            if source.startswith("Preset"):
                names = caps.allowed_presets()
                name = st.selectbox("Preset", names, index=names.index(spec.get("name", "tiny"))
                                    if spec.get("name") in names else 0, key="frame_preset",
                                    help="GPT-2 sizes are big: building them at random init takes memory and time.")
                if st.button("Use this preset", key="frame_use_preset"):
                    set_active_model({"kind": "preset", "name": name, "seed": 123})
                    st.rerun()
            elif source == "Trained run":
                runs = _trained_runs()
                if not runs:
                    st.info("No trained runs yet: train one on the Pretraining page.")
                else:
                    run_id = st.selectbox("Run", runs, key="frame_run")
                    if st.button("Use this run", key="frame_use_run"):
                        set_active_model({"kind": "run", "run_id": run_id, "runs_dir": str(default_runs_dir())})
                        st.rerun()
            else:
                path = st.text_input("Path to model.safetensors (or its folder)", key="frame_hf_path")
                if st.button("Load GPT-2 weights", key="frame_use_hf"):
                    try:
                        checked = resolve_gpt2_path(path)
                    except LabError as err:
                        st.error(str(err), icon=":material/error:")
                    else:
                        set_active_model({"kind": "hf", "path": str(checked)})
                        st.rerun()
