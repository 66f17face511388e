"""The Pretraining page's live dashboard and its list of past runs (Streamlit panels only).

What a run shows comes from :func:`core.run_view.dashboard_state`; starting and resuming from
:mod:`core.pretrain_job`. In the hosted demo only the visitor who started a run may stop or resume it.
"""

from __future__ import annotations

import hashlib
import logging
import math
from functools import partial

import pandas as pd
import streamlit as st

from core.jobs import registry
from core.pretrain_job import resume_pretraining
from core.run_view import RunView, dashboard_state, orphan_status, visible_runs
from core.runs import (
    RUN_FILE,
    folder_problem,
)
from ui import state
from ui.figures_train import compare_figure, loss_figure, samples_html
from ui.format import fmt_duration, fmt_loss, format_bytes
from ui.job_panel import SLOW_POLL_S, live, may_control, start_job, stop_button
from ui.run_export import hf_export_control
from ui.train_panel import FLASH, MAX_DOWNLOAD_BYTES, PANEL, PROMPT, STATUS_LABELS, runs_dir

log = logging.getLogger("llm_scratch_lab")


def show_flash() -> None:
    """A success message set just before a rerun (e.g. "… is now the active model")."""
    if msg := st.session_state.pop(FLASH, None):
        st.toast(msg, icon=":material/check_circle:")  # a toast: no element above the tabs, so they keep their place


def current_run_id() -> str | None:
    """The run this session watches, else a pretraining job that is running (reattach after a refresh)."""
    rid = PANEL.watched()
    if rid is None:
        running = [j for j in registry().active() if j.kind == "pretrain" and may_control(j.owner)]
        if running:
            rid = running[0].run_id
            PANEL.watch(rid)
    return rid


def run_dashboard() -> None:
    """The current run: live while it trains, final state afterwards.

    Live, two fragments poll the job: the progress and numbers every POLL_S seconds, the chart and samples
    every SLOW_POLL_S; the chart's controls and the Stop button sit between them, outside, so a poll re-sends
    only what can have changed. Each rerun costs the browser ~0.1 s of CPU, taken from the training on a shared CPU,
    so the polls are slow (bench/dashboard_cpu.py and bench/dashboard_browser.py measure it).
    """
    rid = current_run_id()
    if rid is None:
        return
    view = dashboard_state(rid, runs_dir(), state.visitor())
    if view is None:
        PANEL.watch(None)
        return
    st.subheader(f"Run {rid}", divider="gray")
    poll = partial(_poll, rid)
    live(poll, _status_body)
    if view.active and view.status != "elsewhere":  # in the hosted demo only the visitor who started it
        stop_button(PANEL, view.run_id, active=True)
    how = _chart_controls(view)
    live(poll, partial(_chart_body, how=how), every=SLOW_POLL_S)
    _run_actions(view)


def _poll(rid: str) -> tuple[bool, RunView | None]:
    view = dashboard_state(rid, runs_dir(), state.visitor())
    return view is not None and view.active, view


def _status_body(view: RunView) -> None:
    label = STATUS_LABELS.get(view.status, view.status)
    if view.max_steps:
        st.progress(min(1.0, view.step / view.max_steps), text=f"Step {view.step:,} of {view.max_steps:,} · {label}")
    else:
        st.progress(view.progress, text=f"Step {view.step:,} · {label}")
    vals = view.val_losses
    m = st.columns(5)
    m[0].metric("Train loss", fmt_loss(view.train_loss), help="Cross-entropy of the last batch.")
    m[1].metric("Val loss", fmt_loss(vals[-1] if vals else None), delta_color="inverse",
                delta=f"{vals[-1] - vals[0]:+.2f} since step 1" if len(vals) > 1 else None,
                help="Held-out text the model never trains on; ln(50,257) = 10.82 is a uniform guess.")
    m[2].metric("Tokens/s", f"{view.tokens_per_s:,.0f}" if view.tokens_per_s else "—")
    m[3].metric("Elapsed", fmt_duration(view.elapsed_s))
    m[4].metric("Time left", fmt_duration(view.eta_s) if view.active else "—")
    if view.status == "finished":
        st.success(view.message, icon=":material/check_circle:")
    elif view.status in ("diverged", "failed", "broken"):
        st.error(view.message, icon=":material/error:")
    elif view.status in ("stopped", "interrupted"):
        st.info(view.message, icon=":material/pause_circle:")
    elif view.message:
        st.caption(view.message)
    for note in view.notes:
        st.caption(f":material/info: {note}")
    if note := view.overfit_note:
        st.warning(note, icon=":material/repeat:")
    vocab = view.model_config.get("vocab_size")
    if view.active and vocab and view.train_loss is not None and view.train_loss > 1.5 * math.log(vocab):
        st.warning(f"The loss ({view.train_loss:,.1f}) is far above a uniform guess (ln({vocab:,}) = "
                   f"{math.log(vocab):.2f}): the learning rate is probably too high; consider stopping.",
                   icon=":material/trending_up:")


def _chart_controls(view: RunView) -> tuple:
    """x-axis, log scale, perplexity, learning rate: ``loss_figure``'s arguments after the records."""
    c = st.columns([2, 1, 1, 1])
    x = c[0].radio("x-axis", ["step", "tokens_seen"], horizontal=True, key="pt_x",
                   format_func=lambda v: v.replace("_", " "))
    log_y = c[1].toggle("Log scale", key="pt_log")
    ppl = c[2].toggle("Perplexity", key="pt_ppl", help="exp(loss): the number of equally likely tokens the model "
                      "is choosing between, on average.")
    lr = c[3].toggle("Learning rate", key="pt_lr_overlay", help="The warmup + cosine schedule, on a right-hand axis.")
    return x, log_y, ppl, lr, view.model_config.get("vocab_size")


