"""Scripts for the Pretraining page (book ch. 5 with appendix D) and the Generation page (§5.3)."""

from __future__ import annotations

from typing import Any

from core.book import GPT_CONFIG_124M
from core.config import GPTConfig
from core.errors import LabError
from core.model_spec import KINDS
from core.page_scripts import lit, need
from core.page_scripts.text import _text_lines
from core.train_config import TrainSettings

# The settings the Pretraining page sets itself; any other TrainSettings field is written only when it differs
# from its default.
PAGE_SETTINGS = ("max_steps", "batch_size", "lr", "warmup_steps", "eval_every", "sample_every", "seed",
                 "val_ratio", "split", "sample_prompt")

FORMATS = '''
from core.formatting import fmt_loss, format_bytes, format_si  # the page's number formats
'''


def _config_lines(config: Any) -> str:
    """``GPT_CONFIG = {**GPT_CONFIG_124M, …}``: the page's model as the book's config dict with what differs."""
    if not isinstance(config, dict):
        raise LabError("The model configuration must be a dict of GPTConfig fields; export it from the page.")
    cfg = GPTConfig.from_dict(dict(config))  # LabError for a bad size, in one sentence
    defaults = GPTConfig().to_dict()
    changed = {k: v for k, v in cfg.to_dict().items() if GPT_CONFIG_124M.get(k, defaults[k]) != v}
    if GPTConfig.from_dict({**GPT_CONFIG_124M, **changed}) != cfg:  # never expected: every field is written
        raise LabError("The model configuration could not be written as the book's GPT_CONFIG_124M plus changes.")
    inner = "".join(f"\n    {lit(k)}: {lit(v)}," for k, v in changed.items())
    book = "**GPT_CONFIG_124M,  # GPT-2 small (124M parameters), then the page's changes:"
    return "GPT_CONFIG = {\n    " + book + inner + "\n}\n"


def _settings_lines(train: Any) -> str:
    """``SETTINGS = TrainSettings(…)``: the page's fields, and any other that is not at its default."""
    if not isinstance(train, dict):
        raise LabError("The training settings must be a dict of TrainSettings fields; export them from the page.")
    settings = TrainSettings.from_dict(dict(train))  # LabError for a bad value, in one sentence
    defaults, values = TrainSettings().to_dict(), settings.to_dict()
    keys = [k for k in values if k in PAGE_SETTINGS or values[k] != defaults[k]]
    args = "".join(f"\n    {k}={lit(values[k])}," for k in keys)
    return "SETTINGS = TrainSettings(" + args + "\n)\n"


PREFLIGHT = """
# The pre-flight check: the same numbers the trainer checks its data with
num = preflight_numbers(len(ids), cfg, SETTINGS, ids.sizes)
print(f"Parameters: {format_si(total_parameters(cfg))}")
print(f"Training memory: {format_bytes(estimate_training_memory(cfg, SETTINGS)['total_bytes'])}")
print(f"Corpus tokens: {len(ids):,}")
print(f"Training windows: {num['train_windows']:,}")
for problem in num["problems"]:
    print("Problem:", problem)
if "--preflight" in sys.argv[1:]:
    raise SystemExit(0)  # python this_script.py --preflight: the figures only, no training
"""

TRAINING = """
# §5.2 training loop: the page's own trainer (core.train.Trainer), the book's train_model_simple with
# appendix D's linear warmup, cosine decay and gradient clipping, plus checkpoints in a run folder. Weights
# (seeded), batch order (a pure function of seed and step) and the samples are the page's, so the same settings
# give the same losses; the run appears under the page's Past runs when run from the project folder.
trainer = make_trainer(cfg, SETTINGS, ids, default_runs_dir(), default_run_id("script"), tokenizer=tokenizer,
                       corpus=CORPUS)


def report(record):
    val = f"  val loss {record.val_loss:.3f}" if record.val_loss is not None else ""
    print(f"step {record.step:,}/{SETTINGS.max_steps:,}  train loss {record.train_loss:.3f}{val}")
    if record.sample is not None:
        print("  sample", repr(record.sample))


result = trainer.run(on_record=report)
print(result.message)
vals = [r.val_loss for r in result.records if r.val_loss is not None]
train_loss = result.records[-1].train_loss if result.records else None
print(f"Train loss: {fmt_loss(train_loss)}")
print(f"Val loss: {fmt_loss(vals[-1] if vals else None)}")
print(f"Train loss (unrounded): {train_loss!r}")
print(f"Val loss (unrounded): {(vals[-1] if vals else None)!r}")

# §5.1: the book's calc_loss_loader on the held-out windows (side by side, in order) gives the same val loss
val_loader = create_dataloader(ids.val, batch_size=SETTINGS.batch_size, max_length=trainer.context,
                               stride=trainer.context, shuffle=False, drop_last=False)
trainer.model.eval()
book_val = calc_loss_loader(val_loader, trainer.model, trainer.device, num_batches=SETTINGS.eval_batches)
print(f"Val loss (book's calc_loss_loader): {fmt_loss(book_val)}")
"""


