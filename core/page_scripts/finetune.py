"""Scripts for the fine-tuning pages: LoRA lab (book appendix E), Classification (chapter 6) and Instructions
(chapter 7).

Each script rebuilds the page's active model from its spec (:func:`core.model_spec.build_model`: a preset is the
same seeded random init), loads the page's data set by name (an uploaded file cannot be embedded: the script
reads it from ``UPLOAD_PATH``, which the user fills in), and runs the functions the page's job runs
(:func:`core.classify_job.start_classify_job`, :func:`core.instruct_job.start_instruct_job`) step by step with
the same settings and seed, so it prints the page's numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from core.classify import MODES, POSITIONS
from core.classify_job import ClassifySettings
from core.datasets import get_info, list_datasets
from core.errors import LabError, check_choice, check_int, check_number
from core.finetune_job import check_finetune_settings
from core.instruct_job import InstructSettings
from core.lora_lab import LORA_TARGET_SETS
from core.model_spec import KINDS, default_runs_dir, describe_spec
from core.page_scripts import lit, need

MODEL_NOTES = {
    "preset": "§4.6 GPTModel, a seeded random init (torch.manual_seed, as the book)",
    "run": "a checkpoint trained in the lab (its run folder must still be there)",
    "hf": "§5.5 GPT-2's weights, as the book's load_weights_into_gpt loads them",
}


def _comment(text: Any) -> str:
    """``text`` as one line for a ``#`` comment: no line break can end the comment and start code."""
    return " ".join(str(text).split())[:200]


def _model_lines(spec: Any, tokenizer: bool = True) -> str:
    """``SPEC = …`` and the model (and its tokenizer) built from it, as :mod:`ui.cache` builds the page's."""
    if not isinstance(spec, Mapping) or spec.get("kind") not in KINDS:
        raise LabError("The script needs the page's model spec (a preset, a trained run or GPT-2 weights).")
    spec = dict(spec)
    if spec["kind"] == "run":  # the page's runs folder, wherever the script is run from
        spec["runs_dir"] = str(Path(spec.get("runs_dir") or default_runs_dir()).resolve())
    elif spec["kind"] == "hf":
        spec["path"] = str(Path(need(spec, "path")[0]).resolve())
    lines = f"""
from core.model_spec import build_model, spec_tokenizer

SPEC = {lit(spec)}  # the page's active model: {_comment(describe_spec(spec))}
model = build_model(SPEC)  # {MODEL_NOTES[spec["kind"]]}
"""
    if tokenizer:
        lines += "tokenizer = spec_tokenizer(SPEC, model.cfg.vocab_size)  # the tokenizer its ids mean\n"
    return lines


def _job_settings(cls: type, raw: Any) -> Any:
    """The page's job settings (a dict of :class:`ClassifySettings` / :class:`InstructSettings` fields), checked
    as the job checks them before it starts."""
    if not isinstance(raw, Mapping):
        raise LabError("The script needs the page's settings as a dict; export it from the page.")
    try:
        s = cls(**raw)
    except TypeError as err:
        raise LabError(f"The settings do not fit {cls.__name__}: {err}.") from None
    check_finetune_settings(s.epochs, s.max_steps, s.lr, s.batch_size)
    return s


def _data_lines(kind: str, dataset: str, upload: Any, loader: str, parse: str) -> str:
    """``DATASET``/``UPLOAD_PATH`` and the data loaded: a registry data set by name, or the uploaded file from a
    path the user fills in (an upload cannot be embedded in a script)."""
    if dataset != "upload":
        check_choice(dataset, f"{kind} data set", [i.name for i in list_datasets(kind)])
        info = get_info(dataset)
        where = ("ships with the lab" if info.source == "builtin" else
                 f"if it is not here yet: python -m core data fetch {dataset}")
        return f"""
from core.datasets import {loader}

# {_comment(info.title)}: {where}
DATASET = {lit(dataset)}
"""
    name = need(upload if isinstance(upload, Mapping) else {}, "name")[0]
    return f"""
from pathlib import Path

from core.datasets import {parse}

# The page's data was an uploaded file ({_comment(name)}), which a script cannot embed:
# set UPLOAD_PATH to your copy of that file (the same name keeps the same format).
UPLOAD_PATH = {lit(str(Path(str(name)).name))}  # <- fill in
if not Path(UPLOAD_PATH).is_file():
    raise SystemExit(f"Set UPLOAD_PATH at the top of this script to the file you uploaded (no file {{UPLOAD_PATH}}).")
"""


