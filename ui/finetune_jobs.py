"""Glue for the fine-tuning pages: plain settings in, background jobs and plain results out.

Three parts, one per page:

- LoRA lab: one layer wrapped in :class:`core.lora.LoRALinear` (shapes, A, B, ΔW after simulated steps),
  trainable-parameter counts on ``meta``-device models, and the merged-vs-unmerged check.
- Classification runner: table → balanced split → datasets → a *deep copy* of the active model fine-tuned in a
  :mod:`core.jobs` job → test evaluation, kept in the job's result.
- Instruction runner: records → the book's split → before/after responses around a fine-tuning job.

Nothing here imports Streamlit: the job threads must never touch ``st.*`` and everything is testable directly.
The cached active model is never trained or changed: jobs fine-tune ``copy.deepcopy(model)`` and the LoRA lab
wraps weights it only reads.
"""

from __future__ import annotations

import copy
import csv
import functools
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from core.classify import (
    MODES,
    POSITIONS,
    ClassificationDataset,
    evaluate,
    make_loader,
    prepare_classifier,
    train_classifier,
    trainable_summary,
)
from core.datasets import balance, split, split_instructions
from core.errors import LabError
from core.instruct import (
    InstructionDataset,
    custom_collate_fn,
    export_responses_json,
    generate_responses,
    loss_mask_view,
    make_instruction_loader,
    score_responses,
    train_instruct,
)
from core.jobs import Job, JobRegistry, registry
from core.limits import current_limits
from core.lora import ALL_LINEAR, LoRALinear, apply_lora, lora_parameter_counts, merge_lora
from core.model import GPTModel
from core.runs import default_run_id

MAX_SHOWN = 48  # rows/columns of a LoRA matrix drawn as a heatmap

# ======================================================================================================= LoRA lab
#: What "LoRA on …" means, as module-name patterns for :func:`core.lora.apply_lora`.
LORA_TARGET_SETS: dict[str, str | list[str]] = {
    "all linear layers (the book, appendix E)": ALL_LINEAR,
    "transformer blocks (no output head)": ["trf_blocks.*"],
    "attention only (query, key, value, out)": ["*.att.*"],
    "attention query + value (the LoRA paper)": ["*.att.W_query", "*.att.W_value"],
    "feed-forward only": ["*.ff.layers.*"],
}


@dataclass
class LayerDemo:
    """One linear layer with a LoRA update, as plain arrays for the page (cropped to ``MAX_SHOWN``)."""

    name: str
    in_features: int
    out_features: int
    rank: int
    alpha: float
    scale: float
    steps: int
    A: np.ndarray  # (r, in) cropped
    B: np.ndarray  # (out, r) cropped
    delta: np.ndarray  # (out, in) cropped
    max_abs_delta: float
    delta_rank: int | None  # numerical rank of ΔW (None for very large layers)
    grad_norms: list[dict[str, float]] = field(default_factory=list)  # per simulated step: |∇A|, |∇B|
    cropped: bool = False

    @property
    def shapes(self) -> dict[str, tuple[int, int]]:
        return {"W": (self.out_features, self.in_features), "A": (self.rank, self.in_features),
                "B": (self.out_features, self.rank), "ΔW": (self.out_features, self.in_features)}

    @property
    def lora_params(self) -> int:
        return self.rank * (self.in_features + self.out_features)

    @property
    def full_params(self) -> int:
        return self.in_features * self.out_features


def _frozen_view(layer: nn.Linear) -> nn.Linear:
    """A new ``nn.Linear`` sharing ``layer``'s weight storage, with no gradients: reading it never changes it."""
    view = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None, device="meta")
    view.weight = nn.Parameter(layer.weight.detach(), requires_grad=False)
    if layer.bias is not None:
        view.bias = nn.Parameter(layer.bias.detach(), requires_grad=False)
    return view


