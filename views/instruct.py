"""Instruction fine-tuning (chapter 7): Alpaca prompts, the loss-mask X-ray, before/after responses and scores."""

from dataclasses import asdict

import streamlit as st

from core import guided
from core import instruct_job as ft
from core.instruct import (
    calc_loss_batch,
    clean_answer,
    custom_collate_fn,
    format_example,
    format_input,
    generate_responses,
    score_responses,
    train_instruct,
)
from core.instruct_data import loss_mask_view
from core.instruct_score import exact_match, similarity_score, token_f1
from core.model_spec import tied_head_note
from ui.cache import active_model, active_tokenizer, parsed_instructions
from ui.figures_finetune import instruct_curves, loss_mask_html
from ui.job_panel import JobPanel, finetune_controls, save_target
from ui.state import active_model_spec, describe_spec, limits, visitor
from ui.widgets import dataset_source, guard, next_page_link, page_header, script_download, show_code, uploader

PATH = "views/instruct.py"
PANEL = JobPanel("instruct", "ins", url_param="ins_run")

page_header(
    PATH,
    "Instruction fine-tuning trains on ordinary next-token prediction, but over texts in a fixed template "
    "(Alpaca: instruction, optional input, response), so the model learns to answer after `### Response:`. "
    "Padding — and, if you choose, the prompt — is kept out of the loss by setting those targets to -100.",
)
spec = active_model_spec()
tied = (note := tied_head_note(active_model())) is not None
if tied:
    st.caption(f":material/link: {note}")
st.caption(f"Model: **{describe_spec(spec)}** (change it in the sidebar). Training uses a copy; the model "
           "itself never changes.")
scratch = spec["kind"] != "hf"  # a small model (random or trained here): settings that teach it in ~2 minutes
if spec["kind"] == "preset":
    st.info("This model has random weights: a couple of minutes of fine-tuning teach it the template (to answer "
            "after `### Response:` and stop) and the easy tasks (copy a word, answer yes/no or positive/negative), "
            "not language. The settings below are suggested for that; the book starts from pretrained GPT-2 medium.",
            icon=":material/info:")

source, records = dataset_source("instruction", "ins", "Upload JSON / JSONL")
upload = None  # what the script needs to read the same upload again
if source == "upload":
    with guard("reading the upload"):
        up = uploader('A JSON list of {"instruction", "input", "output"} records, or JSON lines',
                      type=["json", "jsonl"], key="ins_upload")
        if up is not None:
            records, info = parsed_instructions(up.getvalue(), up.name)
            upload = {"name": up.name}
            st.caption(f"{info['records']:,} records ({info['with_input']:,} with an input)"
                       + (f"; ignored keys: {', '.join(info['ignored_keys'])}" if info["ignored_keys"] else ""))

context = active_model().cfg.context_length
if records is not None:
    with guard("preparing the data"):
        train, val, test, notes = ft.instruction_splits(records)
        st.caption(f"Split as the book (85 % / 5 % / 10 %): {len(train):,} training, {len(val):,} validation, "
                   f"{len(test):,} test records. " + " ".join(notes))
        left, right = st.columns(2)
        i = int(left.number_input("Example to preview", 0, len(records) - 1, 0, key="ins_example"))
        left.markdown("**The record**")
        left.json(records[i])
        right.markdown("**Rendered with the Alpaca template** (what the model trains on)")
        right.code(format_example(records[i], i), language=None, wrap_lines=True)
        show_code(ft.instruction_splits, format_input, format_example,
                  label="Show the code: the split and the template")

        st.subheader("X-ray of one training batch")
        mask = st.toggle("Mask the prompt (only the response counts in the loss)", scratch, key="ins_mask",
                         help="The prompt here is the instruction, its input and the `### Response:` header: "
                              "the lab writes the header when the model answers, so nothing of the template "
                              "needs learning. The book's exercise 7.2 masks the instruction and input only.")
        st.html(loss_mask_html(ft.xray_batch(train, active_tokenizer(), mask, context, n=2)))
        st.caption(f"The first two training records collated as in training (cut to the model's {context}-token "
                   "context): each sequence gets one <|endoftext|>, the batch is padded with more of them, and "
                   "targets are the inputs shifted by one. Hover a token to see the target it predicts.")
        show_code(custom_collate_fn, loss_mask_view, label="Show the code: the collate function and its loss mask")

st.subheader("Settings")
start = guided.instruct_settings(from_scratch=scratch)  # the guided path's settings for this kind of model
c = st.columns(4)
epochs = int(c[0].number_input("Epochs", 1, 20, start.epochs, key="ins_epochs"))
max_steps = int(c[1].number_input("Max steps (0 = whole epochs)", 0, 100_000, start.max_steps or 0,
                                  key="ins_max_steps"))
