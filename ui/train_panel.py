"""Building blocks of the Pretraining page, so ``views/pretrain.py`` stays a short script.

Two layers:

- **plain glue** (no ``st.*`` calls; the bench and the tests call it directly): :func:`start_pretraining`,
  :func:`resume_pretraining`, :func:`dashboard_state` (a job's live snapshot merged with its ``run.json``),
  :func:`preflight_numbers`, :func:`estimate_seconds`, :func:`store_corpus`;
- **Streamlit panels**: corpus / model / settings controls, the pre-flight panel, Start, the live dashboard (an
  ``st.fragment(run_every=1.0)`` that polls the job while it runs), the runs table, the GPT-2 weights section and
  the book's "Every effort moves you" check.

Training runs in a :mod:`core.jobs` thread that never touches Streamlit; the page only reads snapshots. The job
registry is process-wide, so a run keeps going (and the dashboard reattaches) across page switches and browser
refreshes. The cached active model (``ui.cache``) is never trained: the trainer builds its own model.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core.config import PRESETS, GPTConfig
from core.datasets import DATASETS, data_dir, download, is_available, load_corpus, parse_text_upload
from core.errors import LabError
from core.jobs import ACTIVE, Job, JobBusyError, registry, start_training_job
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
from core.runs import (
    MAX_STEP,
    MODEL_FILE,
    RUN_FILE,
    STATE_FILE,
    default_run_id,
    folder_problem,
    list_runs,
    process_alive,
    read_json,
    read_run,
    run_path,
)
from core.stats import flops_per_token, total_parameters
from core.teaching import format_bytes, format_si
from core.train import TrainSettings, estimate_training_memory, probe_speed
from core.train_plan import plan_data, resume_spec
from ui import state
from ui.figures_train import compare_figure, continuation_html, loss_figure, samples_html
from ui.frame import allowed_presets
from ui.widgets import guard, uploader

log = logging.getLogger("llm_scratch_lab")

EOT = "<|endoftext|>"
CURRENT = "pt_run"  # session key: the run the dashboard shows
FLASH = "pt_flash"  # session key: a one-off success message shown after a rerun
STARTED = "pt_started"  # session key: runs this session started (in the hosted demo only they may be stopped)
PROMPT = "Every effort moves you"
MAX_DOWNLOAD_BYTES = 200 * 2**20  # checkpoints above this are not offered through the browser
STATUS_LABELS = {
    "queued": "starting", "running": "training", "finished": "finished", "stopped": "stopped",
    "diverged": "diverged", "failed": "failed", "interrupted": "interrupted", "broken": "broken",
    "elsewhere": "training in another process",
}  # fmt: skip
FRESH_S = 15 * 60  # a run.json marked running and written this recently is taken to be trained by another process


def runs_dir() -> Path:
    """The runs folder, read from ``ui.state`` at call time (tests point it at a temporary folder)."""
    return Path(state.RUNS_DIR)


# ================================================================================================ plain glue
@dataclass(frozen=True)
class Corpus:
    """The text to train on. ``source`` is a registry name, or "" for text that is stored when training starts."""

    text: str
    source: str
    title: str


def store_corpus(text: str) -> Path:
    """Keep uploaded or pasted text in ``<data dir>/corpora/<sha256 prefix>.txt`` so a run can be resumed.

    The run records this path as its corpus source, so ``python -m core pretrain --resume`` finds it too.
    """
    folder = data_dir() / "corpora"
    path = folder / f"{hashlib.sha256(text.encode('utf-8')).hexdigest()[:16]}.txt"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(text.encode("utf-8"))
        os.replace(tmp, path)
    return path


def _encode(text: str, tokenizer: Any) -> list[int]:
    return tokenizer.encode(text, allowed_special={EOT})


def _gpt2() -> Any:
    from core.tokenizers import get_tokenizer

    return get_tokenizer("gpt2")


def check_caps(cfg: GPTConfig, settings: TrainSettings) -> None:
    """Refuse (LabError) a run above the hosted-demo caps; a no-op outside the demo."""
    caps = state.limits()
    caps.check_model(cfg)
    caps.check_steps(settings.max_steps)
    caps.check_batch(settings.batch_size)


def start_pretraining(
    cfg: GPTConfig,
    settings: TrainSettings,
    corpus: Corpus,
    run_id: str,
    runs_dir: str | Path,
    tokenizer: Any = None,
    ids: list[int] | None = None,
) -> Job:
    """Tokenize the corpus with GPT-2's BPE and start a pretraining job (what the page's Start button does).

    Raises:
        JobBusyError: another job is running. LabError: bad run id, too little text, too little memory….
    """
    check_caps(cfg, settings)
    tok = tokenizer or _gpt2()
    ids = ids if ids is not None else _encode(corpus.text, tok)
    run_id = run_id.strip()
    registry().check_can_start(run_id)  # before anything is written
    source = corpus.source or str(store_corpus(corpus.text))
    return start_training_job(cfg, settings, ids, runs_dir, run_id, tokenizer=tok,
                              corpus={"source": source, "title": corpus.title})


def resume_pretraining(
    run_id: str,
    runs_dir: str | Path,
    max_steps: int | None = None,
    lr: float | None = None,
    tokenizer: Any = None,
) -> Job:
    """Continue a run from its checkpoint with its own model, settings and corpus (optionally more steps or
    another learning rate)."""
    spec = resume_spec(run_path(runs_dir, run_id), max_steps=max_steps, lr=lr)
    cfg, settings = spec.cfg, spec.settings
    check_caps(cfg, settings)
    corpus = {k: v for k, v in spec.corpus.items() if k in ("source", "title")}
    if not spec.corpus_source:
        raise LabError(f"Run {run_id!r} does not record its corpus, so it cannot be resumed here; use "
                       "'python -m core pretrain --resume --corpus …' with the text it was trained on.")
    tok = tokenizer or _gpt2()
    ids = _encode(load_corpus(corpus["source"]), tok)
    return start_training_job(cfg, settings, ids, runs_dir, run_id, resume=True, tokenizer=tok, corpus=corpus)


@functools.lru_cache(maxsize=32)
def _read_run_at(run_dir: str, mtime_ns: int, size: int) -> dict[str, Any]:
    """run.json, re-read only when the file changes (the fragment polls every second)."""
    return read_run(Path(run_dir))


@dataclass
class RunView:
    """Everything the dashboard draws for one run (plain data)."""

    run_id: str
    status: str
    message: str
    active: bool
    step: int = 0
    max_steps: int | None = None
    progress: float = 0.0
    records: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    model_config: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    checkpoint: Path | None = None
    checkpoint_step: int | None = None

    @property
    def train_loss(self) -> float | None:
        return self.records[-1]["train_loss"] if self.records else None

    @property
    def val_losses(self) -> list[float]:
        return [r["val_loss"] for r in self.records if r.get("val_loss") is not None]

    @property
    def tokens_per_s(self) -> float | None:
        return self.records[-1].get("tokens_per_s") if self.records else None

    @property
    def elapsed_s(self) -> float | None:
        return self.records[-1].get("elapsed_s") if self.records else None

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the current pace (tokens/s includes evaluation time: it is measured on the wall clock)."""
        tps, ctx = self.tokens_per_s, self.settings.get("context_length") or self.model_config.get("context_length")
        if not self.active or not tps or not ctx or not self.max_steps:
            return None
        steps_per_s = tps / (self.settings["batch_size"] * ctx)
        return max(0, self.max_steps - self.step) / steps_per_s