def _new_lora(layer: nn.Linear, rank: int, alpha: float, seed: int) -> LoRALinear:
    """``LoRALinear(layer)`` with A drawn from ``seed`` (the global RNG state is restored afterwards)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LoRALinear(layer, rank, alpha)


def lora_layer_demo(model: nn.Module, layer_name: str, rank: int, alpha: float, steps: int = 0,
                    seed: int = 123, lr: float = 0.1) -> LayerDemo:
    """Wrap one linear layer of ``model`` in LoRA and take ``steps`` seeded training steps on random data.

    Each simulated step is a real SGD step of A and B on the mean squared error against a random target (the
    base weight stays frozen). At the first step B is zero, so the gradient of A is zero too and only B moves:
    that is why the LoRA model starts exactly equal to the base model and still learns.

    Raises:
        LabError: unknown layer, a rank ≤ 0 or larger than the layer, alpha ≤ 0.
    """
    modules = dict(model.named_modules())
    layer = modules.get(layer_name)
    if not isinstance(layer, nn.Linear):
        raise LabError(f"{layer_name!r} is not a linear layer of this model; pick one from the list.")
    if isinstance(rank, int) and rank > max(layer.in_features, layer.out_features):
        raise LabError(f"rank {rank} is larger than the layer {layer_name} ({layer.in_features} → "
                       f"{layer.out_features}); choose a rank ≤ {max(layer.in_features, layer.out_features)}.")
    lora = _new_lora(_frozen_view(layer), rank, alpha, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    norms = []
    for _ in range(max(0, int(steps))):
        x = torch.randn(8, layer.in_features, generator=gen)  # (8, in): a random batch
        target = lora.base(x) + torch.randn(8, layer.out_features, generator=gen)  # what the update should add
        loss = torch.nn.functional.mse_loss(lora(x), target)
        lora.zero_grad(set_to_none=True)
        loss.backward()
        norms.append({"|∇A|": float(lora.A.grad.norm()), "|∇B|": float(lora.B.grad.norm())})
        with torch.no_grad():
            for p in (lora.A, lora.B):
                p -= lr * p.grad / (p.grad.norm() + 1e-12)  # normalised step: visible at any layer size
    with torch.no_grad():
        delta = lora.delta_weight()  # (out, in)
        small = delta.numel() <= 2_000_000
        delta_rank = int(torch.linalg.matrix_rank(delta)) if small else None
        a, b = lora.A.detach(), lora.B.detach()
    n = MAX_SHOWN
    return LayerDemo(
        name=layer_name, in_features=layer.in_features, out_features=layer.out_features, rank=lora.rank,
        alpha=lora.alpha, scale=lora.scale, steps=len(norms), A=a[:n, :n].numpy().copy(),
        B=b[:n, :n].numpy().copy(), delta=delta[:n, :n].numpy().copy(),
        max_abs_delta=float(delta.abs().max()), delta_rank=delta_rank, grad_norms=norms,
        cropped=max(layer.in_features, layer.out_features, lora.rank) > n,
    )


def meta_model(cfg: Any, n_classes: int | None = None) -> GPTModel:
    """A ``GPTModel`` on PyTorch's ``meta`` device (shapes, no storage), with an optional K-class head."""
    with torch.device("meta"):
        model = GPTModel(cfg)
        if n_classes is not None:
            model.out_head = nn.Linear(cfg.emb_dim, n_classes)
    return model


def lora_count_table(cfg: Any, rank: int, alpha: float, n_classes: int | None = None) -> list[dict[str, Any]]:
    """Trainable parameters with LoRA on each target set vs full fine-tuning, counted on ``meta`` models."""
    base = meta_model(cfg, n_classes)
    full = sum(p.numel() for p in base.parameters())
    rows = []
    for label, targets in LORA_TARGET_SETS.items():
        model = copy.deepcopy(base)  # meta tensors: copying costs nothing
        wrapped = apply_lora(model, rank, alpha, targets=targets)
        lora = lora_parameter_counts(model)["lora"]
        rows.append({"LoRA on": label, "layers wrapped": len(wrapped), "trainable with LoRA": lora,
                     "full fine-tuning": full, "share": lora / full})
    return rows


