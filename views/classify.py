"""Classification fine-tuning (chapter 6): spam or ham, live curves, test accuracy, a confusion matrix, ablations."""

from dataclasses import asdict

import pandas as pd
import streamlit as st

from core import classify_job as ft
from core import guided
from core.classify import MODES, POSITIONS, classify_logits, evaluate, predict, prepare_classifier, train_classifier
from core.classify_data import ClassificationDataset, classification_collate
from core.datasets import label_mapping
from ui.cache import active_model, active_tokenizer, parsed_table
from ui.figures_finetune import classify_curves, confusion_figure
from ui.job_panel import JobPanel, finetune_controls, save_target
from ui.state import active_model_spec, describe_spec, visitor
from ui.widgets import dataset_source, guard, next_page_link, page_header, script_download, show_code, uploader

PATH = "views/classify.py"
PANEL = JobPanel("classify", "cls", url_param="cls_run")
ABLATION = "cls_ablation"  # session key: finished runs' results
MODES_TEXT = {"last-block": "last block + final norm + head (the book)", "all": "all layers",
              "lora": "LoRA (rank 8) on the blocks + head", "head-only": "only the new head"}
POS_TEXT = {"last": "last token (the book)", "first": "first token", "last-real": "last real (non-padding) token"}
GUESS = "(guess)"
MESSAGE = "URGENT: your account is locked. Call 0800 555 0199 now to claim your refund."

page_header(
    PATH,
    "The book turns a GPT into a spam filter by replacing its 50,257-way output head with a 2-way one and "
    "training it on labelled messages, reading the prediction at the last token, the only one whose attention "
    "has seen the whole message. Pick the data and what trains, press **Start**, and watch loss and accuracy.",
)
spec = active_model_spec()
st.caption(f"Model: **{describe_spec(spec)}** (change it in the sidebar). Training uses a copy; the model "
           "itself never changes.")
if spec["kind"] == "preset":
    st.info("This model has random weights, so whatever accuracy it reaches comes from the fine-tuning alone. A "
            "pretrained model (trained on the Pretraining page, or GPT-2 weights) starts from language it "
            "already knows and does better.", icon=":material/info:")

source, df = dataset_source("classification", "cls", "Upload a CSV/TSV")
upload = None  # what the script needs to read the same upload again
if source == "upload":
    with guard("reading the upload"):
        up = uploader("A CSV/TSV table: one text column and one label column (a header row, or none as in the "
                      "UCI SMSSpamCollection file)", key="cls_upload")  # any name: the content is checked
        if up is not None:
            cols = [GUESS, *ft.upload_columns(up.getvalue(), up.name)]
            a, b = st.columns(2)
            text_col = a.selectbox("Text column", cols, key="cls_text_col")
            label_col = b.selectbox("Label column", cols, key="cls_label_col")
            df, info = parsed_table(up.getvalue(), up.name, None if text_col == GUESS else text_col,
                                          None if label_col == GUESS else label_col)
            st.caption(f"Text column **{info['text_col']}**, label column **{info['label_col']}** "
                       f"({info['rows']:,} rows; {info['dropped_empty']} empty rows dropped).")
            upload = {"name": up.name, "text_col": None if text_col == GUESS else text_col,
                      "label_col": None if label_col == GUESS else label_col}
if df is not None:
    counts = df["label"].value_counts()
    ids = label_mapping(df)
    left, right = st.columns([3, 1])
    left.dataframe(df.head(500), hide_index=True, width="stretch", height=210)
    right.dataframe(pd.DataFrame({"label": counts.index, "class id": [ids[str(k)] for k in counts.index],
                                  "messages": counts.values}), hide_index=True, width="stretch")
    right.caption(f"{len(df):,} messages; labels map to class ids in sorted order.")
    show_code(ft.prepare_classification, ClassificationDataset, classification_collate,
              label="Show the code: the split, the dataset and its padding")

st.subheader("Settings")
start = guided.CLASSIFY  # the guided path's settings
c = st.columns(4)
mode = c[0].selectbox("What trains", MODES, format_func=MODES_TEXT.get, key="cls_mode")
position = c[1].selectbox("Token read for the class", POSITIONS, format_func=POS_TEXT.get, key="cls_position")
epochs = int(c[2].number_input("Epochs", 1, 50, start.epochs, key="cls_epochs"))
max_steps = int(c[3].number_input("Max steps (0 = whole epochs)", 0, 100_000, 0, key="cls_max_steps"))
c = st.columns(4)
lr = c[0].select_slider("Learning rate", [1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3], start.lr, key="cls_lr",
                        format_func=lambda v: f"{v:g}", help="The book: 5e-5.")
