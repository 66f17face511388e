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
from typing import Any

from core.errors import LabError, shown
from core.tokenizers.base import Tokenizer, TokenSpan, display_bytes, display_text, need_text
from core.tokenizers.bpe import MAX_VOCAB_SIZE, BPETokenizer, merge_pair, train_bpe
from core.tokenizers.gpt2 import GPT2_PATTERN, GPT2Tokenizer, gpt2_ranks_path, load_gpt2_encoding
from core.tokenizers.simple import CharTokenizer, SimpleTokenizerV1, SimpleTokenizerV2

__all__ = [
    "TOKENIZER_NAMES", "BPETokenizer", "CharTokenizer", "GPT2_PATTERN", "GPT2Tokenizer", "MAX_VOCAB_SIZE",
    "SimpleTokenizerV1", "SimpleTokenizerV2", "TokenSpan", "Tokenizer", "describe_tokenizer", "display_bytes",
    "display_text", "get_tokenizer", "gpt2_ranks_path", "load_gpt2_encoding", "merge_pair", "train_bpe",
]

TOKENIZER_NAMES: tuple[str, ...] = ("gpt2", "simple-v1", "simple-v2", "char", "bpe")

_DESCRIPTIONS = {
    "gpt2": "GPT-2's byte-pair encoding: 50,257 ids that can spell any text, with common words as single "
    "tokens and rare words split into pieces.",
    "simple-v1": "The book's first tokenizer: splits on spaces and punctuation and looks each word up in a "
    "vocabulary built from your text, so a word it has never seen is an error.",
    "simple-v2": "simple-v1 plus two special tokens: <|unk|> stands in for any unknown word and "
    "<|endoftext|> marks where one document ends and the next begins.",
    "char": "One token per character, with a vocabulary of the characters in your text: a tiny vocabulary, "
    "but long sequences.",
    "bpe": "Byte-pair encoding trained on your text: it starts from the 256 bytes and keeps merging the most "
    "frequent pair of tokens into a new one, the way GPT-2's vocabulary was made.",
}


def describe_tokenizer(name: str) -> str:
    """One or two sentences about a tokenizer, for the UI.

    Example:
        >>> describe_tokenizer("char")[:26]
        'One token per character, w'
    """
    return _DESCRIPTIONS[_check_name(name)]


def _check_name(name: Any) -> str:
    key = name.strip().lower() if isinstance(name, str) else name
    if not isinstance(key, str) or key not in _DESCRIPTIONS:
        raise LabError(f"Unknown tokenizer {shown(name)}; choose one of {', '.join(TOKENIZER_NAMES)}.")
    return key


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
    key = _check_name(name)
    if kw and key != "bpe":
        raise LabError(f"The {key} tokenizer takes no options, got {', '.join(kw)}; pass only name and text.")
    if key == "gpt2":
        return _gpt2()
    text = need_text(text, key, allow_blank=key == "char")
    if key == "simple-v1":
        return SimpleTokenizerV1.from_text(text)
    if key == "simple-v2":
        return SimpleTokenizerV2.from_text(text)
    if key == "char":
        return CharTokenizer.from_text(text)
    unknown = sorted(set(kw) - {"vocab_size", "progress", "endoftext"})
    if unknown:
        raise LabError(f"Unknown option {', '.join(unknown)} for bpe; use vocab_size, progress or endoftext.")
    return train_bpe(text, kw.pop("vocab_size", 512), **kw)
