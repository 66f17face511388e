"""Pretraining: train a GPT from scratch on a corpus and watch the loss fall, or load OpenAI's GPT-2 weights."""

import streamlit as st

from core.train import Trainer, calc_loss_batch, calc_loss_windows, lr_at
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
    st.caption("Tokenizer: **GPT-2's byte-pair encoding**. The model's vocabulary is GPT-2's (50,257 ids), so a "
               "model trained here decodes with the same tokenizer, and GPT-2's own weights fit the same shapes.")

    st.subheader("2 · Model")
    cfg = tp.model_controls()

    st.subheader("3 · Training settings")
    settings = tp.settings_controls(corpus)

    st.subheader("4 · Pre-flight check")
    tp.preflight_panel(cfg, settings, corpus)
    tp.script_button(cfg, settings, corpus)  # here, not in the live dashboard's fragments below

    st.subheader("5 · Train")
    tp.start_controls(cfg, settings, corpus)
    run_dashboard.run_dashboard()

    st.subheader("Past runs", divider="gray")
    run_dashboard.runs_section()
    show_code(calc_loss_batch, calc_loss_windows, lr_at, Trainer._train_step)

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