def _chart_body(view: RunView, how: tuple) -> None:
    st.plotly_chart(loss_figure(view.records, *how), width="stretch", key="pt_loss_fig")
    prompt = view.settings.get("sample_prompt", PROMPT)
    st.markdown(f"**Samples during training** — greedy continuations of “{prompt}”, newest first")
    every = view.settings.get("sample_every")
    empty = ("Sampling is off for this run (Sample every = 0)." if every == 0 else
             f"No samples yet: the first comes at step {min(every, view.max_steps or every):,}." if every
             else "No samples yet.")
    with st.container(height=240):
        st.html(samples_html(view.samples, prompt, limit=60, empty=empty))


def _run_actions(view: RunView) -> None:
    """Use as the active model, download the checkpoint (ours, or as a Hugging Face GPT-2 zip), resume or continue."""
    if view.checkpoint is None:
        return
    c = st.columns(3)
    if c[0].button("Use this run as the active model", key="pt_use_run", icon=":material/neurology:",
                   type="primary" if view.status == "finished" else "secondary"):
        state.set_active_model({"kind": "run", "run_id": view.run_id, "runs_dir": str(runs_dir())})
        st.session_state[FLASH] = (f"Run '{view.run_id}' is now the active model: the Generation, LoRA and "
                                   "fine-tuning pages use it.")
        st.rerun()
    size = view.checkpoint.stat().st_size
    if size <= MAX_DOWNLOAD_BYTES:
        path = view.checkpoint
        c[1].download_button(f"Download the checkpoint ({format_bytes(size)})", data=lambda: path.read_bytes(),
                             file_name=f"{view.run_id}.safetensors", mime="application/octet-stream",
                             key="pt_download", on_click="ignore", icon=":material/download:")
    else:
        c[1].caption(f"The checkpoint is {format_bytes(size)}: copy it from {view.checkpoint}.")
    hf_export_control(view, c[1])  # the same weights as a Hugging Face GPT-2 folder, zipped
    if view.active or not view.checkpoint_step or view.status == "broken" or not may_control(view.owner):
        return  # in the hosted demo only the visitor who started a run may resume or continue it
    with c[2].popover("Resume / continue", icon=":material/play_circle:"):
        _resume_form(view)


def _resume_form(view: RunView) -> None:
    max_steps = int(view.max_steps or view.step + 1)
    lr = float(view.settings.get("lr", 4e-4))
    done = view.status == "finished"
    if view.status == "diverged":
        st.caption("Resume from the last good checkpoint with a lower learning rate.")
        lr = 4e-4 if lr > 4e-4 else lr / 4
    default = max_steps * 2 if done or view.checkpoint_step >= max_steps else max_steps
    hi = max(view.checkpoint_step + 1, state.limits().cap("max_steps", 10_000_000))
    until = st.number_input("Train until step", view.checkpoint_step + 1, hi, min(int(default), hi), key="pt_until")
    new_lr = st.number_input("Learning rate", 1e-6, 100.0, lr, format="%.1e", key="pt_resume_lr")
    label = "Continue training" if done else "Resume"
    if st.button(f"{label} from step {view.checkpoint_step:,}", key="pt_resume", type="primary"):
        start_job(PANEL, lambda: resume_pretraining(view.run_id, runs_dir(), int(until), float(new_lr),
                                                     visitor=state.visitor()),
                  "resuming the run")


def runs_section() -> None:
    """Every run in the runs folder (broken ones with their reason) and an overlay of their validation loss."""
    problem = folder_problem(runs_dir())
    if problem is not None:
        st.warning(problem, icon=":material/folder_off:")
        return
    runs = [r for r in visible_runs(runs_dir(), state.visitor()) if r.task == "pretrain"]  # fine-tuned: their pages
    if not runs:
        st.caption("No runs yet: start one above. Runs trained with `python -m core pretrain` appear here too.")
        return
    active = {j.run_id for j in registry().active()}
    rows = []
    for r in runs:
        status = r.status
        if status == "running" and r.run_id not in active:
            status = STATUS_LABELS[orphan_status(r.path / RUN_FILE, process=r.process)]
        cfg = r.model_config
        rows.append({"run": r.run_id, "status": status, "steps": f"{r.step:,} / {r.max_steps:,}" if r.max_steps
                     else "—", "val loss": r.val_loss, "train loss": r.train_loss,
                     "model": f"{cfg['n_layers']}×{cfg['emb_dim']}, ctx {cfg['context_length']}" if cfg else "—",
                     "created": r.created.replace("T", " "), "note": r.reason or r.message})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", column_config={
        "val loss": st.column_config.NumberColumn(format="%.3f"),
        "train loss": st.column_config.NumberColumn(format="%.3f")})
    usable = [r.run_id for r in runs if r.status != "broken"]
    if not usable:
        return
    c = st.columns([3, 1], vertical_alignment="bottom")
    # Keyed by the list of runs, so a new run resets the choice to the newest three.
    tag = hashlib.sha256(" ".join(usable).encode()).hexdigest()[:8]
    pick = c[0].multiselect("Compare the validation loss of", usable, default=usable[:3], key=f"pt_compare_{tag}")
    with c[1].popover("Open a run", icon=":material/open_in_browser:", width="stretch"):
        chosen = st.selectbox("Run", usable, key="pt_open_pick")
        if st.button("Show it in the dashboard", key="pt_open"):
            PANEL.watch(chosen)
            st.rerun()
    curves = {}
    for rid in pick:
        view = dashboard_state(rid, runs_dir(), state.visitor())
        if view is not None:
            curves[rid] = view.records
    st.plotly_chart(compare_figure(curves, vocab_size=50257), width="stretch", key="pt_compare_fig")


