"""Embeddings: the token and position vectors the model starts from (book §2.7–2.8), and what training does to them."""

import streamlit as st

from core import embeddings as emb
from core.datasets import load_corpus
from core.tokenizers import display_bytes
from ui.cache import active_model, active_tokenizer, preset_model
from ui.figures_text import neighbours_frame, pca_scatter, preview_frame, similarity_heatmap
from ui.state import active_model_spec, describe_spec
from ui.widgets import guard, next_page_link, page_header, script_download, show_code

PATH = "views/embeddings.py"
EOT = "<|endoftext|>"
SENTENCE, FREQUENT = "this sentence's tokens", "the most frequent tokens of the built-in stories"
RANDOM_NOTE = ("At random init every vector is noise: the neighbours are whichever random vectors happen to point "
               "the same way, and the projection is a shapeless cloud. Training moves tokens used in similar "
               "contexts close together, so neighbours become related words and the projection shows clusters.")

page_header(
    PATH,
    "The model's first layer is two lookup tables: each token id picks a row of the token-embedding matrix and "
    "each position picks a row of the position-embedding matrix. Their sum is the vector the transformer "
    "blocks receive — below are its shapes, a 2-D/3-D picture of the vectors and their nearest neighbours.",
)
spec = active_model_spec()
st.markdown(f"Active model: **{describe_spec(spec)}** (change it in the sidebar).")
tok = active_tokenizer()


def label(token_id: int) -> str:
    return display_bytes(tok.token_bytes(token_id))


def corpus_ids() -> list[int]:
    return tok.encode(load_corpus("builtin-corpus"), allowed_special={EOT})


def shapes_section(model) -> list[int] | None:
    """tok_emb/pos_emb sizes, then the §2.8 lookup for a typed sentence; returns the sentence's ids used."""
    cfg = model.cfg
    m = st.columns(3)
    m[0].metric("Token embedding tok_emb (vocab × emb_dim)", f"{cfg.vocab_size:,} × {cfg.emb_dim}")
    m[1].metric("Position embedding pos_emb (context × emb_dim)", f"{cfg.context_length:,} × {cfg.emb_dim}")
    m[2].metric("Embedding parameters", f"{(cfg.vocab_size + cfg.context_length) * cfg.emb_dim:,}")
    sentence = st.text_input("Sentence", "Every morning the keeper climbed the lighthouse stairs.", key="emb_text")
    if not sentence.strip():
        st.warning("The sentence is empty: type a few words to see their embeddings.")
        return None
    with guard("embedding the sentence"):
        look = emb.embed_ids(model, tok.encode(sentence, allowed_special={EOT}, disallowed_special=()))
        ids = look.ids[0].tolist()
        if look.truncated:
            st.info(f"The sentence has {look.n_tokens:,} tokens but the model has only {cfg.context_length:,} "
                    "positions, so the first ones are used.", icon=":material/content_cut:")
        t, c = len(ids), cfg.emb_dim
        rows = [("ids", (1, t), f"a batch of one sequence of {t} tokens"),
                ("token embeddings", (1, t, c), "tok_emb(ids)"),
                ("position embeddings", (t, c), f"pos_emb(torch.arange({t}))"),
                ("input embeddings", (1, t, c), "token + position, broadcast over the batch")]
        st.code("\n".join(f"{name:<21}{str(shape):<16}# {why}" for name, shape, why in rows), language="python")
        labels = [label(i) for i in ids]
        cols = st.columns(3)
        for col, title, mat in zip(cols, ("Token embeddings [0]", "Position embeddings", "Input embeddings [0]"),
                                   (look.token_embeddings[0], look.position_embeddings, look.input_embeddings[0])):
            col.markdown(f"**{title}** (first rows and columns)")
            col.dataframe(preview_frame(mat, labels, rows=4, cols=4), width="stretch")
        show_code(emb.embed_ids, label="Show the code: the two lookups and their sum")
        return ids
    return None


