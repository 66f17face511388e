"""Sampling windows: cut a token stream into input windows and their one-token-shifted targets (book §2.6)."""

import streamlit as st

from core.data import GPTDataset, create_dataloader, describe_windows, sliding_windows, to_token_ids, window_count
from core.datasets import is_available, load_corpus
from core.errors import LabError
from core.tokenizers import display_bytes
from ui.cache import tokenizer
from ui.figures_text import batch_frame, context_pairs_frame, stream_legend_html, window_stream_html
from ui.widgets import guard, next_page_link, page_header, script_download, show_code, text_source

PATH = "views/sampling.py"
CONTEXT_TOKENS = 40  # tokens shown before and after the chosen window
MAX_STREAM = 400  # tokens shown at most in the stream view
BUILTIN, VERDICT, OWN = "Built-in stories", "The Verdict (book)", "Your own text (type or upload)"
DEFAULT_TEXT = ("The river ran past the mill, and every morning the miller counted the sacks twice. "
                "The first count was for the farmers; the second was for himself, because numbers "
                "that are written down tend to stay honest.")

page_header(
    PATH,
    "A language model learns to predict the next token at every position, so each training example is a window "
    "of `max_length` token ids (the input x) and the same window moved one token to the right (the target y). "
    "The window slides `stride` tokens along the text for the next example; batches stack several windows.",
)

sources = [BUILTIN, *([VERDICT] if is_available("the-verdict") else []), OWN]
choice = st.radio("Text", sources, horizontal=True, key="smp_source")
if VERDICT not in sources:
    st.caption("“The Verdict”, the short story the book uses, is not downloaded yet: get it on the Pretraining "
               "page and it appears here.")
text = ""
if choice == OWN:
    text = text_source("smp", DEFAULT_TEXT, "Your text", height=100)
else:
    with guard("loading the corpus"):
        text = load_corpus("builtin-corpus" if choice == BUILTIN else "the-verdict")

c1, c2, c3 = st.columns(3)
max_length = c1.slider("Context length (max_length)", 1, 256, 4, key="smp_len",
                       help="Tokens per input window: how far back the model can look.")
stride = c2.slider("Stride", 1, 256, 4, key="smp_stride",
                   help="How far each window moves. stride = max_length: no overlap; smaller: windows overlap.")
batch_size = c3.slider("Batch size", 1, 16, 8, key="smp_batch", help="Windows stacked into one training step.")
st.caption("Tokens come from GPT-2's tokenizer, as in the book; <|endoftext|> counts as one token.")

tok = tokenizer("gpt2")
ids = None
with guard("tokenizing the text"):
    ids = to_token_ids(text, tok)  # (n_tokens,)

loader = None
if ids is not None:
    info = describe_windows(len(ids), max_length, stride)
    m = st.columns(5)
    m[0].metric("Tokens", f"{len(ids):,}")
    m[1].metric("Windows", f"{window_count(len(ids), max_length, stride):,}")
    m[2].metric("Overlap (tokens)", f"{info['overlap']:,}", help="Input tokens two neighbouring windows share.")
    m[3].metric("Gap (tokens)", f"{info['gap']:,}", help="Tokens between two windows that no window uses.")
    m[4].metric("Unused at end (tokens)", f"{info['tokens_unused_at_end']:,}",
                help="Tokens after the last window: too few for another input plus its target.")
    try:
        loader = create_dataloader(ids, batch_size=batch_size, max_length=max_length, stride=stride,
                                   shuffle=False, drop_last=False)
    except LabError as err:
        st.warning(str(err), icon=":material/short_text:")
    if info["gap"]:
        st.info(f"stride is larger than max_length + 1, so {info['gap']:,} tokens between two windows are never "
                "seen in training.", icon=":material/warning:")
    show_code(window_count, describe_windows, label="Show the code: counting windows, overlap and gaps")


def label(token_id: int) -> str:
    return display_bytes(tok.token_bytes(token_id))


if loader is not None:
    n_windows = len(loader.dataset)
    st.subheader("One window: input x and target y")
    k = st.slider("Window", 1, n_windows, 1, key="smp_window") - 1 if n_windows > 1 else 0
    inputs, targets = sliding_windows(ids, max_length, stride)  # (N, L) each, views into ids
    x, y = inputs[k].tolist(), targets[k].tolist()
    start = k * stride
    lo = max(0, start - CONTEXT_TOKENS)
    hi = min(len(ids), start + max_length + 1 + CONTEXT_TOKENS, lo + MAX_STREAM)
    st.html(stream_legend_html())
    st.html(window_stream_html([label(i) for i in ids[lo:hi].tolist()], lo, (start, start + max_length),
                               (start + 1, start + max_length + 1)))
    shown = f"tokens {lo:,}–{hi - 1:,} of {len(ids):,}"
    st.caption(f"Window {k + 1:,} of {n_windows:,} starts at token {start:,} ({shown}); hover a token for its "
               "position. Every target token is the input token one place to its right.")
    st.markdown("**What the model learns from this window** — the context so far → the next token, as the "
                f"book prints it (the first {min(4, max_length)} of the window's {max_length} predictions):")
    st.dataframe(context_pairs_frame(x, y, label, n=4), hide_index=True, width="stretch")
    show_code(to_token_ids, sliding_windows, label="Show the code: one window and its target")

    st.subheader("The first batch of the data loader")
    bx, by = next(iter(loader))  # (B, L) each
    st.caption(f"create_dataloader(…, batch_size={batch_size}, max_length={max_length}, stride={stride}, "
               f"shuffle=False): inputs and targets are both {tuple(bx.shape)}. With drop_last=True (the book's "
               f"setting for training) an epoch has {n_windows // batch_size:,} full batches.")
    if len(bx) < batch_size:
        st.caption(f"The text gives only {n_windows} windows, so this batch holds {len(bx)} instead of "
                   f"{batch_size}; training with drop_last=True would skip it.")
    for title, rows in (("Inputs x", bx), ("Targets y", by)):
        st.markdown(f"**{title}**")
        st.dataframe(batch_frame(rows.tolist(), [tok.decode(r) for r in rows.tolist()]), hide_index=True,
                     width="stretch")
    show_code(create_dataloader, GPTDataset, label="Show the code: the dataset and its data loader")
if ids is not None:
    script_download("sampling", {"source": {BUILTIN: "builtin-corpus", VERDICT: "the-verdict"}.get(choice, "text"),
                                 "text": text, "max_length": max_length, "stride": stride, "batch_size": batch_size})
next_page_link(PATH)