lr = c[2].select_slider("Learning rate", [1e-5, 5e-5, 1e-4, 5e-4, 1e-3], start.lr, key="ins_lr",
                        format_func=lambda v: f"{v:g}", help="The book: 5e-5 for pretrained GPT-2 medium; a "
                        "random-init tiny model needs a larger one.")
batch = int(c[3].number_input("Batch size", 1, 32, start.batch_size, key="ins_batch"))
c = st.columns(4)
max_len = int(c[0].number_input(f"Max length (≤ {context})", 2, context, context, key="ins_max_len"))
n_eval = int(c[1].number_input("Test examples to answer", 1, 50, start.n_eval, key="ins_n_eval"))
max_new = int(c[2].number_input("Max new tokens per answer", 1, limits().cap("max_new_tokens", 256),
                                start.max_new_tokens, key="ins_max_new"))
mask = bool(st.session_state.get("ins_mask", scratch))
c[3].caption(f"Prompt masking: **{'on' if mask else 'off'}** (the toggle above the X-ray).")
untie = tied and st.toggle("Untie the output head (as in the book)", False, key="ins_untie",
                          help="The fine-tuned copy gets its own output head, a copy of the token embedding, "
                               "so the two train apart as in the book's GPT-2.")
settings = ft.InstructSettings(source, epochs, max_steps or None, lr, batch, max_len, mask, n_eval, max_new,
                               eval_every=max(5, (max_steps or 100) // 20), untie_head=bool(untie))

snap, result = finetune_controls(
    PANEL, lambda: ft.start_instruct_job(active_model(), active_tokenizer(), records, settings,
                                         visitor=visitor(), save=save_target(active_tokenizer())),
    ready=records is not None, curves=instruct_curves,
    idle=f"Press **Start**: the model first answers {n_eval} test prompts, then fine-tunes (curves appear "
         "here), then answers them again.",
)
show_code(train_instruct, calc_loss_batch, label="Show the code: the fine-tuning loop and its loss")
if result is not None and snap["status"] in ("finished", "stopped") and result.details:
    d = result.details
    sb, sa, answered = d["score_before"], d["score_after"], d["answered"]
    if sa is None:
        st.info(result.message, icon=":material/pause_circle:")
    else:
        st.subheader(f"Before and after fine-tuning ({sa['n']} test examples, greedy decoding)")
        if answered["after"] < answered["of"]:
            st.info(result.message, icon=":material/pause_circle:")
        m = st.columns(3)
        vs = {"delta_description": "vs before"}
        m[0].metric("Exact match", f"{sa['exact_match']:.0%}", f"{sa['exact_match'] - sb['exact_match']:+.0%}",
                    help=ft.SCORE_HELP["exact_match"], **vs)
        m[1].metric("Token F1", f"{sa['token_f1']:.2f}", f"{sa['token_f1'] - sb['token_f1']:+.2f}",
                    help=ft.SCORE_HELP["token_f1"], **vs)
        m[2].metric("Similarity (heuristic)", f"{sa['similarity']:.2f}",
                    f"{sa['similarity'] - sb['similarity']:+.2f}", help=ft.SCORE_HELP["similarity"], **vs)
        names = {"exact_match": "Exact match", "token_f1": "Token F1", "similarity": "Similarity"}
        st.caption(" · ".join(f"**{names[k]}**: {v}" for k, v in ft.SCORE_HELP.items()))
    if result.settings["dataset"] != "builtin-instructions":
        st.caption("The book's answers are free text, so exact match and token F1 are harsh and the similarity is "
                   "only a **heuristic**: the book scores them with an LLM judge (Llama 3) instead.")
    text = {c: st.column_config.TextColumn(width="medium") for c in ("instruction", "before", "after")}
    st.dataframe(ft.responses_table(d), hide_index=True, width="stretch", column_config={
        **text, "reference": st.column_config.TextColumn(width="small"),
        "token F1 after": st.column_config.NumberColumn(format="%.2f", width="small")})
    st.download_button("Download the responses (JSON, the book's format)", d["json"], "instruction-responses.json",
                       "application/json", icon=":material/download:", key="ins_json")
    show_code(generate_responses, clean_answer, score_responses, exact_match, token_f1, similarity_score,
              label="Show the code: answering the test prompts and scoring them")
if records is not None:
    if result is not None and result.settings != asdict(settings):
        st.caption("The script uses the settings above, which differ from those of the run shown.")
    script_download("instruct", {"spec": spec, "settings": asdict(settings), "upload": upload})
next_page_link(PATH)