# ------------------------------------------------------------------------------------------------------ LoRA lab
def lora_script(s: dict[str, Any]) -> tuple[str, str]:
    """Settings: ``spec`` (the active model), ``layer``, ``rank``, ``alpha``, ``steps`` (simulated training steps
    pressed), ``merge_targets`` (a key of :data:`core.lora_lab.LORA_TARGET_SETS`), ``merge_check`` (whether the
    page ran the merge check)."""
    layer, targets = (str(v) for v in need(s, "layer", "merge_targets"))
    rank = check_int(need(s, "rank")[0], "The LoRA rank", low=1, fix="try 8 or 16")
    alpha = check_number(need(s, "alpha")[0], "Alpha", low=0, low_open=True, fix="the book uses 16")
    steps = check_int(s.get("steps", 0), "The number of simulated steps", low=0)
    check_choice(targets, "set of layers for the merge check", LORA_TARGET_SETS)
    body = _model_lines(need(s, "spec")[0], tokenizer=False) + f"""
LAYER, RANK, ALPHA = {lit(layer)}, {rank}, {lit(alpha)}
STEPS = {steps}  # presses of "Simulate a training step"
MERGE_TARGETS = {lit(targets)}
RUN_MERGE_CHECK = {lit(bool(s.get("merge_check", True)))}  # it copies the model: the page asks first for a big one
""" + LORA_BODY
    return f"LoRA lab: rank {rank} on {_comment(layer)} (book appendix E)", body


LORA_BODY = """
import torch

from core.book import LinearWithLoRA
from core.lora_lab import LORA_TARGET_SETS, book_lora_reference, lora_count_table, lora_layer_demo, merge_check

# Appendix E.2: W stays frozen and LoRA learns ΔW = B·A·(α/r), A (r × in) random, B (out × r) zero, so the
# adapted layer starts out computing exactly what W does. lora_layer_demo wraps LAYER in core.lora.LoRALinear
# (the book's LinearWithLoRA, scaled by α/r as in the LoRA paper where the book scales by α) and takes STEPS
# seeded SGD steps of A and B towards a random target.
demo = lora_layer_demo(model, LAYER, RANK, ALPHA, steps=STEPS)
print(f"Shapes: W {demo.out_features} × {demo.in_features} · A {demo.rank} × {demo.in_features} · "
      f"B {demo.out_features} × {demo.rank} · scale α/r = {demo.scale:g}")
print(f"Trainable in this layer with LoRA: {demo.lora_params:,}")  # r · (in + out)
print(f"…with full fine-tuning: {demo.full_params:,}")  # in · out
print(f"max |ΔW|: {demo.max_abs_delta:.2e}")
print(f"rank of ΔW: {'—' if demo.delta_rank is None else demo.delta_rank}")  # never more than r
for step, g in enumerate(demo.grad_norms, 1):  # at step 1 B is zero, so A gets no gradient yet
    print(f"Step {step} gradient norms: |∇A| {g['|∇A|']:.3g}, |∇B| {g['|∇B|']:.3g}")

# Appendix E.3, the book's own class: LinearWithLoRA(linear, rank, alpha) adds alpha · x·A·B, with B = 0 at first.
base = model.get_submodule(LAYER)
with torch.no_grad():
    x = torch.randn(2, base.in_features)
    gap = (LinearWithLoRA(base, RANK, ALPHA)(x) - base(x)).abs().max()
    print(f"Book LinearWithLoRA at init, max |output − base|: {gap:.2e}")

# Trainable parameters with LoRA on each set of layers vs full fine-tuning (counted on PyTorch's meta device).
for row in lora_count_table(model.cfg, RANK, ALPHA):
    print(f"LoRA on {row['LoRA on']}: {row['trainable with LoRA']:,} of {row['full fine-tuning']:,} "
          f"({row['share']:.2%})")
ref = book_lora_reference()  # appendix E: GPT-2 small, a 2-class head, replace_linear_with_lora(model, 16, 16)
print(f"Book (GPT-2 small, 2-class head, LoRA r = 16 on all linear layers): {ref['lora']:,}")
print(f"…instead of full fine-tuning: {ref['full']:,}")

# The merge check: a copy with LoRA on MERGE_TARGETS and random B; merging adds each ΔW into its W, and the
# outputs must agree up to float rounding (a merged model costs nothing extra at inference). A and B come from
# merge_check's seed (123), so the figures are the page's.
if RUN_MERGE_CHECK:
    chk = merge_check(model, RANK, ALPHA, LORA_TARGET_SETS[MERGE_TARGETS])
    print(f"Layers wrapped: {chk['layers']}")
    print(f"max |LoRA − base| at init (B = 0): {chk['init_diff']:.2e}")
    print(f"max |LoRA − base| with random B: {chk['lora_vs_base']:.2e}")
    print(f"max |merged − unmerged|: {chk['merge_diff']:.2e}")
"""


