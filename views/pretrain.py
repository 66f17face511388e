"""Pretraining: train a GPT from scratch on a corpus and watch the loss fall, or load OpenAI's GPT-2 weights."""

import streamlit as st

from core.config import GPTConfig
from core.model import GPTModel
from core.preflight import estimate_seconds, preflight_numbers
from core.pretrain_job import encode_corpus
from core.runs import commit_checkpoint, list_runs
from core.train import Trainer, TrainSettings, calc_loss_batch, calc_loss_windows, estimate_training_memory, lr_at
from core.train_data import batch_indices, split_token_ids
from ui import gpt2_panel, run_dashboard
from ui import train_panel as tp
from ui.widgets import next_page_link, page_header, show_code

PATH = "views/pretrain.py"

page_header(
    PATH,
    "Pretraining teaches a GPT to predict the next token: each step takes a batch of text windows, measures the "
    "cross-entropy between the model's predictions and the real next tokens, and nudges every weight downhill "
    "with AdamW. An untrained model guesses uniformly among GPT-2's 50,257 tokens, so its loss starts near "
    "ln(50,257) ≈ 10.82; watch it fall, and the samples turn from noise into words.",
)

run_dashboard.show_flash()
train_tab, gpt2_tab = st.tabs([":material/model_training: Train from scratch",
                               ":material/download: Load GPT-2's weights (book §5.5)"], key="pt_tab")
with train_tab:
    st.subheader("1 · Corpus")
    corpus = tp.corpus_controls()
    show_code(encode_corpus, split_token_ids, label="Show the code: encoding the corpus and the train/val split")
    st.caption("Tokenizer: **GPT-2's byte-pair encoding**. The model's vocabulary is GPT-2's (50,257 ids), so a "
               "model trained here decodes with the same tokenizer, and GPT-2's own weights fit the same shapes.")

    st.subheader("2 · Model")
    cfg = tp.model_controls()
    show_code(GPTConfig, GPTModel, label="Show the code: the configuration and the GPTModel it builds")

    st.subheader("3 · Training settings")
    settings = tp.settings_controls(corpus)
    show_code(TrainSettings, lr_at, label="Show the code: the settings and the learning-rate schedule")

    st.subheader("4 · Pre-flight check")
    tp.preflight_panel(cfg, settings, corpus)
    show_code(preflight_numbers, estimate_seconds, estimate_training_memory,
              label="Show the code: the pre-flight numbers")
    tp.script_button(cfg, settings, corpus)  # here, not in the live dashboard's fragments below

    st.subheader("5 · Train")
    tp.start_controls(cfg, settings, corpus)
    run_dashboard.run_dashboard()
    show_code(Trainer._train_step, calc_loss_batch, calc_loss_windows, batch_indices,
              label="Show the code: one training step and the evaluation")

    st.subheader("Past runs", divider="gray")
    run_dashboard.runs_section()
    show_code(commit_checkpoint, list_runs, label="Show the code: saving checkpoints and listing runs")

with gpt2_tab:
    st.markdown(
        "Training a GPT-2 took OpenAI weeks on many GPUs; the book's §5.5 loads their released weights into the "
        "same architecture instead. Hugging Face stores them in its own layout (fused query/key/value, "
        "transposed `Conv1D` weights); the lab maps them into its `GPTModel`. The file is fetched once and kept "
        "in the data folder, or taken from a Hugging Face cache already on this machine."
    )
    gpt2_panel.gpt2_section()  # with "Show the code": the mapping of GPT-2's tensors onto GPTModel (§5.5)

st.subheader("The book's check: continue “Every effort moves you”", divider="gray")
gpt2_panel.book_check()
next_page_link(PATH)