def projection_section(model, ids: list[int] | None) -> None:
    st.subheader("Where the tokens sit: a PCA projection")
    c1, c2, c3 = st.columns([3, 2, 1])
    what = c1.radio("Project", [SENTENCE, FREQUENT], key="emb_proj_source")
    n = c2.slider("How many frequent tokens", 20, 300, 100, key="emb_top_n", disabled=what == SENTENCE)
    dims = c3.radio("View", [2, 3], format_func=lambda d: f"{d}-D", key="emb_dims")
    with guard("projecting the embeddings"):
        if what == SENTENCE:
            chosen = list(dict.fromkeys(ids or []))  # each distinct token once, in sentence order
            hover = [f"{label(i)} · id {i}" for i in chosen]
        else:
            freq = emb.most_frequent_tokens(corpus_ids(), n)
            chosen, hover = [i for i, _ in freq], [f"{label(i)} · id {i} · {c:,}×" for i, c in freq]
        proj = emb.pca(emb.token_vectors(model, chosen), n_components=dims)
        st.plotly_chart(pca_scatter(proj.coords, [label(i) for i in chosen], proj.explained_variance_ratio,
                                    hover=hover), width="stretch", key="emb_pca")
        st.caption(f"Each point is one token's row of tok_emb ({model.cfg.emb_dim} numbers) projected onto the "
                   f"{dims} directions along which these rows vary most. {RANDOM_NOTE}")
    show_code(emb.most_frequent_tokens, emb.token_vectors, emb.pca, label="Show the code: the PCA projection")


def neighbours(model, query: int, candidates) -> None:
    with guard("finding neighbours"):
        pairs = emb.nearest_neighbours(model.tok_emb, query, k=10, candidates=candidates)
        st.dataframe(neighbours_frame(pairs, label), hide_index=True, width="stretch")


def positions(model, key: str) -> None:
    with guard("comparing positions"):
        sim = emb.position_similarity(model, emb.MAX_POSITIONS)
        st.plotly_chart(similarity_heatmap(sim), width="stretch", key=key)


model = None
with guard("loading the model"):
    model = active_model()
if model is not None:
    st.subheader("Shapes: from ids to input embeddings")
    ids = shapes_section(model)
    projection_section(model, ids)

    st.subheader("Nearest neighbours by cosine similarity")
    n1, n2 = st.columns(2)
    query = n1.selectbox("Token", list(dict.fromkeys(ids or [])) or [tok.encode(" the")[0]], format_func=label,
                         key="emb_query", help="The tokens of the sentence above.")
    scope = n2.radio("Search among", ["the whole vocabulary", "tokens of the built-in stories"], key="emb_scope")
    candidates = corpus_ids() if scope != "the whole vocabulary" else None
    neighbours(model, query, candidates)
    script_download("embeddings", {"spec": spec, "sentence": st.session_state.get("emb_text", ""), "query": query,
                                   "scope": "vocabulary" if candidates is None else "corpus"})
    st.caption("Cosine similarity compares directions: 1 = the same direction, 0 = unrelated, −1 = opposite. "
               "Among tens of thousands of random vectors a few always point roughly the same way by chance, so "
               "at random init the top similarities are sizeable but mean nothing.")
    show_code(emb.nearest_neighbours, label="Show the code: nearest neighbours")

    st.subheader(f"Position embeddings: how similar are the first {emb.MAX_POSITIONS} positions?")
    positions(model, "emb_pos")
    st.caption("Cell (i, j) is the cosine similarity of the vectors for positions i and j. GPT-2's positions "
               "form smooth bands (nearby positions are alike); at random init only the diagonal stands out.")
    show_code(emb.position_similarity, label="Show the code: position similarity")

    st.subheader("Random init vs trained")
    if spec["kind"] == "preset":
        st.info("The active model is randomly initialised. Train one on the Pretraining page (or load GPT-2 "
                "weights in the sidebar) and come back to compare it with its random start.",
                icon=":material/compare_arrows:")
    elif st.toggle("Compare with the same architecture at random init", key="emb_compare"):
        preset = emb.matching_preset(model.cfg)
        if preset is None:
            st.info("This model's sizes match no preset, so it is compared with the tiny preset: the vectors "
                    "have other sizes, so compare the patterns, not the numbers.", icon=":material/info:")
        with guard("building the random-init model"):
            base = preset_model(preset or "tiny")
            for col, title, mdl in zip(st.columns(2), ("Active model (trained)", f"{preset or 'tiny'}, random init"),
                                       (model, base)):
                with col:
                    st.markdown(f"**{title}** — neighbours of {label(query)!r}")
                    neighbours(mdl, query, candidates)
                    positions(mdl, f"emb_pos_{title}")
    show_code(emb.matching_preset, label="Show the code: the matching random-init model")
next_page_link(PATH)
