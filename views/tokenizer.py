"""Tokenizer playground: text → coloured tokens and ids, the round trip, two tokenizers side by side, your own BPE."""

import streamlit as st

from core.datasets import load_corpus
from core.tokenizers import REGISTRY, describe_tokenizer, train_bpe
from core.tokenizers.base import Tokenizer
from ui.cache import tokenizer
from ui.figures_text import ids_frame, merges_frame, token_spans_html
from ui.widgets import guard, next_page_link, page_header, script_download, show_code, text_source

PATH = "views/tokenizer.py"
MAX_SPANS = 2_000  # more coloured boxes than this make the browser sluggish; counts still use every token
EOT = "<|endoftext|>"
DEFAULT_TEXT = ("Our lighthouse keeper counted 1,024 gulls at dawn — then made tea! 🐦 "
                f"{EOT} A new story starts: the baker's oven hummed at 5:30 am.")
NAMES = {entry.name: entry.label or entry.name for entry in REGISTRY.values()}
SOURCES = ("this text", "the built-in corpus")

page_header(
    PATH,
    "A model never sees letters: a tokenizer cuts text into pieces and gives each piece an integer id from its "
    "vocabulary. Type or upload text, pick a tokenizer, and hover a coloured token to see its id and bytes.",
)

text = text_source("tok", DEFAULT_TEXT, "Text to tokenize", height=110)
c1, c2, c3 = st.columns([2, 2, 1])
name = c1.selectbox("Tokenizer", list(NAMES), format_func=NAMES.get, key="tok_name")
source = c2.radio("Vocabulary learned from", SOURCES, horizontal=True, key="tok_vocab_source",
                  disabled=REGISTRY[name].vocab_from not in ("choice", "training"),
                  help="simple-v1/v2 and your BPE learn their vocabulary from a text; char always uses this text.")
allow = c3.checkbox(f"allow {EOT}", value=True, key="tok_allow",
                    help=f"On: {EOT} becomes one special token. Off: it is split like ordinary text.")
st.caption(describe_tokenizer(name))
allowed = {EOT} if allow else set()


def vocab_text() -> str:
    return load_corpus("builtin-corpus") if source == SOURCES[1] else text


def bpe_section() -> None:
    """Vocabulary-size slider, Train button with live progress, and the learned merges."""
    b1, b2 = st.columns([3, 1], vertical_alignment="bottom")
    size = b1.slider("Vocabulary size (256 bytes + merges + <|endoftext|>)", 257, 2048, 512, key="tok_bpe_size")
    if b2.button("Train", type="primary", key="tok_bpe_train", width="stretch"):
        bar = st.progress(0.0, text="Training…")
        with guard("training the BPE tokenizer"):
            corpus = vocab_text()
            trained = train_bpe(corpus, size, progress=lambda done, total: bar.progress(
                done / max(total, 1), text=f"{done:,} of {total:,} merges"))
            st.session_state["tok_bpe"] = trained
            st.session_state["tok_bpe_from"] = f"{len(corpus):,} characters of {source}"
            st.session_state["tok_bpe_source"] = source
        bar.empty()
    tok = st.session_state.get("tok_bpe")
    if tok is None:
        st.info(f"Press **Train** to learn merges from {source}.", icon=":material/school:")
        return
    st.caption(f"Trained on {st.session_state.get('tok_bpe_from', 'a text')} in {tok.train_seconds:.2f} s: "
               f"{len(tok.merges):,} merges, {tok.n_vocab:,} ids. Change the settings and press Train again.")
    if tok.stopped_early:
        st.info(f"The text ran out of pairs to merge after {len(tok.merges):,} merges, so the vocabulary has "
                f"{tok.n_vocab:,} ids instead of {tok.requested_vocab_size:,}; use a longer text for more.")
    with st.expander(f"The {len(tok.merges):,} merges, in the order they were learned"):
        st.dataframe(merges_frame(tok.merges_table()), hide_index=True, width="stretch", height=300)
    show_code(train_bpe, type(tok).encode_chunk, label="Show the code: training the BPE and applying its merges")