# ------------------------------------------------------------------------------------------------ Classification
def classify_script(s: dict[str, Any]) -> tuple[str, str]:
    """Settings: ``spec``, ``settings`` (the fields of :class:`core.classify_job.ClassifySettings`; ``dataset``
    a classification data set or ``"upload"``), ``upload`` (for an upload: ``name``, ``text_col``,
    ``label_col``, None for "guess"), ``message`` (the text the page classifies, optional)."""
    cs = _job_settings(ClassifySettings, need(s, "settings")[0])
    check_choice(cs.mode, "fine-tuning mode", MODES)
    check_choice(cs.position, "token position", POSITIONS)
    upload = s.get("upload") or {}
    data = _data_lines("classification", cs.dataset, upload, "load_classification", "parse_table_upload")
    if cs.dataset == "upload":
        cols = lit(upload.get("text_col")), lit(upload.get("label_col"))
        data += f"""TEXT_COL, LABEL_COL = {cols[0]}, {cols[1]}  # the page's column choices (None: guessed, as there)
df, _ = parse_table_upload(Path(UPLOAD_PATH).read_bytes(), Path(UPLOAD_PATH).name, TEXT_COL, LABEL_COL)
"""
    else:
        data += "df = load_classification(DATASET)  # §6.2 a table of messages: columns text and label\n"
    body = data + f"""
SETTINGS = {lit(asdict(cs))}
MESSAGE = {lit(str(s.get("message") or "Win a free prize now!"))}
""" + _model_lines(need(s, "spec")[0]) + CLASSIFY_BODY
    return f"Classification fine-tuning: {cs.mode} on {_comment(cs.dataset)} (book chapter 6)", body


CLASSIFY_BODY = """
from core.classify import evaluate, make_loader, predict, prepare_classifier, train_classifier, trainable_summary
from core.classify_job import ClassifySettings, prepare_classification

# The steps of core.classify_job.start_classify_job, the page's job, with the page's settings and seed.
s = ClassifySettings(**SETTINGS)
# §6.3: balance the classes if asked (the book's create_balanced_dataset), split 70/10/20 (random_split), tokenize
# and pad every split to the training set's longest message (SpamDataset).
data = prepare_classification(df, tokenizer, model.cfg.context_length, s)
print(f"Split: {len(data.train):,} training, {len(data.val):,} validation, {len(data.test):,} test messages")
for note in data.notes:
    print("Note —", note)
# §6.5 add a classification head: out_head becomes nn.Linear(emb_dim, number of classes), seeded; freeze what
# s.mode says (the book: only the last block, the final norm and the new head train).
clf = prepare_classifier(model, len(data.labels), s.mode, s.lora_rank, s.lora_alpha, s.seed)
train_loader = make_loader(data.train, s.batch_size, shuffle=True, drop_last=len(data.train) > s.batch_size,
                           seed=s.seed)
val_loader, test_loader = make_loader(data.val, s.batch_size), make_loader(data.test, s.batch_size)


def show(r):
    acc = "" if r["val_acc"] is None else f" · val accuracy {r['val_acc']:.0%}"
    print(f"step {r['step']} (epoch {r['epoch']}) · train loss {r['train_loss']:.3f} · "
          f"val loss {r['val_loss']:.3f}{acc}")


# §6.7: the book's train_classifier_simple: AdamW on the trainable parameters, the loss read at one token (§6.6:
# the last one, the only one that has seen the whole message).
run = train_classifier(clf, train_loader, val_loader, s.epochs, s.lr, eval_every=s.eval_every, position=s.position,
                       on_record=show, seed=s.seed, max_steps=s.max_steps)
# §6.6 the accuracy on the test set (the book's calc_accuracy_loader), with a confusion matrix.
ev = evaluate(clf, test_loader, data.labels, s.position)
trainable = trainable_summary(clf)
print(f"Test accuracy: {ev['accuracy']:.1%}")
print(f"Test accuracy vs baseline: {ev['accuracy'] - data.majority:+.1%}")
print(f"Majority-class baseline: {data.majority:.1%}")  # always answering data.majority_label
print(f"Steps · examples seen: {run.steps} · {run.examples_seen:,}")
print(f"Trainable parameters: {trainable['trainable']:,}")
print(f"Trainable share: {trainable['trainable_pct']:.1f}% of all")
for label, row in zip(data.labels, ev["confusion"]):
    print(f"Confusion, true {label} → predicted {data.labels}: {row}")
# §6.8 use the classifier (the book's classify_review): the class of one new message.
p = predict(clf, tokenizer, MESSAGE, data.train.max_length, data.labels, s.position)
print(f"Prediction: {p['label']} · " + " · ".join(f"{k}: {v:.1%}" for k, v in p["probs"].items())
      + (" · (truncated)" if p["truncated"] else ""))
"""


