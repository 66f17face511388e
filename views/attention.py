"""Attention: the book's chapter 3 one step at a time, then the attention patterns inside the active model."""

import streamlit as st

from core import attention as book
from core import book_ch3 as ch3
from core.attention_steps import (
    MAX_ATTENTION_TOKENS,
    MAX_TEACHING_WORDS,
    model_attention,
    row_sums,
    sentence_inputs,
    teaching_steps,
)
from core.model import MultiHeadAttention
from ui.cache import active_model, active_tokenizer
from ui.figures_model import attention_heatmap, heads_grid, vectors_heatmap
from ui.state import active_model_spec, describe_spec
from ui.widgets import guard, next_page_link, page_header, script_download, show_code
from views.attention_prose import DISPLAY_STEPS, STAGES, step_note, step_title

PATH = "views/attention.py"
STAGE_CODE = {  # what computed each tab, then the book's nn.Module for the same step (core/book_ch3.py)
    "simplified": (book.simplified_self_attention, ch3.SelfAttention_v1),
    "qkv": (book.self_attention_qkv, book._project, ch3.SelfAttention_v2),
    "causal": (book.causal_attention, book._causal_steps, ch3.CausalAttention),
    "multihead": (book.multi_head_attention, ch3.MultiHeadAttentionWrapper, ch3.MultiHeadAttention),
}
SQUARE = {"scores", "scaled", "masked", "weights", "dropped"}  # T × T matrices; the rest are (T, features)


def row_sum_caption(weights) -> None:
    """Expose the row sums of an attention matrix (they are all 1: softmax normalises every row)."""
    sums = row_sums(weights).ravel()
    if weights.ndim == 2:
        st.caption("Row sums: " + " · ".join(f"{v:.3f}" for v in sums))
    else:
        st.caption(f"Row sums (every row of every head): min {sums.min():.3f}, max {sums.max():.3f}")


def render_step(stage: str, step: str, arr, words: list[str]) -> None:
    """Heading, heatmap and one explaining sentence for one intermediate of a teaching stage."""
    st.markdown(f"**{step_title(stage, step)}**")
    if arr.ndim == 3:
        fig = heads_grid(arr, words)
    elif step in SQUARE:
        fig = attention_heatmap(arr, words, weights_scale=step == "weights")
    else:
        fig = vectors_heatmap(arr, words)
    st.plotly_chart(fig, width="stretch", key=f"att_fig_{stage}_{step}")
    st.caption(step_note(stage, step))
    if step == "weights":
        row_sum_caption(arr)


def pick(label: str, n: int, key: str) -> int:
    """A 1-based choice among n layers/heads: pills when few, a slider when many; returns a 0-based index."""
    if n <= 1:
        return 0
    if n <= 16:
        return (st.pills(label, list(range(1, n + 1)), default=1, key=key) or 1) - 1
    return st.slider(label, 1, n, 1, key=key) - 1


page_header(
    PATH,
    "Attention lets every token build a new vector — its *context vector* — as a weighted mix of the tokens "
    "it can see. Below, the book's chapter 3 builds it in four steps, from plain dot products to causal "
    "multi-head attention; then you look inside the model chosen in the sidebar.",
)

st.header("Part 1 · Step by step", divider="gray")
left, mid, right = st.columns([2, 1, 1])
source = left.radio("Input", ["The book's six words", "Your own sentence"], horizontal=True, key="att_source")
own = source == "Your own sentence"
text = left.text_input(f"Sentence (first {MAX_TEACHING_WORDS} words are used)", key="att_text",
                       value="The cat sat on the mat because it was tired", disabled=not own)
d_in = mid.slider("Embedding size d_in", 2, 8, 3, key="att_d_in", disabled=not own,
                  help="Only for your own sentence: the book's words come with 3-D embeddings.")
d_out = right.slider("Query/key/value size d_out", 1, 4, 2, key="att_d_out",
                     help="The book uses 2. Every head of the multi-head step has this size.")