def build(tok_name: str):
    """The tokenizer object for a name (cached; BPE comes from this session's training)."""
    vocab_from = REGISTRY[tok_name].vocab_from
    if vocab_from == "training":
        return st.session_state.get("tok_bpe")
    if vocab_from == "none":
        return tokenizer(tok_name)
    return tokenizer(tok_name, text if vocab_from == "text" else vocab_text())


def encode(tok_name: str):
    """(tokenizer, spans) for the text, or (None, None) when there is nothing to show."""
    with guard(f"tokenizing with {tok_name}"):
        tok = build(tok_name)
        if tok is None:
            return None, None
        return tok, tok.spans(text, allowed_special=allowed, disallowed_special=())
    return None, None


def render_spans(spans) -> None:
    st.html(token_spans_html(spans[:MAX_SPANS]))
    if len(spans) > MAX_SPANS:
        st.caption(f"Showing the first {MAX_SPANS:,} of {len(spans):,} tokens; the counts use all of them.")


def main_view() -> None:
    tok, spans = encode(name)
    if spans is None:
        return
    ids = [s.id for s in spans]
    m = st.columns(4)
    m[0].metric("Characters", f"{len(text):,}")
    m[1].metric("Tokens", f"{len(ids):,}")
    m[2].metric("Characters per token", f"{len(text) / len(ids):.2f}" if ids else "—")
    m[3].metric("Vocabulary size", f"{tok.n_vocab:,}")
    render_spans(spans)
    st.caption("Each box is one token (colours only tell neighbours apart). · is a space, ↵ a newline; "
               f"purple = special token ({EOT}, <|unk|>); a dashed outline = bytes of a character split "
               "across tokens, shown as hex.")
    decoded = tok.decode(ids)
    if decoded == text:
        st.success("Round trip: decode(encode(text)) gives back exactly the text.", icon=":material/check:")
    else:
        why = ("Word tokenizers drop whitespace and re-insert single spaces when decoding, and simple-v2 replaces "
               "every unknown word with <|unk|>, so the exact text cannot come back."
               if name.startswith("simple") else "Some characters could not be represented exactly.")
        st.warning(f"Round trip: decode(encode(text)) differs from the text. {why}", icon=":material/sync_problem:")
        st.code(decoded[:2_000], language=None, wrap_lines=True)
    with st.expander("Token ids as a table"):
        st.dataframe(ids_frame(spans[:MAX_SPANS]), hide_index=True, width="stretch", height=300)
    show_code(type(tok).encode, type(tok)._segment_spans, type(tok).decode,
              label=f"Show the code: {NAMES[name]} encode and decode")
    learned_from = st.session_state.get("tok_bpe_source", source) if name == "bpe" else source
    script_download("tokenizer", {
        "name": name, "text": text, "allow_endoftext": allow,
        "vocab_source": "builtin-corpus" if learned_from == SOURCES[1] else "text",
        **({"bpe_size": tok.requested_vocab_size} if name == "bpe" else {})})  # fmt: skip


def compare_view() -> None:
    st.subheader("Compare two tokenizers on the same text")
    for col, default, key in zip(st.columns(2), ("gpt2", "char"), ("tok_cmp_a", "tok_cmp_b")):
        with col:
            other = st.selectbox("Tokenizer", list(NAMES), index=list(NAMES).index(default),
                                 format_func=NAMES.get, key=key)
            o_tok, o_spans = encode(other)
            if o_spans is not None:
                st.metric(f"Tokens ({NAMES[other]})", f"{len(o_spans):,}", help=f"Vocabulary of {o_tok.n_vocab:,} ids.")
                render_spans(o_spans)
            elif other == "bpe":
                st.info("Choose “your own BPE” above and press Train first.")
    show_code(Tokenizer.spans, Tokenizer.split_special, label="Show the code: the spans both columns count")


if REGISTRY[name].vocab_from == "training":
    bpe_section()
if not text:
    st.warning("The text is empty: type something above or upload a .txt file to see its tokens.")
else:
    if not text.strip():
        st.info("The text is only whitespace. GPT-2 still has tokens for spaces and newlines; the tokenizers that "
                "build their vocabulary from this text need some words to build it from.", icon=":material/space_bar:")
    main_view()
    compare_view()
next_page_link(PATH)