# -------------------------------------------------------------------------------------------------- Instructions
def instruct_script(s: dict[str, Any]) -> tuple[str, str]:
    """Settings: ``spec``, ``settings`` (the fields of :class:`core.instruct_job.InstructSettings`; ``dataset``
    an instruction data set or ``"upload"``), ``upload`` (for an upload: ``name``)."""
    ins = _job_settings(InstructSettings, need(s, "settings")[0])
    check_int(ins.n_eval, "The number of test examples to answer", low=1)
    check_int(ins.max_new_tokens, "max_new_tokens", low=1)
    data = _data_lines("instruction", ins.dataset, s.get("upload"), "load_instructions", "parse_instruction_upload")
    if ins.dataset == "upload":
        data += "records, _ = parse_instruction_upload(Path(UPLOAD_PATH).read_bytes(), Path(UPLOAD_PATH).name)\n"
    else:
        data += "records = load_instructions(DATASET)  # §7.2 records {instruction, input, output}\n"
    body = data + f"\nSETTINGS = {lit(asdict(ins))}\n" + _model_lines(need(s, "spec")[0]) + INSTRUCT_BODY
    return f"Instruction fine-tuning on {_comment(ins.dataset)} (book chapter 7)", body


INSTRUCT_BODY = """
from core.instruct import InstructionDataset, generate_responses, make_instruction_loader, score_responses
from core.instruct import train_instruct
from core.instruct_job import InstructSettings, instruction_splits
from core.model_spec import untie_output_head

# The steps of core.instruct_job.start_instruct_job, the page's job, with the page's settings and seed.
s = InstructSettings(**SETTINGS)
train, val, test, notes = instruction_splits(records)  # §7.2 the book's split: 85 % / 5 % / 10 %, in order
print(f"Split: {len(train):,} training, {len(val):,} validation, {len(test):,} test records")
max_length = min(s.max_length or model.cfg.context_length, model.cfg.context_length)
# §7.3: each record rendered with the Alpaca template (instruction, input, "### Response:", output), tokenized.
train_ds, val_ds = InstructionDataset(train, tokenizer, max_length), InstructionDataset(val, tokenizer, max_length)
for note in notes + train_ds.notes:
    print("Note —", note)
entries = test[: s.n_eval]
if s.untie_head:  # §5.5: the book's GPT-2 keeps its own copy of the output head; GPT-2 as shipped ties it
    untie_output_head(model)
model.requires_grad_(True)
# §7.7: greedy answers to the test prompts before fine-tuning, one prompt at a time as the page's job.
before = [generate_responses(model, tokenizer, [e], max_new_tokens=s.max_new_tokens)[0] for e in entries]
# §7.3–7.4 the book's custom_collate_fn: pad with <|endoftext|>, targets = inputs shifted by one, -100 on the
# padding (and, with mask_prompt, on the prompt) so the loss ignores it.
train_loader = make_instruction_loader(train_ds, s.batch_size, shuffle=True, drop_last=len(train_ds) > s.batch_size,
                                       mask_prompt=s.mask_prompt, seed=s.seed)
val_loader = make_instruction_loader(val_ds, s.batch_size, mask_prompt=s.mask_prompt)


def show(r):
    print(f"step {r['step']} (epoch {r['epoch']}) · train loss {r['train_loss']:.3f} · val loss {r['val_loss']:.3f}")


# §7.6: fine-tune with the book's train_model_simple loop (AdamW, next-token loss).
run = train_instruct(model, train_loader, val_loader, s.epochs, s.max_steps, s.lr, eval_every=s.eval_every,
                     on_record=show, seed=s.seed)
after = [generate_responses(model, tokenizer, [e], max_new_tokens=s.max_new_tokens)[0] for e in entries]
# §7.8: the book asks an LLM (Llama 3) to judge the answers; the page scores them against the reference instead.
refs = [e["output"] for e in entries]
sb, sa = score_responses(before, refs), score_responses(after, refs)
print(f"Steps: {run.steps}")
print(f"Exact match: {sa['exact_match']:.0%}")
print(f"Exact match vs before: {sa['exact_match'] - sb['exact_match']:+.0%}")
print(f"Token F1: {sa['token_f1']:.2f}")
print(f"Token F1 vs before: {sa['token_f1'] - sb['token_f1']:+.2f}")
print(f"Similarity (heuristic): {sa['similarity']:.2f}")
print(f"Similarity vs before: {sa['similarity'] - sb['similarity']:+.2f}")
for i, (e, b, a) in enumerate(zip(entries, before, after), 1):
    print(f"Reference {i}: {e['output']!r}")
    print(f"Answer {i} before: {b!r}")
    print(f"Answer {i} after: {a!r}")
"""

SCRIPTS = {"lora": lora_script, "classify": classify_script, "instruct": instruct_script}