def book_lora_reference(rank: int = 16, alpha: float = 16) -> dict[str, int]:
    """The book's appendix E count: GPT-2 small (qkv bias, as its weights), a 2-class head, LoRA on every
    linear layer with rank 16 → 2,666,528 trainable parameters; computed on a ``meta`` model, not typed in."""
    return dict(_book_lora_reference(rank, alpha))


@functools.cache
def _book_lora_reference(rank: int, alpha: float) -> dict[str, int]:
    from core.config import GPTConfig

    model = meta_model(GPTConfig.preset("gpt2-small", qkv_bias=True), n_classes=2)
    before = sum(p.numel() for p in model.parameters())
    apply_lora(model, rank, alpha, targets=ALL_LINEAR)
    return {"full": before, "lora": lora_parameter_counts(model)["lora"], "rank": rank}


@torch.no_grad()
def merge_check(model: GPTModel, rank: int, alpha: float, targets: str | Sequence[str] = ALL_LINEAR,
                seed: int = 123, n_tokens: int = 16) -> dict[str, float]:
    """Outputs of a LoRA copy of ``model`` before/after merging, on a random batch of token ids.

    B is set to seeded random values first (as after some training), so ΔW ≠ 0 and the check means something.

    Returns:
        ``init_diff`` (max |LoRA − base| with B = 0: exactly 0), ``lora_vs_base`` (after the random B),
        ``merge_diff`` (max |merged − unmerged|, float rounding only) and ``layers``.
    """
    embeddings = {id(p): p for m in (model.tok_emb, model.pos_emb) for p in m.parameters()}
    lora_model = copy.deepcopy(model, memo=dict(embeddings))  # embeddings are shared: LoRA never touches them
    # freeze_base=False: freezing would flip requires_grad on the shared embeddings of the cached model too.
    names = apply_lora(lora_model, rank, alpha, targets=targets, freeze_base=False)
    lora_model.eval()
    gen = torch.Generator().manual_seed(seed)
    cfg = model.cfg
    ids = torch.randint(0, cfg.vocab_size, (2, min(n_tokens, cfg.context_length)), generator=gen)  # (2, T)
    base_out = model(ids)
    init = lora_model(ids)
    for name in names:
        layer = lora_model.get_submodule(name)
        layer.B.copy_(torch.randn(layer.B.shape, generator=gen) * 0.02)
    unmerged = lora_model(ids)
    merge_lora(lora_model)
    merged = lora_model(ids)
    return {"init_diff": float((init - base_out).abs().max()), "lora_vs_base": float((unmerged - base_out).abs().max()),
            "merge_diff": float((merged - unmerged).abs().max()), "layers": len(names)}


# =============================================================================================== shared job bits
@dataclass
class FinetuneResult:
    """What a fine-tuning job returns (``job.result``). ``status`` is ``"finished"`` or ``"stopped"``."""

    kind: str
    status: str
    settings: dict[str, Any]
    records: list[dict[str, Any]]
    model: nn.Module | None = None  # the fine-tuned copy (dropped for older runs to save memory)
    details: dict[str, Any] = field(default_factory=dict)
    message: str = ""


def _release_old_models(jobs: JobRegistry, kind: str, keep: int = 1) -> None:
    """Keep the fine-tuned models of only the newest ``keep`` finished runs of ``kind`` in memory."""
    done = [j for j in jobs.list() if j.kind == kind and not j.active and isinstance(j.result, FinetuneResult)]
    for job in done[keep:]:
        job.result.model = None


