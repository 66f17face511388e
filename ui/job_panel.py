"""One job panel for the pages that train in the background: Pretraining, Classification and Instructions.

A page describes its job once (:class:`JobPanel`: the job kind, a widget-key prefix and the URL parameter that
keeps the run across a refresh) and then uses the same pieces: :func:`start_job` after a Start/Resume press,
:func:`stop_button`, and :func:`live`, which polls while the job runs and redraws the page when it ends. The
work itself is started by ``core`` (``core.pretrain_job``, ``core.classify_job``, ``core.instruct_job``).

In the hosted demo a job belongs to the visitor who started it (:mod:`core.access`): only they see and stop it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import streamlit as st

from core.access import may_access
from core.errors import LabError
from core.finetune_job import SaveTo, job_state
from core.jobs import ACTIVE, JobBusyError, registry
from core.lab_state import spec_param
from core.model_spec import default_runs_dir
from ui import state

log = logging.getLogger("llm_scratch_lab")
# Each fragment rerun costs the browser ~0.1 s of CPU whatever it re-sends (Streamlit re-renders the app around
# it), and a chart redraw as much again; on a shared CPU that is taken from the training (bench/dashboard_cpu.py).
POLL_S = 5.0  # seconds between polls of a running job's numbers
SLOW_POLL_S = 15.0  # … of its charts


@dataclass(frozen=True)
class JobPanel:
    """How one page keeps track of its job.

    Attributes:
        kind: the :class:`core.jobs.Job` kind (``"pretrain"``, ``"classify"``, ``"instruct"``).
        key: the prefix of the page's widget and session keys (``"pt"``, ``"cls"``, ``"ins"``).
        url_param: the query parameter that remembers the run on show, or None.
    """

    kind: str
    key: str
    url_param: str | None = None

    @property
    def session_key(self) -> str:
        return f"{self.key}_run_id"

    def watched(self) -> str | None:
        """The run this page shows: this session's choice, else the one in the URL."""
        if self.session_key not in st.session_state:
            st.session_state[self.session_key] = st.query_params.get(self.url_param) if self.url_param else None
        rid = st.session_state[self.session_key]
        if self.url_param and rid is not None and st.query_params.get(self.url_param) != rid:
            st.query_params[self.url_param] = rid  # back in the URL after a visit to another page
        return rid

    def watch(self, run_id: str | None) -> None:
        """Show ``run_id`` from now on (and put it in the URL); None forgets it."""
        st.session_state[self.session_key] = run_id
        if self.url_param and run_id is not None:
            st.query_params[self.url_param] = run_id
        elif self.url_param:
            st.query_params.pop(self.url_param, None)


def may_control(owner: str | None) -> bool:
    """Whether this browser may see, stop or resume what ``owner`` (a :mod:`core.access` tag) started."""
    return may_access(owner, state.visitor())


def start_job(
    panel: JobPanel, start: Callable[[], Any], what: str = "starting the run",
    on_started: Callable[[Any], None] | None = None,
) -> None:
    """Call ``start()`` (which returns the started :class:`core.jobs.Job`), remember and show its run, call
    ``on_started(job)``, rerun.

    A full server gives its busy sentence as a warning, bad settings their LabError sentence; nothing raises.
    """
    try:
        job = start()
    except JobBusyError as err:
        st.warning(str(err), icon=":material/hourglass_top:")
    except LabError as err:
        st.error(str(err), icon=":material/error:")
    except Exception as err:  # noqa: BLE001 - never a traceback on the page
        log.exception("%s (%s)", what, panel.kind)
        st.error(f"Something unexpected went wrong while {what} ({type(err).__name__}: {err}). Try other "
                 "settings; the rest of the app keeps working.", icon=":material/error:")
    else:
        panel.watch(job.run_id)
        if on_started is not None:
            on_started(job)
        st.rerun()


def stop_button(panel: JobPanel, run_id: str | None, active: bool, where: Any = st) -> None:
    """"Stop training" for the page's running job (disabled when none runs; a note instead for others' jobs)."""
    job = registry().get(run_id) if run_id else None
    if active and job is not None and not may_control(job.owner):
        where.caption("Another visitor started this run; only they can stop it. It ends at its step limit.")
        return
    if where.button("Stop training", icon=":material/stop:", disabled=not active, key=f"{panel.key}_stop"):
        try:
            registry().stop(run_id, state.visitor())
        except LabError as err:
            st.error(str(err), icon=":material/error:")
        else:
            st.caption("Stopping after this step…")


