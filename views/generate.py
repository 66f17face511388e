"""Generation playground: decode with temperature, top-k, top-p and a seed; see every step's candidates."""

import streamlit as st

from core.generate import _decode, _distribution, generate, logits_to_probs, sampling_distribution
from core.generate_steps import _trace_step, generate_traced, playground_generate
from ui.cache import active_model, active_tokenizer
from ui.figures_model import colored_tokens_html, format_prob, probability_bars, probability_legend_html
from ui.state import active_model_spec, describe_spec
from ui.widgets import guard, next_page_link, page_header, script_download, show_code

PATH = "views/generate.py"
RESULT = "gen_result"  # session key: the last generation survives reruns caused by other widgets

page_header(
    PATH,
    "A GPT only ever predicts a probability for every possible next token; *decoding* picks one, appends "
    "it and repeats. Temperature sharpens or flattens the distribution, top-k keeps the k likeliest tokens "
    "and top-p the smallest set whose probabilities add up to p; temperature 0 always takes the likeliest "
    "(greedy).",
)

spec = active_model_spec()
st.caption(f"Model: **{describe_spec(spec)}** (change it in the sidebar) · tokenizer: GPT-2 BPE")
if spec.get("kind") == "preset":
    st.info("This model has random weights, so it writes gibberish: every token is about equally likely. "
            "Train one on the Pretraining page, or load GPT-2 weights in the sidebar's model picker, to see "
            "real text.", icon=":material/info:")
    st.page_link("views/pretrain.py", label="Train a model on the Pretraining page", icon=":material/monitoring:")

prompt = st.text_area("Prompt", value="Every effort moves you", height=80, key="gen_prompt")
c = st.columns(5)
max_new = c[0].slider("Max new tokens", 1, 100, 20, key="gen_max_new")
temperature = c[1].slider("Temperature", 0.0, 2.0, 1.0, 0.05, key="gen_temperature",
                          help="0 = greedy (always the likeliest token); < 1 sharper; > 1 flatter.")
top_k = c[2].number_input("Top-k (0 = off)", 0, 50_257, 50, key="gen_top_k")
top_p = c[3].slider("Top-p (1.0 = off)", 0.05, 1.0, 1.0, 0.05, key="gen_top_p")
seed = int(c[4].number_input("Seed", 0, 1_000_000, 123, key="gen_seed"))

if st.button("Generate", type="primary", icon=":material/play_arrow:", key="gen_go"):
    st.session_state.pop(RESULT, None)
    with guard("generating"), st.spinner("Generating…"):
        model, tok = active_model(), active_tokenizer()
        run = playground_generate(model, tok, prompt, max_new, temperature, top_k, top_p, seed)
        greedy = run if temperature == 0 else playground_generate(model, tok, prompt, max_new, 0.0, seed=seed)
        st.session_state[RESULT] = {"run": run, "greedy": greedy, "settings":
                                    f"temperature {temperature:g}, top-k {top_k or 'off'}, "
                                    f"top-p {top_p if top_p < 1 else 'off'}, seed {seed}"}
if prompt.strip():  # the settings above, and the active model rebuilt from its spec
    script_download("generate", {"spec": spec, "prompt": prompt, "max_new_tokens": max_new,
                                 "temperature": temperature, "top_k": top_k, "top_p": top_p, "seed": seed})

show_code(sampling_distribution, logits_to_probs, label="Show the code: what temperature, top-k and top-p do")
result = st.session_state.get(RESULT)
if result is None:
    st.caption("Press **Generate** to continue the prompt.")
else:
    run, greedy = result["run"], result["greedy"]
    st.subheader("Output")
    if run.prompt_truncated:
        st.info("The prompt is longer than the model's context: only its last tokens were used.",
                icon=":material/content_cut:")
    st.html(colored_tokens_html(run.prompt, run.pieces, run.probs))
    st.html(probability_legend_html())
    st.caption(f"Generated {len(run.pieces)} new tokens with {result['settings']}.")
    show_code(playground_generate, generate_traced, label="Show the code: the generation loop that ran")

    st.subheader("Step by step: the candidates")
    n = len(run.trace.steps)
    step = st.slider("Step", 1, n, 1, key="gen_step") if n > 1 else 1
    s = run.trace.steps[step - 1]
    cands = s.candidates
    ids = [cd.id for cd in cands]
    tok = active_tokenizer()
    st.plotly_chart(
        probability_bars([tok.decode([i]) for i in ids], [cd.prob_raw for cd in cands],
                         [cd.prob_final for cd in cands], [cd.kept for cd in cands],
                         ids.index(s.chosen_id) if s.chosen_id in ids else None),
        width="stretch", key="gen_bars",
    )
    st.caption(f"Step {step}: chose {tok.decode([s.chosen_id])!r} (id {s.chosen_id}) with probability "
               f"{format_prob(s.chosen_prob)} after filtering ({format_prob(s.chosen_prob_raw)} before). "
               f"{s.n_kept:,} tokens were still allowed; entropy of the distribution {s.entropy:.2f} nats. "
               "Grey: plain softmax of the logits; blue: after temperature, top-k and top-p (renormalised); "
               "hatched: filtered.")
    show_code(_trace_step, _distribution, label="Show the code: one step's candidates and filters")

    st.subheader("Greedy vs sampled")
    left, right = st.columns(2)
    with left:
        st.markdown("**Greedy** (temperature 0: always the likeliest token)")
        st.html(colored_tokens_html(greedy.prompt, greedy.pieces, greedy.probs))
    with right:
        st.markdown(f"**Your settings** ({result['settings']})")
        st.html(colored_tokens_html(run.prompt, run.pieces, run.probs))
    if greedy is run:
        st.caption("Your temperature is 0, so your run is greedy too: both columns are the same.")
    else:
        st.caption("Greedy decoding is deterministic and tends to repeat itself; sampling trades some "
                   "likelihood for variety, and the seed makes it reproducible.")
    show_code(generate, _decode, label="Show the code: greedy and sampled decoding")
next_page_link(PATH)