def job_state(run_id: str | None, kind: str | None = None,
              jobs: JobRegistry | None = None) -> tuple[dict[str, Any] | None, Any]:
    """``(snapshot, result)`` of a run, or ``(None, None)`` when the registry does not know it (any more) or it is
    not of ``kind``."""
    job = (jobs or registry()).get(run_id) if isinstance(run_id, str) and run_id else None
    if job is None or (kind is not None and job.kind != kind):
        return None, None
    return job.snapshot(), job.result


def _check_common(epochs: int, max_steps: int | None, lr: float, batch_size: int) -> None:
    if not isinstance(epochs, int) or epochs < 1:
        raise LabError(f"epochs must be at least 1, got {epochs!r}.")
    if max_steps is not None and (not isinstance(max_steps, int) or max_steps < 1):
        raise LabError(f"max steps must be at least 1 (or empty for whole epochs), got {max_steps!r}.")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and 0 < lr <= 1):
        raise LabError(f"The learning rate must be between 0 and 1, got {lr!r}; the book uses 5e-5.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise LabError(f"The batch size must be at least 1, got {batch_size!r}.")
    current_limits().check_batch(batch_size)


def _check_planned_steps(n_train: int, batch_size: int, epochs: int, max_steps: int | None) -> None:
    """Refuse a run longer than the hosted-demo cap before it starts (a no-op outside the demo)."""
    per_epoch = n_train // batch_size if n_train > batch_size else 1  # the train loader drops a ragged last batch
    planned = per_epoch * epochs if max_steps is None else min(max_steps, per_epoch * epochs)
    current_limits().check_steps(planned)


# ======================================================================================== classification runner
@dataclass(frozen=True)
class ClassifySettings:
    """Everything a classification run needs besides the model and the data (all plain values)."""

    dataset: str = "builtin-spam"
    mode: str = "last-block"
    position: str = "last"
    epochs: int = 5
    max_steps: int | None = None
    lr: float = 5e-5
    batch_size: int = 8
    max_length: int | None = None
    balance: bool = True
    lora_rank: int = 8
    lora_alpha: float = 16
    eval_every: int = 10
    seed: int = 123


@dataclass
class ClassifyData:
    train: ClassificationDataset
    val: ClassificationDataset
    test: ClassificationDataset
    labels: list[str]
    majority: float  # accuracy of always predicting the test set's most common class
    majority_label: str
    notes: list[str]


def upload_columns(data: bytes, filename: str) -> list[str]:
    """The header names of an uploaded CSV/TSV (for the column pickers); ``[]`` if it cannot be read."""
    try:
        first = bytes(data[:65536]).decode("utf-8-sig", errors="replace").splitlines()[0]
    except IndexError:
        return []
    delim = "\t" if Path(filename).suffix.lower() in (".tsv", ".tab") else max(",\t;|", key=first.count)
    return [c.strip() for c in next(csv.reader(io.StringIO(first), delimiter=delim), []) if c.strip()]


def prepare_classification(df: pd.DataFrame, tokenizer: Any, context_length: int,
                           settings: ClassifySettings) -> ClassifyData:
    """Balance (optional), split 70/10/20 and tokenize, as the book's chapter 6.

    Raises:
        LabError: missing columns, a single label, too few rows for three splits, bad max length.
    """
    if settings.balance:
        df = balance(df, seed=settings.seed)
    train, val, test = split(df, seed=settings.seed)
    if min(len(train), len(val), len(test)) == 0:
        raise LabError(f"{len(df)} labelled rows are too few to split into training, validation and test sets; "
                       "use at least 10 (better: a few hundred).")
    tr = ClassificationDataset(train, tokenizer, settings.max_length, context_length=context_length)
    kw = dict(max_length=tr.max_length, labels=tr.label_names, context_length=context_length)
    va, te = ClassificationDataset(val, tokenizer, **kw), ClassificationDataset(test, tokenizer, **kw)
    counts = pd.Series([tr.label_names[i] for i in te.labels]).value_counts()
    notes = list(tr.notes)
    if te.n_truncated or va.n_truncated:
        n = te.n_truncated + va.n_truncated
        notes.append(f"{n} validation/test text{'s were' if n > 1 else ' was'} also cut to {tr.max_length} tokens.")
    return ClassifyData(tr, va, te, tr.label_names, float(counts.iloc[0] / len(te)), str(counts.index[0]), notes)


def start_classify_job(model: GPTModel, tokenizer: Any, df: pd.DataFrame, settings: ClassifySettings,
                       run_id: str | None = None, jobs: JobRegistry | None = None) -> Job:
    """Check the settings and data now (errors surface at once), then fine-tune a deep copy in a job.

    ``job.result`` is a :class:`FinetuneResult` with ``details``: ``evaluation`` (see
    :func:`core.classify.evaluate`), ``majority``, ``labels``, ``max_length``, ``trainable``, ``notes``.
    """
    s = settings
    _check_common(s.epochs, s.max_steps, s.lr, s.batch_size)
    if s.mode not in MODES or s.position not in POSITIONS:
        raise LabError(f"Unknown mode {s.mode!r} or token position {s.position!r}.")
    jobs = jobs or registry()
    run_id = run_id or default_run_id("classify")
    jobs.check_can_start(run_id)
    data = prepare_classification(df, tokenizer, model.cfg.context_length, s)
    _check_planned_steps(len(data.train), s.batch_size, s.epochs, s.max_steps)

    def target(job: Job) -> FinetuneResult:
        job.update(progress=0.0, message="Copying the model and building the classifier…")
        m = prepare_classifier(copy.deepcopy(model), len(data.labels), s.mode, s.lora_rank, s.lora_alpha, s.seed)
        train_loader = make_loader(data.train, s.batch_size, shuffle=True, drop_last=len(data.train) > s.batch_size,
                                   seed=s.seed)
        val_loader, test_loader = make_loader(data.val, s.batch_size), make_loader(data.test, s.batch_size)
        total = len(train_loader) * s.epochs if s.max_steps is None else min(s.max_steps, len(train_loader) * s.epochs)

        def on_record(r: dict[str, Any]) -> None:
            acc = f", val accuracy {r['val_acc']:.0%}" if r["val_acc"] is not None else ""
            job.update(record=r, progress=0.95 * r["step"] / max(total, 1),
                       message=f"Step {r['step']}/{total} (epoch {r['epoch']}): val loss {r['val_loss']:.3f}{acc}")

        run = train_classifier(m, train_loader, val_loader, s.epochs, s.lr, eval_every=s.eval_every,
                               position=s.position, on_record=on_record, stop_event=job.stop_event, seed=s.seed,
                               max_steps=s.max_steps)
        job.update(message="Evaluating on the test set…")
        ev = evaluate(m, test_loader, data.labels, s.position)
        details = {"evaluation": ev, "majority": data.majority, "majority_label": data.majority_label,
                   "labels": data.labels, "max_length": data.train.max_length, "notes": data.notes,
                   "trainable": trainable_summary(m), "steps": run.steps, "examples_seen": run.examples_seen,
                   "sizes": (len(data.train), len(data.val), len(data.test)), "elapsed_s": run.elapsed_s}
        status = "stopped" if run.stopped else "finished"
        msg = f"Test accuracy {ev['accuracy']:.1%} (majority baseline {data.majority:.1%}) after {run.steps} steps."
        return FinetuneResult("classify", status, asdict(s), run.records, m, details, msg)

    job = jobs.start(run_id, target, kind="classify")
    _release_old_models(jobs, "classify")
    return job


def misclassified(evaluation: Mapping[str, Any], limit: int = 50) -> pd.DataFrame:
    """The test examples the classifier got wrong, with the probability it gave its (wrong) answer."""
    rows = [{"text": e["text"], "true label": e["label"], "predicted": e["pred"], "confidence": max(e["probs"])}
            for e in evaluation["per_example"] if e["label"] != e["pred"]]
    return pd.DataFrame(rows[:limit], columns=["text", "true label", "predicted", "confidence"])


def ablation_row(run_id: str, result: FinetuneResult) -> dict[str, Any]:
    """One line of the ablation table: the run's settings and its test accuracy."""
    s, d = result.settings, result.details
    return {"run": run_id, "dataset": s["dataset"], "mode": s["mode"], "position": s["position"],
            "steps": d["steps"], "lr": s["lr"], "batch": s["batch_size"], "max length": d["max_length"],
            "trainable": d["trainable"]["trainable"], "test accuracy": d["evaluation"]["accuracy"],
            "majority baseline": d["majority"], "status": result.status}


# ========================================================================================== instruction runner
@dataclass(frozen=True)
class InstructSettings:
    """Everything an instruction run needs besides the model and the data (all plain values)."""

    dataset: str = "builtin-instructions"
    epochs: int = 2
    max_steps: int | None = 30
    lr: float = 5e-4
    batch_size: int = 8
    max_length: int | None = None  # default: the model's context length
    mask_prompt: bool = False
    n_eval: int = 10
    max_new_tokens: int = 32
    eval_every: int = 5
    seed: int = 123


def instruction_splits(records: Sequence[Mapping[str, Any]]) -> tuple[list[dict], list[dict], list[dict], list[str]]:
    """The book's 85/5/10 split, with small data kept usable: ``(train, val, test, notes)``."""
    if not isinstance(records, Sequence) or isinstance(records, str) or len(records) < 3:
        raise LabError("Instruction fine-tuning needs at least 3 records (training, validation and test); "
                       "load or upload more.")
    train, val, test = split_instructions(records)
    notes = []
    if not test:
        test, train = train[-1:], train[:-1]
        notes.append("The data is too small for a 10 % test split; the last training record is the test set.")
    if not val:
        val = train[-1:]
        notes.append("The data is too small for a 5 % validation split; validation reuses a training record.")
    return list(train), list(val), list(test), notes


def xray_batch(records: Sequence[Mapping[str, Any]], tokenizer: Any, mask_prompt: bool,
               max_length: int | None = None, n: int = 2) -> list[list[dict[str, Any]]]:
    """The first ``n`` records collated exactly as in training, as :func:`core.instruct.loss_mask_view` rows."""
    ds = InstructionDataset(list(records[:n]), tokenizer, max_length)
    inputs, targets = custom_collate_fn([ds[i] for i in range(len(ds))], mask_prompt=mask_prompt,
                                        allowed_max_length=max_length)  # (n, T) each
    return loss_mask_view(inputs, targets, tokenizer)


def _respond(job: Job, model: nn.Module, tokenizer: Any, entries: list[dict], max_new_tokens: int,
             lo: float, hi: float, what: str) -> list[str]:
    """Greedy answers one entry at a time, so progress moves and Stop is honoured between examples."""
    out = []
    for i, entry in enumerate(entries):
        if job.stop_event.is_set():
            break
        job.update(progress=lo + (hi - lo) * i / max(len(entries), 1),
                   message=f"Generating {what} responses: {i + 1}/{len(entries)}")
        out += generate_responses(model, tokenizer, [entry], max_new_tokens=max_new_tokens)
    return out + [""] * (len(entries) - len(out))


def start_instruct_job(model: GPTModel, tokenizer: Any, records: Sequence[Mapping[str, Any]],
                       settings: InstructSettings, run_id: str | None = None,
                       jobs: JobRegistry | None = None) -> Job:
    """Answer ``n_eval`` test prompts, fine-tune a deep copy of ``model``, answer them again — in one job.

    ``job.result`` is a :class:`FinetuneResult` with ``details``: ``entries`` (the scored test records),
    ``before``/``after`` (responses), ``score_before``/``score_after`` (:func:`core.instruct.score_responses`),
    ``notes``, ``sizes``, ``json`` (the book's response file).
    """
    s = settings
    _check_common(s.epochs, s.max_steps, s.lr, s.batch_size)
    if not isinstance(s.n_eval, int) or s.n_eval < 1:
        raise LabError(f"Score at least 1 test example, got {s.n_eval!r}.")
    jobs = jobs or registry()
    run_id = run_id or default_run_id("instruct")
    jobs.check_can_start(run_id)
    train, val, test, notes = instruction_splits(records)
    max_length = min(s.max_length or model.cfg.context_length, model.cfg.context_length)
    train_ds, val_ds = InstructionDataset(train, tokenizer, max_length), InstructionDataset(val, tokenizer, max_length)
    notes += train_ds.notes
    _check_planned_steps(len(train_ds), s.batch_size, s.epochs, s.max_steps)
    entries = test[: s.n_eval]
    refs = [e["output"] for e in entries]

    def target(job: Job) -> FinetuneResult:
        m = copy.deepcopy(model)
        m.requires_grad_(True)
        before = _respond(job, m, tokenizer, entries, s.max_new_tokens, 0.0, 0.1, "'before'")
        train_loader = make_instruction_loader(train_ds, s.batch_size, shuffle=True,
                                               drop_last=len(train_ds) > s.batch_size, mask_prompt=s.mask_prompt,
                                               seed=s.seed)
        val_loader = make_instruction_loader(val_ds, s.batch_size, mask_prompt=s.mask_prompt)
        total = len(train_loader) * s.epochs if s.max_steps is None else min(s.max_steps, len(train_loader) * s.epochs)

        def on_record(r: dict[str, Any]) -> None:
            job.update(record=r, progress=0.1 + 0.8 * r["step"] / max(total, 1),
                       message=f"Step {r['step']}/{total}: train loss {r['train_loss']:.3f}, "
                               f"val loss {r['val_loss']:.3f}")

        run = train_instruct(m, train_loader, val_loader, s.epochs, s.max_steps, s.lr, eval_every=s.eval_every,
                             on_record=on_record, stop_event=job.stop_event, seed=s.seed)
        after = _respond(job, m, tokenizer, entries, s.max_new_tokens, 0.9, 1.0, "'after'")
        details = {"entries": entries, "before": before, "after": after, "notes": notes,
                   "score_before": score_responses(before, refs), "score_after": score_responses(after, refs),
                   "sizes": (len(train), len(val), len(test)), "steps": run.steps, "tokens_seen": run.tokens_seen,
                   "json": export_responses_json(entries, after)}
        status = "stopped" if job.stop_event.is_set() else "finished"
        sa = details["score_after"]
        msg = f"After {run.steps} steps: exact match {sa['exact_match']:.0%}, token F1 {sa['token_f1']:.2f}."
        return FinetuneResult("instruct", status, asdict(s), run.records, m, details, msg)

    job = jobs.start(run_id, target, kind="instruct")
    _release_old_models(jobs, "instruct")
    return job


EMPTY = "∅ (empty: it stopped at once)"


def responses_table(details: Mapping[str, Any]) -> pd.DataFrame:
    """Instruction, reference and the responses before and after fine-tuning, one row per test example (an empty
    response is shown as :data:`EMPTY`; the scores use the raw text)."""
    from core.instruct import exact_match, token_f1

    rows = []
    for e, b, a in zip(details["entries"], details["before"], details["after"]):
        rows.append({"instruction": e["instruction"] + (f"\n{e['input']}" if e.get("input") else ""),
                     "reference": e["output"], "before": b or EMPTY, "after": a or EMPTY,
                     "exact match after": bool(exact_match(a, e["output"])),
                     "token F1 after": token_f1(a, e["output"])})
    return pd.DataFrame(rows)