def pretrain_script(s: dict[str, Any]) -> tuple[str, str]:
    """Settings: ``model_config`` (GPTConfig fields), ``train`` (TrainSettings fields), ``source``
    ("builtin-corpus", "the-verdict" or "text"), ``text`` (for "text"), ``title`` (the corpus's name)."""
    config, train, source = need(s, "model_config", "train", "source")
    title, own = str(s.get("title") or source), source == "text"
    store = ", store_corpus" if own else ""
    kept = "str(store_corpus(TEXT))" if own else lit(source)  # own text: kept in the data folder, to resume
    head = f"""import sys

from core.book import GPT_CONFIG_124M, calc_loss_loader
from core.config import GPTConfig
from core.data import create_dataloader
from core.model_spec import default_runs_dir
from core.preflight import preflight_numbers
from core.pretrain_job import training_ids{store}
from core.runs import default_run_id
from core.stats import total_parameters
from core.tokenizers import get_tokenizer
from core.train import TrainSettings, estimate_training_memory, make_trainer

# §4.1: the model, as the book's GPT_CONFIG_124M with the page's sizes
{_config_lines(config)}cfg = GPTConfig.from_dict(GPT_CONFIG)

# §5.2 and appendix D: how to train (the page's settings; warmup, cosine decay and clipping are appendix D's)
{_settings_lines(train)}
# §2.5 and §5.1: the corpus as GPT-2 token ids; the end val_ratio is held out for validation, cut from the token
# ids (split="tokens") or, as the book does, from the text's characters (split="characters")
{_text_lines({"source": source, "text": s.get("text", "")})}tokenizer = get_tokenizer("gpt2")
ids = training_ids(TEXT, tokenizer, SETTINGS)  # .train and .val ids; <|endoftext|> allowed as its special id
CORPUS = {{"title": {lit(title)}, "source": {kept}}}
"""
    body = head + FORMATS + PREFLIGHT + TRAINING
    return "Pretraining: train a GPT on the page's corpus with its settings (book chapter 5, appendix D)", body


def _spec(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or value.get("kind") not in KINDS:
        raise LabError("The active model must be a spec with kind 'preset', 'run' or 'hf'; export it from the page.")
    return dict(value)


def generate_script(s: dict[str, Any]) -> tuple[str, str]:
    """Settings: ``spec`` (the active model, :mod:`core.model_spec`), ``prompt``, ``max_new_tokens``,
    ``temperature``, ``top_k`` (0 = off), ``top_p`` (1.0 = off), ``seed``."""
    spec, prompt = _spec(need(s, "spec")[0]), need(s, "prompt")[0]
    if not isinstance(prompt, str) or not prompt.strip():
        raise LabError("The prompt is empty; type a few words for the model to continue.")
    try:
        max_new, top_k, seed = (int(v) for v in need(s, "max_new_tokens", "top_k", "seed"))
        temperature, top_p = (float(v) for v in need(s, "temperature", "top_p"))
    except (TypeError, ValueError):
        raise LabError("Max new tokens, top-k and seed must be whole numbers, temperature and top-p numbers.") from None
    body = f"""import torch

from core.book import generate, token_ids_to_text
from core.generate_steps import playground_generate
from core.model_spec import build_model, spec_tokenizer

# The active model: a preset is the book's GPTModel with a seeded random init (§4.6), a run is a checkpoint
# trained on the Pretraining page (§5.4), "hf" is OpenAI's GPT-2 weights (§5.5)
SPEC = {lit(spec)}
PROMPT = {lit(prompt)}
MAX_NEW_TOKENS, TEMPERATURE, TOP_K, TOP_P, SEED = {max_new}, {lit(temperature)}, {top_k}, {lit(top_p)}, {seed}

model = build_model(SPEC)  # in eval mode
tokenizer = spec_tokenizer(SPEC, model.cfg.vocab_size)  # the tokenizer its ids mean (GPT-2's BPE here)

# §5.3 decoding strategies: temperature scaling, top-k (0 = off) and top-p (1.0 = off), with a seeded generator;
# the page's function, which also records every step's candidates
run = playground_generate(model, tokenizer, PROMPT, MAX_NEW_TOKENS, TEMPERATURE, TOP_K, TOP_P, SEED)
print(f"Output: {{run.text!r}}")  # repr: one line, a newline shows as \\n
print(f"New token ids: {{run.trace.new_ids}}")
print(f"Settings: temperature {{TEMPERATURE:g}}, top-k {{TOP_K or 'off'}}, top-p {{TOP_P if TOP_P < 1 else 'off'}}, "
      f"seed {{SEED}}")
if TEMPERATURE > 0:  # the page sets the greedy continuation beside it
    greedy = playground_generate(model, tokenizer, PROMPT, MAX_NEW_TOKENS, 0.0, seed=SEED)
    print(f"Greedy: {{greedy.text!r}}")

# §5.3: the book's generate() on the same prompt ids, with the same settings and seed, picks the same tokens
idx = torch.tensor([run.trace.prompt_ids])  # (1, T)
out = generate(model, idx, MAX_NEW_TOKENS, context_size=model.cfg.context_length, temperature=TEMPERATURE,
               top_k=TOP_K or None, top_p=TOP_P if TOP_P < 1 else None, seed=SEED)
same = out[0, idx.shape[1]:].tolist() == run.trace.new_ids
print(f"Book's generate: {{'the same tokens' if same else 'other tokens'}}")
print(f"Book's generate text: {{token_ids_to_text(out, tokenizer)!r}}")  # decoded at once, not token by token
"""
    return "Generation: continue the page's prompt with the active model (book §5.3)", body


SCRIPTS = {"pretrain": pretrain_script, "generate": generate_script}