def orphan_status(run_json: Path, now: float | None = None, process: Any = None) -> str:
    """What a run.json that says "running" means when no job of this app trains it.

    When run.json names the process that writes it (``process``, see :func:`core.runs.process_tag`) and that
    process is on this machine: ``"elsewhere"`` while it lives (e.g. ``python -m core pretrain`` is training it),
    ``"interrupted"`` once it has ended (a server restart, a kill) or when it is this very process, whose job
    registry does not know the run. Otherwise: ``"elsewhere"`` if run.json was written in the last 15 minutes,
    else ``"interrupted"``.
    """
    alive = process_alive(process)
    if alive is not None:
        return "elsewhere" if alive and process.get("pid") != os.getpid() else "interrupted"
    try:
        age = (now if now is not None else time.time()) - run_json.stat().st_mtime
    except OSError:
        return "interrupted"
    return "elsewhere" if age < FRESH_S else "interrupted"


def dashboard_state(run_id: str, runs_dir: str | Path) -> RunView | None:
    """The job's live snapshot (if it is in the registry) merged with the run's ``run.json``; None if neither.

    ``run.json`` holds every step up to its last write (at evaluations); the snapshot holds every step of the
    current session. Steps before the session's first live step come from the file, the rest from the snapshot.
    """
    run_dir = Path(runs_dir) / run_id
    job = registry().get(run_id)
    snap = job.snapshot() if job is not None else None
    disk, broken = None, None
    file = run_dir / RUN_FILE
    if file.exists():
        try:
            st_ = file.stat()
            disk = _read_run_at(str(run_dir), st_.st_mtime_ns, st_.st_size)
        except (LabError, OSError) as err:
            broken = str(err)
    if snap is None and disk is None:
        return RunView(run_id, "broken", broken, False) if broken else None
    live = snap["records"] if snap else []
    first = live[0]["step"] if live else None

    def before(step: int) -> bool:
        return first is None or step < first

    records = [m for m in (disk or {}).get("metrics", []) if before(m.get("step", 0))]
    records += [{k: v for k, v in r.items() if k != "sample"} for r in live]
    samples = [s for s in (disk or {}).get("samples", []) if before(s.get("step", 0))]
    samples += [{"step": r["step"], "text": r["sample"]} for r in live if r.get("sample") is not None]
    ckpt_step = (disk or {}).get("checkpoint_step")
    if snap is not None and snap["status"] in ACTIVE:
        status, message, active = "running", snap["message"], True
    elif snap is not None:
        status, message, active = snap["outcome"] or snap["status"], snap["message"], False
    else:
        status, message, active = str(disk["status"]), str(disk.get("message", "")), False
        if status == "running":  # no job of this app trains it
            status = orphan_status(file, process=disk.get("process"))
            if status == "interrupted":  # the committed step, which run.json may not have caught up with
                ckpt_step = _committed_step(run_dir, ckpt_step)
            if status == "elsewhere":  # e.g. the CLI: follow its run.json (written at every evaluation)
                active = True
                message = ("Another process (for example `python -m core pretrain`) is training this run; the "
                           "dashboard follows its saved state, which is updated at every evaluation.")
            else:
                message = (f"This run was cut off (the process training it ended without a word); resume it from "
                           f"its checkpoint at step {ckpt_step}." if ckpt_step else "This run was cut off before its "
                           "first checkpoint; start a new run.")
    settings = dict((disk or {}).get("settings", {}))
    model = run_dir / MODEL_FILE
    return RunView(
        run_id=run_id, status=status, message=message or "", active=active,
        step=records[-1]["step"] if records else int((disk or {}).get("step", 0)),
        max_steps=settings.get("max_steps"), progress=snap["progress"] if snap else 0.0, records=records,
        samples=samples, settings=settings, model_config=dict((disk or {}).get("model_config", {})),
        notes=list((disk or {}).get("notes", [])), checkpoint=model if model.exists() else None,
        checkpoint_step=ckpt_step,
    )  # fmt: skip


