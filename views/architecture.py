"""Architecture: presets and custom configs; parameters, memory, FLOPs, a shape trace; the chapter 4 demos."""

import pandas as pd
import streamlit as st

from core.config import PRESETS, GPTConfig
from core.model import GELU, FeedForward, GPTModel, LayerNorm, MultiHeadAttention, TransformerBlock
from core.page_scripts.model import BOOK_CONFIG_KEYS
from core.stats import (
    activation_curves,
    architecture_report,
    flops_per_token,
    layernorm_example,
    memory_estimate,
    meta_shape_trace,
    parameter_breakdown,
    shortcut_gradient_demo,
    total_parameters,
)
from ui.figures_model import activation_figure, matrix_heatmap, parameter_bars, shortcut_figure
from ui.format import format_bytes, format_si
from ui.widgets import guard, next_page_link, page_header, script_download, show_code

PATH = "views/architecture.py"
CUSTOM = "custom"

page_header(
    PATH,
    "A GPT is token and position embeddings, a stack of identical transformer blocks (LayerNorm → attention "
    "→ shortcut, LayerNorm → feed-forward → shortcut) and an output head. Pick a size to see where its "
    "parameters, memory and compute go, and how one batch of tokens changes shape on its way through.",
)

names = [*PRESETS, CUSTOM]
choice = st.selectbox(
    "Architecture", names, index=names.index("gpt2-small"), key="arch_preset",
    format_func=lambda n: f"{n} — {PRESETS[n]['about'] if n in PRESETS else 'set every size yourself'}",
)
base = PRESETS["gpt2-small" if choice == CUSTOM else choice]["config"]
fields = dict(base)
if choice == CUSTOM:
    c = st.columns(4)
    fields["vocab_size"] = c[0].number_input("vocab_size", 1, 1_000_000, base["vocab_size"], key="arch_vocab")
    fields["context_length"] = c[1].number_input("context_length", 1, 131_072, base["context_length"],
                                                 key="arch_ctx")
    fields["emb_dim"] = c[2].number_input("emb_dim", 1, 16_384, base["emb_dim"], key="arch_emb")
    fields["n_heads"] = c[3].number_input("n_heads", 1, 256, base["n_heads"], key="arch_heads")
    fields["n_layers"] = c[0].number_input("n_layers", 1, 200, base["n_layers"], key="arch_layers")
    fields["drop_rate"] = c[1].number_input("drop_rate", 0.0, 0.99, float(base["drop_rate"]), 0.05,
                                            key="arch_drop")
    fields["qkv_bias"] = c[2].checkbox("qkv_bias", base["qkv_bias"], key="arch_qkv_bias",
                                       help="GPT-2's weights have a bias on the query/key/value layers.")
tie = st.toggle("Tie the output head to the token embedding (as GPT-2 ships; the book counts untied)",
                value=False, key="arch_tie")
c1, c2 = st.columns(2)
batch = c1.slider("Batch size of the traced input", 1, 8, 2, key="arch_batch")
tokens = c2.slider("Tokens per sequence of the traced input", 1, 16, 4, key="arch_tokens")

report = None
with guard("building the configuration"):
    cfg = GPTConfig(**{**fields, "tie_weights": tie})
    report = architecture_report(cfg, n_tokens=min(tokens, cfg.context_length), batch_size=batch)