def job_status(snap: dict[str, Any]) -> None:
    """A failed job's sentence, or a progress bar with its run id, status and message."""
    if snap["status"] == "failed":
        st.error(snap["message"], icon=":material/error:")
    else:
        st.progress(snap["progress"], text=f"{snap['run_id']} · {snap['status']} · {snap['message']}")


def live(poll: Callable[[], tuple[bool, Any]], draw: Callable[[Any], None], every: float = POLL_S) -> bool:
    """Draw what ``poll()`` returns; while it says the job is active, re-poll every ``every`` seconds.

    ``poll() -> (active, view)``; ``draw(view)`` draws it (``view`` may be None: nothing to show yet). When an
    active job ends, the whole page reruns so that its results and actions appear. Returns ``active``.
    Each poll re-sends everything ``draw`` draws, and each element re-sent costs the browser work: keep what
    ``draw`` draws to what changes, and use a longer ``every`` for heavy elements (charts).
    """
    active, view = poll()
    if active:
        (_live_fragment if every == POLL_S else _slow_fragment)(poll, draw)
    else:
        draw(view)
    return active


def _live_body(poll: Callable[[], tuple[bool, Any]], draw: Callable[[Any], None]) -> None:
    active, view = poll()
    if not active:
        st.rerun()  # the whole page: draw the finished state and what follows it
    draw(view)


_live_fragment = st.fragment(_live_body, run_every=POLL_S)
_slow_fragment = st.fragment(_live_body, run_every=SLOW_POLL_S)


def finetune_controls(
    panel: JobPanel, start: Callable[[], Any], *, ready: bool, curves: Callable[[list], Any], idle: str,
) -> tuple[dict[str, Any] | None, Any]:
    """Start / Stop and the live curves of a fine-tuning page; returns the watched job's ``(snapshot, result)``.

    Args:
        start: starts the job (``core.classify_job.start_classify_job`` …) and returns it.
        ready: whether Start is enabled (the data is loaded).
        curves: builds the plotly figure of the job's records.
        idle: the caption shown before any run.
    """
    run_id = panel.watched()
    snap, result = job_state(run_id, panel.kind, visitor=state.visitor())
    running = snap is not None and snap["status"] in ACTIVE
    b = st.columns([1, 1, 5])
    if b[0].button("Start", type="primary", icon=":material/play_arrow:", disabled=running or not ready,
                   key=f"{panel.key}_start"):
        start_job(panel, start)
    stop_button(panel, run_id, running, b[1])

    def poll() -> tuple[bool, dict[str, Any] | None]:
        snap, _ = job_state(run_id, panel.kind, visitor=state.visitor())
        return snap is not None and snap["status"] in ACTIVE, snap

    def draw(snap: dict[str, Any] | None) -> None:
        if snap is None:
            st.caption(idle)
            return
        job_status(snap)
        if snap["records"]:
            st.plotly_chart(curves(snap["records"]), width="stretch", key=f"{panel.key}_curves")

    live(poll, draw)
    if result is not None and snap is not None and snap["status"] in ("finished", "stopped"):
        saved_run_note(panel, snap["run_id"], result)
    return snap, result


def save_target(tokenizer: Any) -> SaveTo:
    """Where a fine-tuning page's job saves its model: the runs folder, beside the pretraining runs, with the
    active model as its base (so ``python -m core runs`` lists it and the sidebar can pick an instruction run)."""
    return SaveTo(str(default_runs_dir()), spec_param(state.active_model_spec()), getattr(tokenizer, "name", "gpt2"))


def saved_run_note(panel: JobPanel, run_id: str, result: Any) -> None:
    """Say where the fine-tuned model was saved (or why not); an instruction-tuned one can become the active model,
    so that the Generation page talks to it."""
    if error := result.details.get("save_error"):
        st.warning(error, icon=":material/save:")
    if not result.details.get("saved"):
        return
    how = ("pick it in the sidebar to generate with it" if panel.kind == "instruct"
           else f"score it again with `python -m core classify evaluate --run-id {run_id}`")
    st.caption(f":material/save: Saved as run **{run_id}** in the runs folder: {how}.")
    if panel.kind == "instruct" and st.button("Use it as the active model", icon=":material/swap_horiz:",
                                              key=f"{panel.key}_use_saved"):
        state.set_active_model({"kind": "run", "run_id": run_id, "runs_dir": str(default_runs_dir())})
        st.rerun()