batch = int(c[1].number_input("Batch size", 1, 64, start.batch_size, key="cls_batch"))
context = active_model().cfg.context_length
max_len = int(c[2].number_input(f"Max length (0 = longest, ≤ {context})", 0, context, 0, key="cls_max_len"))
balance = c[3].toggle("Balance the classes (the book)", start.balance, key="cls_balance")
settings = ft.ClassifySettings(source, mode, position, epochs, max_steps or None, lr, batch, max_len or None, balance)

snap, result = finetune_controls(
    PANEL, lambda: ft.start_classify_job(active_model(), active_tokenizer(), df, settings, visitor=visitor(),
                                         save=save_target(active_tokenizer())),
    ready=df is not None, curves=classify_curves,
    idle="Press **Start** to fine-tune; curves appear here while it trains.",
)
show_code(prepare_classifier, train_classifier, classify_logits, label="Show the code: the new head and the training")
if result is not None and snap["status"] in ("finished", "stopped") and result.details:
    d, ev = result.details, result.details["evaluation"]
    st.subheader("Test set")
    m = st.columns(4)
    m[0].metric("Test accuracy", f"{ev['accuracy']:.1%}", f"{ev['accuracy'] - d['majority']:+.1%} vs baseline")
    m[1].metric("Majority-class baseline", f"{d['majority']:.1%}", help=f"Always answer '{d['majority_label']}'.")
    m[2].metric("Steps · examples seen", f"{d['steps']} · {d['examples_seen']:,}")
    m[3].metric("Trainable parameters", f"{d['trainable']['trainable']:,}",
                f"{d['trainable']['trainable_pct']:.1f}% of all", delta_color="off", delta_arrow="off")
    for note in d["notes"]:
        st.caption(note)
    left, right = st.columns([1, 2])
    left.plotly_chart(confusion_figure(ev["confusion"], d["labels"]), width="stretch", key="cls_confusion")
    wrong = ft.misclassified(ev)
    right.markdown(f"**Misclassified test messages**: {len(wrong):,} of {len(ev['per_example']):,}, the most "
                   "confident mistakes first")
    right.dataframe(wrong, hide_index=True, width="stretch", height=min(250, 35 * len(wrong) + 38),
                    column_config={"confidence": st.column_config.NumberColumn(format="percent")})
    if result.model is not None:
        text = st.text_input("Type a message to classify", MESSAGE, key="cls_try")
        with guard("classifying the message"):
            p = predict(result.model, active_tokenizer(), text, d["max_length"], d["labels"],
                        result.settings["position"])
            st.markdown(f"→ **{p['label']}** · " + " · ".join(f"{k}: {v:.1%}" for k, v in p["probs"].items())
                        + (" · (truncated)" if p["truncated"] else ""))
    show_code(evaluate, ft.misclassified, predict, label="Show the code: scoring the test set and one message")
    rows = st.session_state.setdefault(ABLATION, [])
    if snap["run_id"] not in {r["run"] for r in rows}:
        rows.append(ft.ablation_row(snap["run_id"], result))
if st.session_state.get(ABLATION):
    st.subheader("Ablation table (this session's runs)")
    pct, num = st.column_config.NumberColumn(format="percent"), st.column_config.NumberColumn(format="localized")
    st.dataframe(pd.DataFrame(st.session_state[ABLATION]), hide_index=True, width="stretch", column_config={
        "test accuracy": pct, "majority baseline": pct, "trainable": num,
        "lr": st.column_config.NumberColumn(format="%.0e")})
    show_code(ft.ablation_row, label="Show the code: one row of the ablation table")
if df is not None:
    if result is not None and result.settings != asdict(settings):
        st.caption("The script uses the settings above, which differ from those of the run shown.")
    script_download("classify", {"spec": spec, "settings": asdict(settings), "upload": upload,
                                 "message": st.session_state.get("cls_try", MESSAGE)})
next_page_link(PATH)