note = st.container()  # filled once the embeddings are known, but shown above the tabs
tabs = st.tabs(list(STAGES.values()))
with tabs[2]:
    c1, c2 = st.columns(2)
    dropout = c1.slider("Dropout rate p", 0.0, 0.9, 0.0, 0.1, key="att_dropout",
                        help="Used only while training; at inference p = 0 and nothing is dropped.")
    seed = int(c2.number_input("Seed (projections and dropout pattern)", 0, 10_000, 123, key="att_seed"))
with tabs[3]:
    n_heads = st.pills("Number of heads", [1, 2, 3, 4], default=2, key="att_heads") or 2

steps = None
with guard("computing the attention steps"):
    inp = sentence_inputs(text if own else None, d_in=d_in if own else 3)
    steps = teaching_steps(inp.x, d_out=d_out, n_heads=n_heads, dropout=dropout, seed=seed)
if steps is not None:
    note.caption(f"Embeddings: {inp.source}.")
    if inp.truncated:
        note.info(f"Only the first {MAX_TEACHING_WORDS} words are used, so every heatmap stays readable.",
                  icon=":material/content_cut:")
    for tab, (stage, data) in zip(tabs, steps.items()):
        with tab:
            shown = [s for s in DISPLAY_STEPS[stage] if s in data]
            for step in [s for s in shown if data[s].ndim == 3]:  # per-head stacks: full width
                render_step(stage, step, data[step], inp.words)
            cols = st.columns(3)
            for i, step in enumerate(s for s in shown if data[s].ndim == 2):
                with cols[i % 3]:
                    render_step(stage, step, data[step], inp.words)
            show_code(*STAGE_CODE[stage], label=f"Show the code: {STAGES[stage]} (and the book's class)")

st.header("Part 2 · Inside the active model", divider="gray")
st.markdown(
    f"Active model: **{describe_spec(active_model_spec())}** (change it in the sidebar). A randomly "
    "initialised model spreads its attention almost evenly over the tokens it can see; after training, or "
    "with GPT-2 weights, heads specialise (previous token, first token, same word …)."
)
sentence = st.text_input(f"Sentence (up to {MAX_ATTENTION_TOKENS} tokens are shown)", key="att_model_text",
                         value="Every effort moves you forward, one small step at a time.")
att = None
with guard("running the model"):
    att = model_attention(active_model(), active_tokenizer(), sentence)
if att is not None:
    n_layers, n_heads_model, t = att.weights.shape[:3]
    if att.truncated:
        st.info(f"The text is long: only its first {t} tokens are shown (the model's context or the display "
                "limit).", icon=":material/content_cut:")
    c1, c2 = st.columns(2)
    with c1:
        layer = pick("Layer", n_layers, "att_layer")
    with c2:
        head = pick("Head", n_heads_model, "att_head")
    w = att.weights[layer, head]
    st.plotly_chart(attention_heatmap(w, att.tokens, show_values=t <= 12,
                                      title=f"Layer {layer + 1}, head {head + 1}"),
                    width="stretch", key="att_model_fig")
    st.caption("Each row is one token attending to itself and the tokens before it (the mask hides the "
               "future); · marks a space inside a token.")
    row_sum_caption(w)
    st.plotly_chart(heads_grid(att.weights[layer], att.tokens, title=f"All {n_heads_model} heads of layer "
                               f"{layer + 1}"), width="stretch", key="att_model_grid")
show_code(model_attention, MultiHeadAttention.forward, label="Show the code: reading the model's attention weights")
if steps is not None and att is not None:
    script_download("attention", {"source": "text" if own else "book", "text": text, "d_in": d_in, "d_out": d_out,
                                  "n_heads": n_heads, "dropout": dropout, "seed": seed, "spec": active_model_spec(),
                                  "model_text": sentence, "layer": layer, "head": head})
next_page_link(PATH)
