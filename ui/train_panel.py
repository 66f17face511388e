"""Building blocks of the Pretraining page, so ``views/pretrain.py`` stays a short script.

Only Streamlit panels live here; every decision is in ``core`` (:mod:`core.pretrain_job` starts and resumes runs,
:mod:`core.run_view` says what the dashboard shows, :mod:`core.preflight` gives the pre-flight numbers).
Panels here: corpus / model / settings controls, the pre-flight panel and Start; the live dashboard (two
  ``st.fragment`` that poll the job while it runs, ``ui.job_panel``), the runs table, the GPT-2 weights section and
  the book's "Every effort moves you" check.

Training runs in a :mod:`core.jobs` thread that never touches Streamlit; the page only reads snapshots. The job
registry is process-wide, so a run keeps going (and the dashboard reattaches) across page switches and browser
refreshes. The cached active model (``ui.cache``) is never trained: the trainer builds its own model.
"""

from __future__ import annotations

import json
import logging
from functools import partial
from pathlib import Path

import streamlit as st

from core import guided
from core.config import PRESETS, GPTConfig
from core.datasets import DATASETS, download, is_available, load_corpus, parse_text_upload
from core.jobs import registry
from core.model_spec import default_runs_dir
from core.page_scripts import MAX_SCRIPT_CHARS
from core.preflight import estimate_seconds, preflight_numbers
from core.pretrain_job import PRETRAIN_TOKENIZER, Corpus, start_pretraining
from core.run_view import OVERFIT_EPOCHS
from core.runs import (
    default_run_id,
)
from core.stats import flops_per_token, total_parameters
from core.train import PROBE_MIN_S, TrainSettings, estimate_training_memory, probe_speeds
from core.train_data import TokenSplit, split_corpus
from ui import state
from ui.cache import tokenizer
from ui.format import fmt_duration, format_bytes, format_si
from ui.job_panel import JobPanel, start_job
from ui.widgets import download_with_progress, guard, script_download, uploader

log = logging.getLogger("llm_scratch_lab")

PANEL = JobPanel("pretrain", "pt", url_param="pt_run")  # the run the dashboard shows (kept in the URL)
FLASH = "pt_flash"  # session key: a one-off success message shown after a rerun
PROMPT = guided.BOOK_PROMPT  # the GPT-2 check on the page, as in the book
MAX_DOWNLOAD_BYTES = 200 * 2**20  # checkpoints above this are not offered through the browser
SPLIT_TEXT = {"tokens": "the token ids (the lab)", "characters": "the text's characters (the book, §5.1)"}
SPLIT_HELP = ("The token ids: the last share of GPT-2 tokens validates. The characters: the text is cut at 90 % of "
              "its characters and each half tokenized apart, as the book does (The Verdict: 4,612 / 534 tokens "
              "instead of 4,630 / 515).")
STATUS_LABELS = {
    "queued": "starting", "running": "training", "finished": "finished", "stopped": "stopped",
    "diverged": "diverged", "failed": "failed", "interrupted": "interrupted", "broken": "broken",
    "elsewhere": "training in another process",
}  # fmt: skip


def runs_dir() -> Path:
    """The runs folder (``LLMLAB_RUNS_DIR``, read on each call: tests point it at a temporary folder)."""
    return default_runs_dir()


# ============================================================================================ cached helpers
@st.cache_data(max_entries=8, show_spinner=False)
def _corpus_text(name: str) -> str:
    return load_corpus(name)


@st.cache_data(max_entries=16, show_spinner="Tokenizing the corpus…")
def _training_ids(text: str, val_ratio: float, split: str) -> TokenSplit:
    return split_corpus(text, tokenizer(PRETRAIN_TOKENIZER), val_ratio, split)


def training_ids(corpus: Corpus, settings: TrainSettings) -> TokenSplit:
    """The corpus's training and validation ids, cut the way the settings say (cached per text and split)."""
    return _training_ids(corpus.text, settings.val_ratio, settings.split)