def _committed_step(run_dir: Path, fallback: int | None) -> int | None:
    """The step of the run's last committed checkpoint (trainer_state.json), or ``fallback`` if unreadable."""
    try:
        step = read_json(run_dir / STATE_FILE).get("step")
    except LabError:
        return fallback
    return step if isinstance(step, int) and not isinstance(step, bool) and 0 < step <= MAX_STEP else fallback


def preflight_numbers(n_tokens: int, cfg: GPTConfig, settings: TrainSettings) -> dict[str, Any]:
    """How a corpus of ``n_tokens`` splits into training/validation tokens, windows and epochs.

    A view of :func:`core.train_plan.plan_data`, the function the trainer itself checks its data with, so the
    pre-flight panel and the trainer cannot disagree (same numbers, same sentences).
    """
    plan = plan_data(n_tokens, cfg, settings)
    return {
        "context": plan.context, "train_tokens": plan.train_tokens, "val_tokens": plan.val_tokens,
        "train_windows": plan.train_windows, "val_windows": plan.val_windows,
        "tokens_per_step": plan.tokens_per_step, "tokens_per_epoch": plan.tokens_per_epoch,
        "steps_per_epoch": plan.steps_per_epoch, "epochs": plan.epochs, "problems": list(plan.problems),
    }  # fmt: skip


