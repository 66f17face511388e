"""Text ↔ token ids: GPT-2's BPE, the book's simple word tokenizers, characters, and BPE you train yourself.

Every tokenizer has the same interface (:class:`Tokenizer`): ``encode(text, allowed_special=...)``,
``decode(ids)``, ``n_vocab``, ``token_bytes(id)``, ``spans(text)`` (where each token sits, for colouring) and
``vocab_items(limit)``.

Example:
    >>> tok = get_tokenizer("gpt2")
    >>> tok.encode("Hello, do you like tea? <|endoftext|>", allowed_special={"<|endoftext|>"})
    [15496, 11, 466, 345, 588, 8887, 30, 220, 50256]
    >>> [s.display for s in tok.spans("Hi there\\n")]
    ['Hi', '·there', '↵']
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.errors import LabError, check_choice, shown
from core.tokenizers.base import Tokenizer, TokenSpan, display_bytes, display_text, need_text
from core.tokenizers.bpe import MAX_VOCAB_SIZE, BPETokenizer, merge_pair, train_bpe
from core.tokenizers.gpt2 import GPT2_PATTERN, GPT2Tokenizer, gpt2_ranks_path, load_gpt2_encoding
from core.tokenizers.simple import CharTokenizer, SimpleTokenizerV1, SimpleTokenizerV2

__all__ = [
    "TOKENIZER_NAMES", "BPETokenizer", "CharTokenizer", "GPT2_PATTERN", "GPT2Tokenizer", "MAX_VOCAB_SIZE",
    "SimpleTokenizerV1", "SimpleTokenizerV2", "TokenSpan", "Tokenizer", "describe_tokenizer", "display_bytes",
    "display_text", "get_tokenizer", "REGISTRY", "TokenizerEntry", "tokenizer_for_model", "gpt2_ranks_path",
    "load_gpt2_encoding", "merge_pair", "train_bpe",
]

GPT2_VOCAB = 50257  # GPT-2's vocabulary: 50,000 merges + 256 bytes + <|endoftext|>


@dataclass(frozen=True)
class TokenizerEntry:
    """One tokenizer the lab offers: its name, what the UI says about it, and how to build it.

    ``build(text, **options)`` returns the tokenizer; ``needs_text`` says whether it learns its vocabulary from a
    text (``allow_blank``: whether that text may be empty); ``options`` are the keyword arguments it accepts.
    ``label`` is its name in the UI's pickers; ``vocab_from`` tells the Tokenizer page which text it learns from:
    ``"none"`` (fixed vocabulary), ``"text"`` (the text being tokenized), ``"choice"`` (the text the learner
    picks) or ``"training"`` (the page's Train button builds it).
    """

    name: str
    description: str
    build: Callable[..., Tokenizer]
    needs_text: bool = True
    allow_blank: bool = False
    options: tuple[str, ...] = ()
    label: str = ""
    vocab_from: str = "choice"


def _build_bpe(text: str, vocab_size: int = 512, **kw: Any) -> Tokenizer:
    return train_bpe(text, vocab_size, **kw)


_ENTRIES = (
    TokenizerEntry("gpt2", "GPT-2's byte-pair encoding: 50,257 ids that can spell any text, with common words as "
                   "single tokens and rare words split into pieces.", lambda text=None: _gpt2(), needs_text=False,
                   label="GPT-2 (tiktoken BPE)", vocab_from="none"),
    TokenizerEntry("simple-v1", "The book's first tokenizer: splits on spaces and punctuation and looks each word "
                   "up in a vocabulary built from your text, so a word it has never seen is an error.",
                   SimpleTokenizerV1.from_text, label="simple-v1 (book §2.3)"),
    TokenizerEntry("simple-v2", "simple-v1 plus two special tokens: <|unk|> stands in for any unknown word and "
                   "<|endoftext|> marks where one document ends and the next begins.", SimpleTokenizerV2.from_text,
                   label="simple-v2 (book §2.4)"),
    TokenizerEntry("char", "One token per character, with a vocabulary of the characters in your text: a tiny "
                   "vocabulary, but long sequences.", CharTokenizer.from_text, allow_blank=True, label="characters",
                   vocab_from="text"),
    TokenizerEntry("bpe", "Byte-pair encoding trained on your text: it starts from the 256 bytes and keeps merging "
                   "the most frequent pair of tokens into a new one, the way GPT-2's vocabulary was made.",
                   _build_bpe, options=("vocab_size", "progress", "endoftext"), label="your own BPE (train it)",
                   vocab_from="training"),
)
REGISTRY: dict[str, TokenizerEntry] = {entry.name: entry for entry in _ENTRIES}
"""Every tokenizer by name: adding one is one entry here (plus its class)."""

TOKENIZER_NAMES: tuple[str, ...] = tuple(REGISTRY)


def describe_tokenizer(name: str) -> str:
    """One or two sentences about a tokenizer, for the UI.

    Example:
        >>> describe_tokenizer("char")[:26]
        'One token per character, w'
    """
    return REGISTRY[_check_name(name)].description


def _check_name(name: Any) -> str:
    return check_choice(name, "tokenizer", REGISTRY, fold=True)


@functools.lru_cache(maxsize=1)
def _gpt2() -> GPT2Tokenizer:
    return GPT2Tokenizer()


def get_tokenizer(name: str, text: str | None = None, **kw: Any) -> Tokenizer:
    """A tokenizer by name; the ones with a learned vocabulary build it from ``text``.

    Args:
        name: one of :data:`TOKENIZER_NAMES`.
        text: the text to build the vocabulary from (required for all but ``"gpt2"``, ignored by it).
        **kw: for ``"bpe"`` only: ``vocab_size`` (default 512), ``progress`` and ``endoftext``
            (see :func:`train_bpe`).

    Returns:
        A :class:`Tokenizer`. ``"gpt2"`` is loaded once and shared (it is never modified).

    Example:
        >>> get_tokenizer("simple-v2", "I like tea.").n_vocab
        6
    """
    entry = REGISTRY[_check_name(name)]
    unknown = sorted(set(kw) - set(entry.options))
    if unknown and not entry.options:
        raise LabError(f"The {entry.name} tokenizer takes no options, got {', '.join(kw)}; pass only name and text.")
    if unknown:
        raise LabError(f"Unknown option {', '.join(unknown)} for {entry.name}; use {', '.join(entry.options)}.")
    if not entry.needs_text:
        return entry.build()
    return entry.build(need_text(text, entry.name, allow_blank=entry.allow_blank), **kw)


def tokenizer_for_model(recorded: Any, vocab_size: int) -> Tokenizer:
    """The tokenizer a model's ids mean: the name its checkpoint records (``extra["tokenizer"]``), else GPT-2's
    for a vocabulary of 50,257 ids or more.

    Only tokenizers that need no training text can be rebuilt from a name; a model trained with another one is
    refused with a sentence saying so.

    Example:
        >>> tokenizer_for_model(None, 50257).name
        'gpt2'
    """
    name = recorded.strip().lower() if isinstance(recorded, str) else None
    if name in (None, "", "unknown") and vocab_size >= GPT2_VOCAB:  # GPT-2 sizes, padded ones too
        name = "gpt2"
    entry = REGISTRY.get(name or "")
    if entry is None or entry.needs_text:
        raise LabError(f"This model's ids were made by the tokenizer {shown(recorded)} (vocabulary {vocab_size:,}), "
                       "which the lab cannot rebuild from its name; use a model trained with GPT-2's tokenizer.")
    tok = entry.build()
    if tok.n_vocab > vocab_size:
        raise LabError(f"The {entry.name} tokenizer has {tok.n_vocab:,} ids but the model only {vocab_size:,}; use "
                       "a model whose vocabulary covers its tokenizer.")
    return tok