@st.cache_data(max_entries=32, show_spinner=False)
def _probe(cfg_json: str, settings_json: str) -> dict[str, float]:
    """Tokens/s of training steps and evaluation passes, at least 2 steps and 3 s (cached per model and settings:
    it costs seconds)."""
    cfg, settings = GPTConfig.from_dict(json.loads(cfg_json)), TrainSettings(**json.loads(settings_json))
    return probe_speeds(cfg, settings, 2, min_seconds=PROBE_MIN_S)


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
        if download_with_progress("Download The Verdict", partial(download, "the-verdict"),
                                  key="pt_verdict_download", what="The Verdict") is not None:
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
    text = st.text_area("Text to train on", key="pt_paste", height=140, placeholder="Paste a few pages of plain text…",
                        help=f"Up to {state.limits().max_upload_mb} MB.")
    with guard("reading the pasted text"):
        return Corpus(text, "", "pasted text")
    return None


def model_controls() -> GPTConfig | None:
    """A preset (the guided path's by default) and optional size overrides."""
    caps = state.limits()
    names = caps.allowed_presets()
    default = names.index(guided.PRETRAIN_PRESET) if guided.PRETRAIN_PRESET in names else 0
    preset = st.selectbox("Model preset", names, index=default, key="pt_preset",
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


def settings_controls(corpus: Corpus | None = None) -> TrainSettings | None:
    """Steps, batch, learning rate… starting from the guided path's settings; the sample prompt follows the corpus."""
    caps = state.limits()
    g = guided.PRETRAIN
    prompt = guided.sample_prompt(corpus.source if corpus is not None else "")
    c = st.columns(4)
    steps = c[0].number_input("Steps", 1, caps.cap("max_steps", 1_000_000), g.max_steps, key="pt_steps",
                              help="Optimizer steps in total.")
    batch = c[1].number_input("Batch size", 1, caps.cap("max_batch", 1024), g.batch_size, key="pt_batch",
                              help="Windows per step.")
    lr = c[2].number_input("Learning rate", 1e-6, 100.0, g.lr, step=1e-4, format="%.1e", key="pt_lr",
                           help="Peak learning rate of AdamW. The book uses 4e-4 for GPT-2's 124M parameters; "
                           "this small model learns faster at 1e-3. Try 10 to see the loss explode, "
                           "100 to see it become NaN/inf (the run stops as 'diverged').")
    warmup = c[3].number_input("Warmup steps", 0, 1_000_000, g.warmup_steps, key="pt_warmup",
                               help="Linear warmup to the peak, then cosine decay to 10 % of it.")
    c = st.columns(4)
    eval_every = c[0].number_input("Evaluate every", 1, 1_000_000, g.eval_every, key="pt_eval_every",
                                   help="Validation loss every this many steps (also at step 1 and at the end).")
    sample_every = c[1].number_input("Sample every", 0, 1_000_000, g.sample_every, key="pt_sample_every",
                                     help=f"Continue '{prompt}' every this many steps; 0 = never.")
    seed = c[2].number_input("Seed", 0, 2**31 - 1, g.seed, key="pt_seed", help="Weights and data order.")
    val_ratio = c[3].slider("Validation share", 0.05, 0.5, g.val_ratio, 0.05, key="pt_val_ratio",
                            help="The end of the corpus held out for the validation loss (the book: 10 %).")
    split = st.radio("Cut the validation share from", list(SPLIT_TEXT), format_func=SPLIT_TEXT.get,
                     horizontal=True, key="pt_split", help=SPLIT_HELP)
    with guard("checking the training settings"):
        return TrainSettings(max_steps=int(steps), batch_size=int(batch), lr=float(lr), warmup_steps=int(warmup),
                             eval_every=int(eval_every), sample_every=int(sample_every), seed=int(seed),
                             val_ratio=float(val_ratio), sample_prompt=prompt, split=split)
    return None


def preflight_panel(cfg: GPTConfig | None, settings: TrainSettings | None, corpus: Corpus | None) -> None:
    """Parameters, memory (fits or not), tokens and windows, and a time estimate from a measured speed."""
    if cfg is None or settings is None or corpus is None:
        st.caption("Choose a corpus and valid settings above to see the pre-flight check.")
        return
    ids = training_ids(corpus, settings)
    num = preflight_numbers(len(ids), cfg, settings, ids.sizes)
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
    if num["epochs"] is not None and num["epochs"] > OVERFIT_EPOCHS:
        st.warning(f"{settings.max_steps:,} steps read this corpus {num['epochs']:.0f} times over: past "
                   f"~{OVERFIT_EPOCHS} passes a model starts to memorise it. A longer corpus learns more that "
                   "carries over; the dashboard will show where the validation loss stops following the "
                   "training loss.", icon=":material/repeat:")
    key = json.dumps([cfg.to_dict(), settings.batch_size, num["context"], settings.device], sort_keys=True)
    speeds = st.session_state.setdefault("pt_speeds", {})
    c = st.columns([1, 4], vertical_alignment="center")
    if c[0].button("Measure speed", key="pt_measure", icon=":material/speed:", disabled=est["fits"] is False):
        with guard("measuring the speed"), st.spinner("Timing training steps and evaluation passes on random tokens…"):
            speeds[key] = _probe(cfg.to_json(), json.dumps({"batch_size": settings.batch_size,
                                                            "context_length": num["context"]}))
    if isinstance(speeds.get(key), dict):
        speed = speeds[key]
        t = estimate_seconds(num, settings, speed["train"], speed.get("eval"))
        busy = " (measured while another job was running)" if registry().active() else ""
        c[1].markdown(f"Estimated time on this device: **≈ {fmt_duration(t['total'])}** — "
                      f"{fmt_duration(t['train'])} of training at {speed['train']:,.0f} tokens/s plus "
                      f"{fmt_duration(t['eval'])} of evaluation{busy}.")
    else:
        c[1].caption("Times a few real training steps on this device (seconds for tiny/mini, minutes for GPT-2 sizes "
                     "on a CPU) to estimate how long the run will take.")


def start_controls(cfg: GPTConfig | None, settings: TrainSettings | None, corpus: Corpus | None) -> None:
    """Run id + Start. A job already running gives the busy sentence as a warning; bad input its LabError."""
    n = st.session_state.setdefault("pt_idn", 0)  # a new widget after each start, with a fresh default id
    c = st.columns([3, 1], vertical_alignment="bottom")
    where = "its folder name" if state.limits().demo else f"its folder in {runs_dir()}"  # no server paths in the demo
    run_id = c[0].text_input(f"Run id ({where})", default_run_id(st.session_state.get(
        "pt_preset", "tiny")), key=f"pt_run_id_{n}")
    ready = cfg is not None and settings is not None and corpus is not None
    if c[1].button("Start training", type="primary", key="pt_start", icon=":material/play_arrow:",
                   disabled=not ready, width="stretch"):
        tok = tokenizer(PRETRAIN_TOKENIZER)
        start_job(PANEL, lambda: start_pretraining(cfg, settings, corpus, run_id, runs_dir(), tok,
                                                   training_ids(corpus, settings), visitor=state.visitor()),
                  on_started=lambda job: st.session_state.update(pt_idn=n + 1))  # a fresh default id next time


def script_button(cfg: GPTConfig | None, settings: TrainSettings | None, corpus: Corpus | None) -> None:
    """"Download as script": these settings, the corpus (by name, or the text itself) and the same trainer."""
    if cfg is None or settings is None or corpus is None:
        return
    if not corpus.source and len(corpus.text) > MAX_SCRIPT_CHARS - 100_000:  # the script embeds the text
        st.caption(f"The text is too long to put in a script ({len(corpus.text):,} characters); save it as a "
                   "file and use `python -m core pretrain --corpus` instead.")
        return
    script_download("pretrain", {"model_config": cfg.to_dict(), "train": settings.to_dict(),
                                 "source": corpus.source or "text", "text": "" if corpus.source else corpus.text,
                                 "title": corpus.title})
