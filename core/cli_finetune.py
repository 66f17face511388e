"""``python -m core classify | instruct``: the book's chapters 6 and 7 from a terminal, through the pages' own jobs.

Examples::

    python -m core classify train --base run:20261204-101500-mini --data sms-spam --mode all --epochs 5
    python -m core classify train --base mini --data ../shared/data/SMSSpamCollection.tsv --max-steps 200
    python -m core classify evaluate --run-id 20261204-110000-classify
    python -m core classify predict --run-id 20261204-110000-classify --text "You won a free prize, call now"
    python -m core instruct train --base run:20261204-101500-mini --max-steps 60 --json answers.json
    python -m core instruct generate --run-id 20261204-111500-instruct --instruction "Name a colour."
    python -m core instruct score --responses answers.json

``train`` starts the job the Classification / Instructions page starts (:func:`core.classify_job.start_classify_job`,
:func:`core.instruct_job.start_instruct_job`) and waits for it, so the same base, data, settings and seed give the
same numbers as the page. The fine-tuned model is saved as a run folder (:mod:`core.finetune_runs`) that ``runs``
lists, and an instruction-tuned run works with ``generate`` and as the app's active model. Under ``torchrun`` the
job trains data-parallel (the global batch split across the processes); only rank 0 prints and writes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from core.classify import MODES, POSITIONS
from core.cli_pretrain import _install_stop_handlers, _same_on_all_ranks
from core.cli_progress import ProgressBar
from core.distributed import init_from_env
from core.errors import LabError

CLASSIFY_FLAGS = {"epochs": int, "max-steps": int, "lr": float, "batch-size": int, "max-length": int,
                  "lora-rank": int, "lora-alpha": float, "eval-every": int, "seed": int}  # fmt: skip
INSTRUCT_FLAGS = {"epochs": int, "max-steps": int, "lr": float, "batch-size": int, "max-length": int,
                  "n-eval": int, "max-new-tokens": int, "eval-every": int, "seed": int}  # fmt: skip


def register(sub: Any) -> None:
    _register_classify(sub.add_parser("classify", help="fine-tune, evaluate and use a spam/ham classifier (ch. 6)"))
    _register_instruct(sub.add_parser("instruct", help="fine-tune a model to follow instructions (ch. 7)"))


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs-dir", type=Path, default=Path("runs"))
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or mps")


def _train_common(p: argparse.ArgumentParser, flags: dict[str, type], data_help: str) -> None:
    p.add_argument("--base", default="tiny", help="the model to start from: a preset name (tiny, mini, …), "
                   "preset:NAME:SEED, run:RUN_ID (a pretraining run), or hf:PATH (GPT-2 weights)")
    p.add_argument("--data", help=data_help)
    for flag, kind in flags.items():
        p.add_argument(f"--{flag}", type=kind)
    p.add_argument("--run-id", help="folder name for the fine-tuned run (default: time stamp + task)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _common(p)


def _register_classify(c: argparse.ArgumentParser) -> None:
    sub = c.add_subparsers(dest="action", required=True, parser_class=type(c))
    t = sub.add_parser("train", help="fine-tune a classifier and evaluate it on the test split")
    _train_common(t, CLASSIFY_FLAGS, "builtin-spam (default), sms-spam (the UCI file of the book, see 'data'), or "
                  "the path of a CSV/TSV file or of the UCI zip")  # fmt: skip
    t.add_argument("--text-col", help="the text column of a CSV/TSV file (default: found from the header)")
    t.add_argument("--label-col", help="the label column of a CSV/TSV file (default: found from the header)")
    t.add_argument("--mode", choices=list(MODES), default="last-block")
    t.add_argument("--position", choices=list(POSITIONS), default="last")
    t.add_argument("--no-balance", action="store_true", help="keep the classes as they are (the book balances)")
    t.set_defaults(func=cmd_classify_train)
    e = sub.add_parser("evaluate", help="test accuracy of a saved classifier on a data set's test split")
    e.add_argument("--run-id", required=True)
    e.add_argument("--data", help="default: the data the run was trained on")
    _common(e)
    e.set_defaults(func=cmd_classify_evaluate)
    p = sub.add_parser("predict", help="classify messages with a saved classifier")
    p.add_argument("--run-id", required=True)
    p.add_argument("--text", action="append", required=True, help="a message (repeat for several)")
    _common(p)
    p.set_defaults(func=cmd_classify_predict)


def _register_instruct(i: argparse.ArgumentParser) -> None:
    sub = i.add_subparsers(dest="action", required=True, parser_class=type(i))
    t = sub.add_parser("train", help="answer test prompts, fine-tune, answer them again, score both")
    _train_common(t, INSTRUCT_FLAGS, "builtin-instructions (default), instruction-data (the book's 1,100 "
                  "records, see 'data'), or the path of a .json/.jsonl file")  # fmt: skip
    t.add_argument("--mask-prompt", action="store_true", help="count only the response tokens in the loss")
    t.add_argument("--json", type=Path, help="also write the test answers here, in the book's JSON format")
    t.set_defaults(func=cmd_instruct_train)
    g = sub.add_parser("generate", help="answer an instruction with a fine-tuned run")
    g.add_argument("--run-id", required=True)
    g.add_argument("--instruction", required=True)
    g.add_argument("--input", default="")
    g.add_argument("--max-new-tokens", type=int, default=64)
    _common(g)
    g.set_defaults(func=cmd_instruct_generate)
    s = sub.add_parser("score", help="exact match, token F1 and similarity of a responses file (the book's JSON)")
    s.add_argument("--responses", type=Path, required=True, help="records with 'output' and 'model_response'")
    s.set_defaults(func=cmd_instruct_score)


# ------------------------------------------------------------------------------------------- shared steps
def base_model(text: str, runs_dir: Path, device: str) -> tuple[Any, Any, str]:
    """``(model, tokenizer, link form)`` of ``--base``: checked exactly as a link to the app would be."""
    from core.lab_state import parse_spec_param, spec_param
    from core.model_spec import build_model, spec_tokenizer

    if ":" not in text:  # a bare name: a run folder when there is one, else a preset
        text = f"run:{text}" if (runs_dir / text).is_dir() else f"preset:{text}"
    spec = parse_spec_param(text, visitor=None, runs_dir=runs_dir)
    model = build_model(spec)
    return model.to(device), spec_tokenizer(spec, model.cfg.vocab_size), spec_param(spec)


def _overrides(args: argparse.Namespace, flags: dict[str, type]) -> dict[str, Any]:
    names = [f.replace("-", "_") for f in flags]
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


def run_job(start: Any, run_id: str, world: int, rank: int, quiet: bool) -> Any:
    """Start a job in a private registry and wait for it, drawing its records; Ctrl-C asks it to stop."""
    import threading

    from core.jobs import JobRegistry

    stop = threading.Event()
    _install_stop_handlers(stop)
    job = start(JobRegistry(max_jobs=1), _same_on_all_ranks(run_id, world))
    bar = ProgressBar(job.info["planned_steps"], enabled=rank == 0 and not quiet)
    seen = 0
    while not job.wait(0.25):
        if stop.is_set():
            job.stop()
        records = job.snapshot()["records"]
        for r in records[seen:]:
            bar.update(r)
        seen = len(records)
    bar.close()
    snap = job.snapshot()
    if snap["status"] == "failed":
        raise LabError(snap["message"] or "The job failed.")
    return job.result


def _report_saved(result: Any) -> None:
    for note in result.details.get("notes", []):
        print(f"note: {note}", file=sys.stderr)
    if "save_error" in result.details:
        print(f"note: {result.details['save_error']}", file=sys.stderr)
    print(result.message)
    if "saved" in result.details:
        print(f"saved {result.details['saved']}")


# ------------------------------------------------------------------------------------------------ classify
def classification_table(data: str | None, text_col: str | None = None, label_col: str | None = None) -> Any:
    """A registry name (default ``builtin-spam``) or a CSV/TSV/zip file, as the page reads an upload."""
    import core.datasets as ds
    from core.datasets.uploads import parse_table_upload

    name = data or "builtin-spam"
    if name in ds.DATASETS:
        if ds.get_info(name).kind != "classification":
            raise LabError(f"{name} is not a classification data set; see 'python -m core data list'.")
        if not ds.is_available(name):
            raise LabError(f"{name} is not on this machine yet; run 'python -m core data fetch {name}' (or "
                           f"'data add {name} PATH' with a local copy).")
        return ds.load_classification(name), name
    path = _data_file(name)
    df, _ = parse_table_upload(path.read_bytes(), path.name, text_col, label_col, max_bytes=None)
    return df, str(path.resolve())


def _data_file(name: str) -> Path:
    path = Path(name).expanduser()
    if not path.is_file():
        raise LabError(f"There is no data set or file called {name}; give a name from 'python -m core data list' "
                       "or the path of a file.")
    return path


def cmd_classify_train(args: argparse.Namespace) -> int:
    from core.classify_job import ClassifySettings, start_classify_job
    from core.finetune_job import SaveTo
    from core.runs import default_run_id

    world, rank = init_from_env(args.device)
    model, tokenizer, base = base_model(args.base, args.runs_dir, args.device)
    df, source = classification_table(args.data, args.text_col, args.label_col)
    s = ClassifySettings(dataset=source, mode=args.mode, position=args.position, balance=not args.no_balance,
                         **_overrides(args, CLASSIFY_FLAGS))  # fmt: skip
    save = SaveTo(str(args.runs_dir), base, getattr(tokenizer, "name", "gpt2")) if rank == 0 else None

    def start(jobs: Any, run_id: str) -> Any:
        return start_classify_job(model, tokenizer, df, s, run_id=run_id, jobs=jobs, save=save)

    result = run_job(start, args.run_id or default_run_id("classify"), world, rank, args.quiet)
    if rank == 0:
        ev = result.details["evaluation"]
        print(f"test accuracy {ev['accuracy']:.1%} (majority baseline {result.details['majority']:.1%}), "
              f"confusion {ev['confusion']} (rows true, columns predicted; labels {result.details['labels']})")
        _report_saved(result)
    return 0


def _saved_classifier(args: argparse.Namespace) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    from core import runs
    from core.finetune_runs import load_classifier
    from core.tokenizers import tokenizer_for_model

    run_dir = runs.run_path(args.runs_dir, args.run_id)
    model, extra = load_classifier(run_dir / runs.MODEL_FILE, device=args.device)
    extra["tokenizer_obj"] = tokenizer_for_model(extra.get("tokenizer"), model.cfg.vocab_size)
    return model, extra, runs.read_run(run_dir)


def cmd_classify_evaluate(args: argparse.Namespace) -> int:
    from core.classify import evaluate, make_loader
    from core.classify_job import ClassifySettings, prepare_classification

    model, extra, record = _saved_classifier(args)
    fields = set(ClassifySettings.__dataclass_fields__)
    s = ClassifySettings(**{k: v for k, v in record["finetune"].items() if k in fields})
    df, _ = classification_table(args.data or s.dataset)
    data = prepare_classification(df, extra["tokenizer_obj"], model.cfg.context_length,
                                  dataclasses.replace(s, max_length=extra["max_length"]))
    if data.labels != extra["labels"]:
        raise LabError(f"This data has the labels {data.labels} but the classifier knows {extra['labels']}; "
                       "evaluate it on data with the same labels.")
    ev = evaluate(model, make_loader(data.test, s.batch_size), data.labels, extra["position"])
    print(f"test accuracy {ev['accuracy']:.1%} on {len(data.test)} examples (majority baseline "
          f"{data.majority:.1%}); confusion {ev['confusion']} (labels {data.labels})")
    return 0


def cmd_classify_predict(args: argparse.Namespace) -> int:
    from core.classify import predict

    model, extra, _ = _saved_classifier(args)
    for text in args.text:
        out = predict(model, extra["tokenizer_obj"], text, extra["max_length"], extra["labels"], extra["position"])
        probs = ", ".join(f"{k} {v:.1%}" for k, v in out["probs"].items())
        print(f"{out['label']}\t({probs})\t{text}")
    return 0


# ------------------------------------------------------------------------------------------------ instruct
def instruction_records(data: str | None) -> tuple[list[dict[str, str]], str]:
    """A registry name (default ``builtin-instructions``) or a .json/.jsonl file, as the page reads an upload."""
    import core.datasets as ds
    from core.datasets.uploads import parse_instruction_upload

    name = data or "builtin-instructions"
    if name in ds.DATASETS:
        if ds.get_info(name).kind != "instruction":
            raise LabError(f"{name} is not an instruction data set; see 'python -m core data list'.")
        if not ds.is_available(name):
            raise LabError(f"{name} is not on this machine yet; run 'python -m core data fetch {name}'.")
        return ds.load_instructions(name), name
    path = _data_file(name)
    records, _ = parse_instruction_upload(path.read_bytes(), path.name, max_bytes=None)
    return records, str(path.resolve())


def cmd_instruct_train(args: argparse.Namespace) -> int:
    from core.finetune_job import SaveTo
    from core.instruct_job import InstructSettings, start_instruct_job
    from core.runs import default_run_id

    world, rank = init_from_env(args.device)
    model, tokenizer, base = base_model(args.base, args.runs_dir, args.device)
    records, source = instruction_records(args.data)
    s = InstructSettings(dataset=source, mask_prompt=args.mask_prompt, **_overrides(args, INSTRUCT_FLAGS))
    save = SaveTo(str(args.runs_dir), base, getattr(tokenizer, "name", "gpt2")) if rank == 0 else None

    def start(jobs: Any, run_id: str) -> Any:
        return start_instruct_job(model, tokenizer, records, s, run_id=run_id, jobs=jobs, save=save)

    result = run_job(start, args.run_id or default_run_id("instruct"), world, rank, args.quiet)
    if rank == 0:
        _print_scores(result.details)
        if args.json is not None:
            from core.fileio import atomic_write_bytes

            atomic_write_bytes(args.json, result.details["json"].encode("utf-8"))
            print(f"wrote {args.json}")
        _report_saved(result)
    return 0


def _print_scores(details: dict[str, Any]) -> None:
    for when in ("before", "after"):
        sc = details[f"score_{when}"]
        if sc:
            print(f"{when:6} fine-tuning: exact match {sc['exact_match']:.1%}, token F1 {sc['token_f1']:.1%}, "
                  f"similarity {sc['similarity']:.1%} over {sc['n']} test prompts")


def cmd_instruct_generate(args: argparse.Namespace) -> int:
    from core import runs
    from core.checkpoint import load
    from core.instruct import generate_responses
    from core.tokenizers import tokenizer_for_model

    ckpt = load(runs.run_path(args.runs_dir, args.run_id) / runs.MODEL_FILE, device=args.device)
    if ckpt.extra.get("task") == "classify":
        raise LabError(f"{args.run_id} is a classifier; use 'python -m core classify predict' with it.")
    tokenizer = tokenizer_for_model(ckpt.extra.get("tokenizer"), ckpt.model.cfg.vocab_size)
    entry = {"instruction": args.instruction, "input": args.input}
    print(generate_responses(ckpt.model, tokenizer, [entry], max_new_tokens=args.max_new_tokens)[0])
    return 0


def cmd_instruct_score(args: argparse.Namespace) -> int:
    from core.datasets.uploads import parse_instruction_upload
    from core.instruct_score import score_responses

    path = _data_file(str(args.responses))
    data = path.read_bytes()
    records, _ = parse_instruction_upload(data, path.name, max_bytes=None)  # checks the JSON and each record
    raw = json.loads(data) if data.lstrip().startswith(b"[") else [json.loads(line) for line in data.splitlines()
                                                                     if line.strip()]  # fmt: skip
    answers = [r.get("model_response") for r in raw]
    if not all(isinstance(a, str) for a in answers):
        raise LabError(f"{path} has records without a 'model_response' string; score a file written by "
                       "'instruct train --json' or by the book's chapter 7.")
    sc = score_responses(answers, [r["output"] for r in records])
    print(f"exact match {sc['exact_match']:.1%}, token F1 {sc['token_f1']:.1%}, similarity {sc['similarity']:.1%} "
          f"over {sc['n']} responses")
    return 0
