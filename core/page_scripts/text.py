"""Scripts for the text pages: Tokenizer (book ch. 2.2–2.5) and Sampling windows (§2.6)."""

from __future__ import annotations

from typing import Any

from core.errors import LabError
from core.page_scripts import lit, need
from core.tokenizers import REGISTRY

CORPUS_SOURCES = {"builtin-corpus": "the built-in corpus", "the-verdict": "The Verdict, the book's short story"}


def _text_lines(settings: dict[str, Any], var: str = "TEXT") -> str:
    """``TEXT = …``: the page's own text embedded, or a registry corpus loaded by name."""
    source = settings.get("source", "text")
    if source == "text":
        return f"{var} = {lit(str(need(settings, 'text')[0]))}\n"
    if source not in CORPUS_SOURCES:
        raise LabError(f"The text source {source!r} is not one the page offers.")
    return (f"from core.datasets import load_corpus\n\n{var} = load_corpus({lit(source)})  # "
            f"{CORPUS_SOURCES[source]}\n")


def tokenizer_script(s: dict[str, Any]) -> tuple[str, str]:
    """Settings: ``name`` (a tokenizer of :data:`core.tokenizers.REGISTRY`), ``text``, ``vocab_source``
    ("text" or "builtin-corpus": where simple-v1/v2 and BPE learn their vocabulary), ``allow_endoftext``,
    ``bpe_size`` (BPE only)."""
    name, allow = need(s, "name", "allow_endoftext")
    if name not in REGISTRY:
        raise LabError(f"There is no tokenizer called {name!r}.")
    vocab_from, vocab_source = REGISTRY[name].vocab_from, s.get("vocab_source", "text")
    lines = [_text_lines({"source": "text", "text": need(s, "text")[0]})]
    if vocab_from in ("choice", "training") and vocab_source != "text":
        lines.append(_text_lines({"source": vocab_source}, "VOCAB_TEXT"))
    else:
        lines.append("VOCAB_TEXT = TEXT\n")
    lines.append(f"ALLOWED = {lit(['<|endoftext|>'] if allow else [])}\n")
    if vocab_from == "training":
        size = int(need(s, "bpe_size")[0])
        lines.append(f"""
# §2.5 byte-pair encoding, trained here: start from the 256 bytes and merge the most frequent pair {size - 257:,}
# times (the book loads GPT-2's finished merges through tiktoken instead).
from core.tokenizers import train_bpe

tokenizer = train_bpe(VOCAB_TEXT, {size})
""")
    else:
        book = {"gpt2": "§2.5: the book's tiktoken.get_encoding('gpt2'); the same ids, read from assets/",
                "simple-v1": "§2.3: the book's SimpleTokenizerV1(vocab), its vocabulary built from VOCAB_TEXT",
                "simple-v2": "§2.4: SimpleTokenizerV2 adds <|endoftext|> and <|unk|>",
                }.get(name, "one id per character")  # fmt: skip
        lines.append(f"""
from core.tokenizers import get_tokenizer

tokenizer = get_tokenizer({lit(name)}, {'None' if vocab_from == 'none' else 'VOCAB_TEXT'})  # {book}
""")
    lines.append("""
ids = tokenizer.encode(TEXT, allowed_special=set(ALLOWED), disallowed_special=())
print(f"Characters: {len(TEXT):,}")
print(f"Tokens: {len(ids):,}")
print(f"Characters per token: {len(TEXT) / len(ids):.2f}" if ids else "Characters per token: —")
print(f"Vocabulary size: {tokenizer.n_vocab:,}")
print("First ids:", ids[:20])
print("Round trip:", "exact" if tokenizer.decode(ids) == TEXT else "differs (see the page for why)")
""")
    return f"Tokenizer: {name} on the page's text (book chapter 2)", "".join(lines)


def sampling_script(s: dict[str, Any]) -> tuple[str, str]:
    """Settings: ``source`` ("text", "builtin-corpus" or "the-verdict"), ``text`` (for "text"), ``max_length``,
    ``stride``, ``batch_size``."""
    max_length, stride, batch = (int(v) for v in need(s, "max_length", "stride", "batch_size"))
    body = _text_lines(s) + f"""
import torch

from core.book import create_dataloader_v1
from core.data import describe_windows, to_token_ids, window_count
from core.tokenizers import get_tokenizer

MAX_LENGTH, STRIDE, BATCH_SIZE = {max_length}, {stride}, {batch}

tokenizer = get_tokenizer("gpt2")  # §2.5: GPT-2's byte-pair encoding (tiktoken's ids)
ids = to_token_ids(TEXT, tokenizer)
info = describe_windows(len(ids), MAX_LENGTH, STRIDE)
print(f"Tokens: {{len(ids):,}}")
print(f"Windows: {{window_count(len(ids), MAX_LENGTH, STRIDE):,}}")
print(f"Overlap (tokens): {{info['overlap']:,}}")
print(f"Gap (tokens): {{info['gap']:,}}")
print(f"Unused at end (tokens): {{info['tokens_unused_at_end']:,}}")

# §2.6: input windows of MAX_LENGTH ids, each target the same window moved one token right
loader = create_dataloader_v1(TEXT, batch_size=BATCH_SIZE, max_length=MAX_LENGTH, stride=STRIDE, shuffle=False,
                              drop_last=False)
inputs, targets = next(iter(loader))
torch.set_printoptions(linewidth=120)
print("Inputs:\\n", inputs)
print("Targets:\\n", targets)
print(f"Batch shape: {{tuple(inputs.shape)}}")
"""
    return "Sampling windows: the sliding-window data loader (book §2.6)", body


SCRIPTS = {"tokenizer": tokenizer_script, "sampling": sampling_script}