if report is not None:
    m = st.columns(4)
    m[0].metric("Parameters, untied", f"{report.total_untied:,}", help="Own output head (the book's 163M).")
    m[1].metric("Parameters, tied", f"{report.total_tied:,}", help="Output head shares the token embedding.")
    m[2].metric("Forward FLOPs / token", format_si(report.flops["forward"], "FLOP"),
                help="≈ 2 FLOPs per weight per token, plus attention over the full context.")
    m[3].metric("Training FLOPs / token", format_si(report.flops["training"], "FLOP"),
                help="Backward pass ≈ 2 × forward, so training ≈ 3 × forward.")

    st.subheader("Where the parameters are")
    left, right = st.columns([1, 1])
    table = pd.DataFrame(report.breakdown).rename(columns={"count": "copies", "per_block": "in every block"})
    left.dataframe(table, hide_index=True, width="stretch",
                   column_config={"params": st.column_config.NumberColumn("parameters", format="localized")})
    right.plotly_chart(parameter_bars(report.breakdown), width="stretch", key="arch_params_fig")
    show_code(parameter_breakdown, total_parameters, flops_per_token, label="Show the code: counting parameters")

    st.subheader("Memory")
    st.dataframe(
        pd.DataFrame([{"weights in": r["dtype"], "weights only (inference)": format_bytes(r["weights_bytes"]),
                       "training with AdamW": format_bytes(r["training_bytes"])} for r in report.memory]),
        hide_index=True, width="stretch",
    )
    st.caption("Training = weights + gradients + AdamW's two fp32 moments per parameter; activations come on "
               "top and grow with batch size × context length.")
    show_code(memory_estimate, label="Show the code: the memory estimate")

    st.subheader("Shape trace of one forward pass")
    st.caption(f"Input: token ids of shape ({batch}, {min(tokens, cfg.context_length)}). The model is built "
               "on PyTorch's `meta` device — shapes without storage — so even GPT-2 XL is traced instantly "
               "with no memory. Shapes read (batch, tokens, features); the position embedding has no batch "
               "axis and is broadcast when added. Blocks 1 … N−1 repeat block 0's shapes, so they share one "
               "row.")
    st.dataframe(pd.DataFrame(report.trace), hide_index=True, width="stretch",
                 height=35 * len(report.trace) + 40,
                 column_config={"parameters": st.column_config.NumberColumn(format="localized")})
    show_code(architecture_report, meta_shape_trace, label="Show the code of the report and the trace")
show_code(GPTModel, TransformerBlock, MultiHeadAttention, FeedForward, LayerNorm, GELU,
          label="Show the code: the chapter-4 model classes")
if report is not None:
    script_download("architecture", {"config": {k: fields[k] for k in BOOK_CONFIG_KEYS}, "tie": tie, "batch": batch,
                                     "tokens": min(tokens, cfg.context_length)})

st.header("Inside a block (book §4.2–4.4)", divider="gray")
t1, t2, t3 = st.tabs(["LayerNorm", "GELU vs ReLU", "Shortcut connections"])
with t1, guard("running the LayerNorm demo"):
    ln = layernorm_example()
    st.markdown("Two examples of 6 activations (Linear(5, 6) + ReLU on random input, seed 123, as in the "
                "book), normalised per row: subtract the row's mean, divide by its standard deviation.")
    rows, feats = ["example 1", "example 2"], [f"f{i + 1}" for i in range(ln["input"].shape[1])]
    a, b = st.columns(2)
    a.plotly_chart(matrix_heatmap(ln["input"], rows, feats, title="before", colorscale="Purples"),
                   width="stretch", key="arch_ln_in")
    b.plotly_chart(matrix_heatmap(ln["output"], rows, feats, title="after LayerNorm", colorscale="Purples"),
                   width="stretch", key="arch_ln_out")
    stats = {"row": rows, "mean before": ln["mean_before"], "variance before": ln["var_before"],
             "mean after": ln["mean_after"].round(6) + 0.0, "variance after": ln["var_after"]}
    st.dataframe(pd.DataFrame(stats), hide_index=True, width="stretch")
    st.caption("After normalisation every row has mean 0 and variance 1 (up to ε); the learnable scale and "
               "shift then let the model pick any other mean and spread it needs.")
    show_code(LayerNorm, layernorm_example, label="Show the code: LayerNorm and this demo")
with t2:
    st.plotly_chart(activation_figure(activation_curves()), width="stretch", key="arch_gelu")
    st.caption("GELU is smooth and lets small negative inputs through slightly, so every input gets a "
               "non-zero gradient; ReLU cuts all negatives to exactly 0.")
    show_code(GELU, FeedForward, activation_curves, label="Show the code: GELU, the feed-forward and this demo")
with t3, guard("running the shortcut demo"):
    st.plotly_chart(shortcut_figure(shortcut_gradient_demo()), width="stretch", key="arch_shortcut")
    st.caption("The book's 5-layer network, same initial weights, one backward pass: without shortcuts the "
               "gradient shrinks layer by layer towards the input (vanishing gradients); adding each layer's "
               "input to its output keeps it large all the way down.")
    show_code(TransformerBlock.forward, shortcut_gradient_demo,
              label="Show the code: the block's two shortcuts and this demo")
next_page_link(PATH)