def estimate_seconds(numbers: dict[str, Any], settings: TrainSettings, tokens_per_s: float) -> dict[str, float]:
    """Training time from a measured speed: the steps, plus evaluations (a forward pass costs ~1/3 of a step)."""
    per_step = numbers["tokens_per_step"] / tokens_per_s
    train = settings.max_steps * per_step
    n_evals = settings.max_steps // settings.eval_every + 2  # at step 1, every eval_every, and at the end
    val_batches = math.ceil(numbers["val_windows"] / settings.batch_size)
    if settings.eval_batches is not None:
        val_batches = min(val_batches, settings.eval_batches)
    evaluation = n_evals * val_batches * per_step / 3
    return {"train": train, "eval": evaluation, "total": train + evaluation}


def fmt_duration(seconds: float | None) -> str:
    """``42 s`` / ``3 min 20 s`` / ``2 h 05 min``; "—" when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def _fmt_loss(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"


# ============================================================================================ cached helpers
@st.cache_data(max_entries=8, show_spinner=False)
def _corpus_text(name: str) -> str:
    return load_corpus(name)


@st.cache_data(max_entries=16, show_spinner="Tokenizing the corpus…")
def _token_ids(text: str) -> list[int]:
    from ui.cache import tokenizer

    return _encode(text, tokenizer("gpt2"))


@st.cache_data(max_entries=32, show_spinner=False)
def _probe(cfg_json: str, settings_json: str) -> float:
    """Tokens/s of 2 timed training steps (cached per model and settings: it costs seconds)."""
    return probe_speed(GPTConfig.from_dict(json.loads(cfg_json)), TrainSettings(**json.loads(settings_json)), 2)


# ========================================================================================= Streamlit panels
def corpus_controls() -> Corpus | None:
    """Built-in corpus, The Verdict (download on request), an uploaded .txt or pasted text."""
    verdict_ready = is_available("the-verdict")
    labels = {"builtin": "Built-in stories", "verdict": "The Verdict" + ("" if verdict_ready else " (download)"),
              "upload": "Upload a .txt file", "paste": "Paste text"}
    choice = st.radio("Corpus", list(labels), format_func=labels.get, horizontal=True, key="pt_corpus")
    if choice == "builtin":
        info = DATASETS["builtin-corpus"]
        st.caption(f"{info.description} ({info.size}.)")
        return Corpus(_corpus_text("builtin-corpus"), "builtin-corpus", info.title)
    if choice == "verdict":
        info = DATASETS["the-verdict"]
        if verdict_ready:
            st.caption(f"{info.description} {info.licence} ({info.size}.)")
            with guard("reading The Verdict"):
                return Corpus(_corpus_text("the-verdict"), "the-verdict", info.title)
            return None
        st.info(f"{info.description} It is not downloaded yet ({info.size}, from the book's GitHub repository).",
                icon=":material/download:")
        if st.button("Download The Verdict", key="pt_verdict_download", icon=":material/download:"):
            slot = st.empty()
            bar = slot.progress(0.0, text="Downloading The Verdict…")
            with guard("downloading The Verdict"):
                try:
                    download("the-verdict", progress=lambda done, total: bar.progress(
                        min(1.0, done / total) if total else 0.0, text=f"Downloading The Verdict… {done:,} bytes"))
                finally:
                    slot.empty()  # no half-full bar left next to an error
                st.rerun()
        return None
    if choice == "upload":
        up = uploader("A UTF-8 text file", type=["txt", "md"], key="pt_upload")
        if up is None:
            st.caption("Upload a text file to train on (up to 5 MB).")
            return None
        with guard("reading the upload"):
            return Corpus(parse_text_upload(up.getvalue(), up.name), "", f"upload: {up.name}")
        return None
    text = st.text_area("Text to train on", key="pt_paste", height=140,
                        placeholder="Paste a few pages of plain text…")
    return Corpus(text, "", "pasted text")


def model_controls() -> GPTConfig | None:
    """A preset (tiny by default) and optional size overrides."""
    caps = state.limits()
    names = allowed_presets(caps)
    preset = st.selectbox("Model preset", names, index=names.index("tiny"), key="pt_preset",
                          format_func=lambda n: f"{n} — {PRESETS[n]['about']}")
    base = PRESETS[preset]["config"]
    over: dict[str, int] = {}
    with st.expander(f"Sizes: {base['n_layers']} blocks · {base['emb_dim']} wide · {base['n_heads']} heads · "
                     f"{base['context_length']}-token context (change)", icon=":material/tune:"):
        c = st.columns(4)
        for col, (name, label, hi) in zip(c, (("context_length", "Context length", caps.cap("max_context", 4096)),
                                              ("n_layers", "Layers", 96), ("emb_dim", "Embedding dim", 8192),
                                              ("n_heads", "Heads", 128))):
            value = col.number_input(label, 1, hi, int(base[name]), key=f"pt_{name}_{preset}")
            if value != base[name]:
                over[name] = int(value)
        st.caption("The vocabulary stays GPT-2's 50,257 ids. Heads must divide the embedding dim.")
    with guard("building the model configuration"):
        cfg = GPTConfig.preset(preset, **over)
        caps.check_model(cfg)
        return cfg
    return None


def settings_controls() -> TrainSettings | None:
    caps = state.limits()
    c = st.columns(4)
    steps = c[0].number_input("Steps", 1, caps.cap("max_steps", 1_000_000), 200, key="pt_steps",
                              help="Optimizer steps in total.")
    batch = c[1].number_input("Batch size", 1, caps.cap("max_batch", 1024), 8, key="pt_batch", help="Windows per step.")
    lr = c[2].number_input("Learning rate", 1e-6, 100.0, 4e-4, step=1e-4, format="%.1e", key="pt_lr",
                           help="Peak learning rate of AdamW (the book: 4e-4). Try 10 to see the loss explode, "
                           "100 to see it become NaN/inf (the run stops as 'diverged').")
    warmup = c[3].number_input("Warmup steps", 0, 1_000_000, 20, key="pt_warmup",
                               help="Linear warmup to the peak, then cosine decay to 10 % of it.")
    c = st.columns(4)
    eval_every = c[0].number_input("Evaluate every", 1, 1_000_000, 25, key="pt_eval_every",
                                   help="Validation loss every this many steps (also at step 1 and at the end).")
    sample_every = c[1].number_input("Sample every", 0, 1_000_000, 25, key="pt_sample_every",
                                     help=f"Continue '{PROMPT}' every this many steps; 0 = never.")
    seed = c[2].number_input("Seed", 0, 2**31 - 1, 123, key="pt_seed", help="Weights and data order.")
    val_ratio = c[3].slider("Validation share", 0.05, 0.5, 0.1, 0.05, key="pt_val_ratio",
                            help="The end of the corpus held out for the validation loss (the book: 10 %).")
    with guard("checking the training settings"):
        return TrainSettings(max_steps=int(steps), batch_size=int(batch), lr=float(lr), warmup_steps=int(warmup),
                             eval_every=int(eval_every), sample_every=int(sample_every), seed=int(seed),
                             val_ratio=float(val_ratio))
    return None


def preflight_panel(cfg: GPTConfig | None, settings: TrainSettings | None, corpus: Corpus | None) -> None:
    """Parameters, memory (fits or not), tokens and windows, and a time estimate from a measured speed."""
    if cfg is None or settings is None or corpus is None:
        st.caption("Choose a corpus and valid settings above to see the pre-flight check.")
        return
    ids = _token_ids(corpus.text)
    num = preflight_numbers(len(ids), cfg, settings)
    est = estimate_training_memory(cfg, settings)
    m = st.columns(4)
    m[0].metric("Parameters", format_si(total_parameters(cfg)), help=f"{total_parameters(cfg):,} (untied head)")
    m[1].metric("Training memory", format_bytes(est["total_bytes"]),
                help="Weights + gradients + AdamW's two moments (16 bytes per parameter) + activations of one batch.")
    m[2].metric("Corpus tokens", f"{len(ids):,}", help=f"{num['train_tokens']:,} for training, "
                f"{num['val_tokens']:,} held out for validation (GPT-2 tokenizer).")
    m[3].metric("Training windows", f"{num['train_windows']:,}", help=f"{num['context']}-token windows of the "
                "training split, side by side (stride = context length).")
    free = est["available_bytes"]
    if est["fits"] is False:
        st.warning(f"Does not fit: training needs about {format_bytes(est['total_bytes'])} but only "
                   f"{format_bytes(free)} is free on {est['device']}, so Start will refuse. Use a smaller batch "
                   "size, context length or model.", icon=":material/memory:")
    elif est["fits"]:
        st.caption(f":material/check_circle: Fits: about {format_bytes(est['total_bytes'])} of the "
                   f"{format_bytes(free)} free on {est['device']}.")
    epochs = f"{num['epochs']:.1f} epochs" if num["epochs"] is not None else "—"
    st.caption(f"One epoch = {num['train_windows']:,} windows × {num['context']} tokens = "
               f"{num['tokens_per_epoch']:,} tokens = {num['steps_per_epoch']:,} steps of {settings.batch_size}; "
               f"{settings.max_steps:,} steps ≈ {epochs} ({settings.max_steps * num['tokens_per_step']:,} tokens).")
    compute = flops_per_token(cfg, num["context"])["training"] * settings.max_steps * num["tokens_per_step"]
    st.caption(f"Compute: ≈ {format_si(compute, 'FLOP')} (about 3 × 2 FLOPs per weight per token, forward and "
               "backward).")
    if total_parameters(cfg) > 50_000_000 and est["device"] == "cpu":
        st.warning("A GPT-2-sized model on a CPU is slow: expect minutes per step. Measure the speed first, or "
                   "choose tiny or mini.", icon=":material/hourglass_top:")
    for problem in num["problems"]:
        st.warning(problem, icon=":material/warning:")
    key = json.dumps([cfg.to_dict(), settings.batch_size, num["context"], settings.device], sort_keys=True)
    speeds = st.session_state.setdefault("pt_speeds", {})
    c = st.columns([1, 4], vertical_alignment="center")
    if c[0].button("Measure speed", key="pt_measure", icon=":material/speed:", disabled=est["fits"] is False):
        with guard("measuring the speed"), st.spinner("Timing 2 training steps on random tokens…"):
            speeds[key] = _probe(cfg.to_json(), json.dumps({"batch_size": settings.batch_size,
                                                            "context_length": num["context"]}))
    if key in speeds:
        t = estimate_seconds(num, settings, speeds[key])
        busy = " (measured while another job was running)" if registry().active() else ""
        c[1].markdown(f"Estimated time on this device: **≈ {fmt_duration(t['total'])}** — "
                      f"{fmt_duration(t['train'])} of training at {speeds[key]:,.0f} tokens/s plus "
                      f"{fmt_duration(t['eval'])} of evaluation{busy}.")
    else:
        c[1].caption("Times 2 real training steps on this device (seconds for tiny/mini, minutes for GPT-2 sizes "
                     "on a CPU) to estimate how long the run will take.")


def start_controls(cfg: GPTConfig | None, settings: TrainSettings | None, corpus: Corpus | None) -> None:
    """Run id + Start. A job already running gives the busy sentence as a warning; bad input its LabError."""
    n = st.session_state.setdefault("pt_idn", 0)  # a new widget after each start, with a fresh default id
    c = st.columns([3, 1], vertical_alignment="bottom")
    run_id = c[0].text_input(f"Run id (its folder in {runs_dir()})", default_run_id(st.session_state.get(
        "pt_preset", "tiny")), key=f"pt_run_id_{n}")
    ready = cfg is not None and settings is not None and corpus is not None
    if not c[1].button("Start training", type="primary", key="pt_start", icon=":material/play_arrow:",
                       disabled=not ready, width="stretch"):
        return
    try:
        from ui.cache import tokenizer

        job = start_pretraining(cfg, settings, corpus, run_id, runs_dir(), tokenizer("gpt2"), _token_ids(corpus.text))
    except JobBusyError as err:
        st.warning(str(err), icon=":material/hourglass_top:")
    except LabError as err:
        st.error(str(err), icon=":material/error:")
    except Exception as err:  # noqa: BLE001 - never a traceback on the page
        log.exception("starting a pretraining run")
        st.error(f"Could not start the run ({type(err).__name__}: {err}).", icon=":material/error:")
    else:
        st.session_state[CURRENT] = job.run_id
        st.session_state[STARTED] = [*st.session_state.get(STARTED, ()), job.run_id]
        st.session_state["pt_idn"] = n + 1
        st.rerun()


def show_flash() -> None:
    """A success message set just before a rerun (e.g. "… is now the active model")."""
    if msg := st.session_state.pop(FLASH, None):
        st.toast(msg, icon=":material/check_circle:")  # a toast: no element above the tabs, so they keep their place


def current_run_id() -> str | None:
    """The run this session watches, else a pretraining job that is running (reattach after a refresh)."""
    rid = st.session_state.get(CURRENT)
    if rid is None:
        running = [j for j in registry().active() if j.kind == "pretrain"]
        if running:
            rid = st.session_state[CURRENT] = running[0].run_id
    return rid


def run_dashboard() -> None:
    """The current run: live (polled every second by a fragment) while it trains, final state afterwards."""
    rid = current_run_id()
    if rid is None:
        return
    view = dashboard_state(rid, runs_dir())
    if view is None:
        st.session_state.pop(CURRENT, None)
        return
    st.subheader(f"Run {rid}", divider="gray")
    if view.active:
        _live(rid)
    else:
        _dashboard_body(view)
    _run_actions(view)


@st.fragment(run_every=1.0)
def _live(rid: str) -> None:
    view = dashboard_state(rid, runs_dir())
    if view is None or not view.active:
        st.rerun()  # the whole page: draw the finished state, the actions, the runs table
    _dashboard_body(view)


def _dashboard_body(view: RunView) -> None:
    label = STATUS_LABELS.get(view.status, view.status)
    if view.max_steps:
        st.progress(min(1.0, view.step / view.max_steps), text=f"Step {view.step:,} of {view.max_steps:,} · {label}")
    else:
        st.progress(view.progress, text=f"Step {view.step:,} · {label}")
    vals = view.val_losses
    m = st.columns(5)
    m[0].metric("Train loss", _fmt_loss(view.train_loss), help="Cross-entropy of the last batch.")
    m[1].metric("Val loss", _fmt_loss(vals[-1] if vals else None), delta_color="inverse",
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
    vocab = view.model_config.get("vocab_size")
    if view.active and vocab and view.train_loss is not None and view.train_loss > 1.5 * math.log(vocab):
        st.warning(f"The loss ({view.train_loss:,.1f}) is far above a uniform guess (ln({vocab:,}) = "
                   f"{math.log(vocab):.2f}): the learning rate is probably too high; consider stopping.",
                   icon=":material/trending_up:")
    # In the hosted demo every visitor sees the one running job; only the session that started it may stop it.
    mine = not state.limits().demo or view.run_id in st.session_state.get(STARTED, ())
    if view.active and view.status != "elsewhere" and not mine:
        st.caption("Another visitor started this run; only they can stop it. It ends at its step limit.")
    elif view.active and view.status != "elsewhere" and st.button("Stop training", key="pt_stop",
                                                                  icon=":material/stop:"):
        job = registry().get(view.run_id)
        if job is not None:
            job.stop()
        st.caption("Stopping after this step; a checkpoint is being written…")
    c = st.columns([2, 1, 1, 1])
    x = c[0].radio("x-axis", ["step", "tokens_seen"], horizontal=True, key="pt_x",
                   format_func=lambda v: v.replace("_", " "))
    log_y = c[1].toggle("Log scale", key="pt_log")
    ppl = c[2].toggle("Perplexity", key="pt_ppl", help="exp(loss): the number of equally likely tokens the model "
                      "is choosing between, on average.")
    lr = c[3].toggle("Learning rate", key="pt_lr_overlay", help="The warmup + cosine schedule, on a right-hand axis.")
    st.plotly_chart(loss_figure(view.records, x, log_y, ppl, lr, vocab), width="stretch", key="pt_loss_fig")
    prompt = view.settings.get("sample_prompt", PROMPT)
    st.markdown(f"**Samples during training** — greedy continuations of “{prompt}”, newest first")
    every = view.settings.get("sample_every")
    empty = ("Sampling is off for this run (Sample every = 0)." if every == 0 else
             f"No samples yet: the first comes at step {min(every, view.max_steps or every):,}." if every
             else "No samples yet.")
    with st.container(height=240):
        st.html(samples_html(view.samples, prompt, limit=60, empty=empty))


def _run_actions(view: RunView) -> None:
    """Use as the active model, download the checkpoint, resume or continue."""
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
    if view.active or not view.checkpoint_step or view.status == "broken":
        return
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
        try:
            resume_pretraining(view.run_id, runs_dir(), int(until), float(new_lr))
        except JobBusyError as err:
            st.warning(str(err), icon=":material/hourglass_top:")
        except LabError as err:
            st.error(str(err), icon=":material/error:")
        else:
            st.session_state[CURRENT] = view.run_id
            st.session_state[STARTED] = [*st.session_state.get(STARTED, ()), view.run_id]
            st.rerun()


def runs_section() -> None:
    """Every run in the runs folder (broken ones with their reason) and an overlay of their validation loss."""
    problem = folder_problem(runs_dir())
    if problem is not None:
        st.warning(problem, icon=":material/folder_off:")
        return
    runs = list_runs(runs_dir())
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
            st.session_state[CURRENT] = chosen
            st.rerun()
    curves = {}
    for rid in pick:
        view = dashboard_state(rid, runs_dir())
        if view is not None:
            curves[rid] = view.records
    st.plotly_chart(compare_figure(curves, vocab_size=50257), width="stretch", key="pt_compare_fig")


def gpt2_section() -> None:
    """OpenAI's GPT-2 weights: found on disk, downloaded, a local path or an upload → checked → active model."""
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
        if st.button("Download", key="pt_gpt2_download", icon=":material/download:"):
            slot = st.empty()
            bar = slot.progress(0.0, text="Connecting…")

            def progress(done: int, total: int | None) -> None:
                what = f"{done / 2**20:,.0f} MB" + (f" of {total / 2**20:,.0f} MB" if total else "")
                bar.progress(min(1.0, done / total) if total else 0.0, text=f"Downloading… {what}")

            with guard("downloading GPT-2"):
                try:
                    st.session_state["pt_gpt2_path"] = str(download_gpt2(size, progress=progress))
                finally:
                    slot.empty()
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
