"""What every tokenizer in the lab shares: ids ↔ text, token bytes, and spans for colouring the text.

A tokenizer maps text to a list of integer ids (one per token) and back. The UI also needs to know *where*
each token sits in the text and what it looks like, so every tokenizer returns :class:`TokenSpan` records too.

Special tokens (such as ``<|endoftext|>``) follow tiktoken's rules, so code written for tiktoken works as is:

- ``allowed_special``: special tokens that may be encoded as their single id (a set of strings, or
  ``"all"``). ``None`` means the tokenizer's own default: nothing for GPT-2 and BPE (tiktoken's safe default),
  everything for the book's ``SimpleTokenizerV2`` (which encodes ``<|endoftext|>`` as in the book).
- ``disallowed_special``: special tokens that make ``encode`` raise when they appear in the text (default
  ``"all"``: every special token that is not allowed). ``disallowed_special=()`` encodes them as plain text.
"""

from __future__ import annotations

import codecs
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from core.errors import LabError, check_int

Allowed = AbstractSet[str] | str | None
Disallowed = AbstractSet[str] | str

# Whitespace made visible, so a learner can see that " the" and "the" are different tokens.
_VISIBLE = str.maketrans({" ": "·", "\n": "↵", "\t": "→", "\r": "␍"})


def _hex_errors(err: UnicodeDecodeError) -> tuple[str, int]:
    """Codec error handler: show undecodable bytes as ``<0xE2>`` instead of the replacement character."""
    return "".join(f"<0x{b:02X}>" for b in err.object[err.start : err.end]), err.end


codecs.register_error("llmlab-hex", _hex_errors)


def display_bytes(data: bytes) -> str:
    """A token's bytes as a readable label: whitespace made visible, broken UTF-8 shown as hex.

    Example:
        >>> display_bytes(b" the\\n"), display_bytes("👋".encode()[:2])
        ('·the↵', '<0xF0><0x9F>')
    """
    return data.decode("utf-8", errors="llmlab-hex").translate(_VISIBLE)


def display_text(text: str) -> str:
    """Like :func:`display_bytes` for a string: whitespace made visible (``"a b\\n"`` → ``"a·b↵"``)."""
    return text.translate(_VISIBLE)


@dataclass(frozen=True)
class TokenSpan:
    """One token of an encoded text, located in that text.

    Attributes:
        id: the token id.
        bytes: the bytes of the text this token covers, ``text.encode("utf-8")[start:end]``.
        start: byte offset where the token starts in ``text.encode("utf-8")``.
        end: byte offset just after the token.
        text: ``bytes`` decoded, or None when they are only part of a character (an emoji split in two).
        display: a label for the UI: whitespace visible (``·`` ``↵`` ``→``), broken bytes as ``<0xE2>``.
        is_special: True for special tokens such as ``<|endoftext|>`` and ``<|unk|>``.
        is_partial: True when the bytes are not valid UTF-8 on their own.
    """

    id: int
    bytes: bytes
    start: int
    end: int
    text: str | None
    display: str
    is_special: bool = False
    is_partial: bool = False


def make_span(
    token_id: int, data: bytes, start: int, special: bool = False, label: str | None = None
) -> TokenSpan:
    """Build a :class:`TokenSpan` from a token's bytes; ``label`` overrides the display (e.g. ``<|unk|>``)."""
    try:
        text, partial = data.decode("utf-8"), False
    except UnicodeDecodeError:
        text, partial = None, True
    display = label if label is not None else (text if special else display_bytes(data))
    return TokenSpan(token_id, data, start, start + len(data), text, display, special, partial)


def check_text(text: Any) -> str:
    """Return ``text`` if it is a string (lone surrogates replaced, as tiktoken does), else raise."""
    if not isinstance(text, str):
        raise LabError(
            f"The text to encode must be a string, got {type(text).__name__}; pass text like 'Hello'."
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates (from broken JSON or clipboard data) have no UTF-8 bytes; replace them with "�".
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def need_text(text: Any, name: str, allow_blank: bool = False) -> str:
    """Return ``text`` if it can build a vocabulary, else raise a LabError.

    Word-level vocabularies need a non-blank string; a character vocabulary (``allow_blank``) can be built from
    whitespace alone.
    """
    if not isinstance(text, str) or not (text if allow_blank else text.strip()):
        raise LabError(
            f"The {name} tokenizer needs a non-empty text; pass the text the vocabulary should be built from."
        )
    return check_text(text)


class Tokenizer(ABC):
    """The common interface: ``encode``, ``decode``, ``n_vocab``, ``token_bytes``, ``spans``, ``vocab_items``.

    Subclasses set ``name`` and ``special_tokens`` (text → id) and implement ``n_vocab``, ``token_bytes`` and
    ``_segment_spans`` (the tokens of a piece of text that holds no special tokens, with byte offsets).
    """

    name: str = "tokenizer"
    special_tokens: dict[str, int] = {}
    default_allowed_special: AbstractSet[str] | str = frozenset()

    @property
    @abstractmethod
    def n_vocab(self) -> int:
        """Number of ids in the vocabulary: valid ids are ``0 … n_vocab - 1``."""

    @abstractmethod
    def token_bytes(self, token_id: int) -> bytes:
        """The raw bytes of a single token (a special token gives its literal text)."""

    @abstractmethod
    def _segment_spans(self, segment: str, offset: int) -> list[TokenSpan]:
        """Tokens of ``segment`` (no special tokens inside), byte offsets shifted by ``offset``."""

    # ---------------------------------------------------------------------------------------- public API
    def encode(
        self, text: str, allowed_special: Allowed = None, disallowed_special: Disallowed = "all"
    ) -> list[int]:
        """Text → token ids.

        Args:
            text: the text to encode.
            allowed_special: special tokens to encode as their id: a set, ``"all"``, or None (the default).
            disallowed_special: special tokens that raise when present: ``"all"`` (every one not allowed) or a
                set; ``()`` encodes them as plain text.

        Example:
            >>> from core.tokenizers import get_tokenizer
            >>> get_tokenizer("gpt2").encode("Hello, world")
            [15496, 11, 995]
        """
        text = check_text(text)
        ids: list[int] = []
        for segment, special in self.split_special(text, allowed_special, disallowed_special):
            if special:
                ids.append(self.special_tokens[segment])
            elif segment:
                ids.extend(self._segment_ids(segment))
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Token ids → text. Byte-level tokenizers show a character cut at the edges as ``�``."""
        ids = self.check_ids(ids)
        return b"".join(self.token_bytes(i) for i in ids).decode("utf-8", errors="replace")

    def spans(
        self, text: str, allowed_special: Allowed = None, disallowed_special: Disallowed = "all"
    ) -> list[TokenSpan]:
        """Encode ``text`` and say where each token sits in it (byte offsets in ``text.encode("utf-8")``).

        Example:
            >>> from core.tokenizers import get_tokenizer
            >>> [(s.id, s.start, s.end, s.display) for s in get_tokenizer("gpt2").spans("Hi there")]
            [(17250, 0, 2, 'Hi'), (612, 2, 8, '·there')]
        """
        text = check_text(text)
        out: list[TokenSpan] = []
        offset = 0
        for segment, special in self.split_special(text, allowed_special, disallowed_special):
            data = segment.encode("utf-8")
            if special:
                out.append(make_span(self.special_tokens[segment], data, offset, special=True))
            elif segment:
                out.extend(self._segment_spans(segment, offset))
            offset += len(data)
        return out

    def vocab_items(self, limit: int | None = None) -> list[tuple[int, str]]:
        """``(id, display label)`` for the first ``limit`` ids (all when None), for a vocabulary table."""
        if limit is not None:
            limit = check_int(limit, "limit", low=0, fix="or None for all")
        n = self.n_vocab if limit is None else min(limit, self.n_vocab)
        specials = {i: s for s, i in self.special_tokens.items()}
        return [(i, specials[i] if i in specials else display_bytes(self.token_bytes(i))) for i in range(n)]

    # ---------------------------------------------------------------------------------------- helpers
    def _segment_ids(self, segment: str) -> list[int]:
        """Ids of ``segment`` (no special tokens inside); override when ids are cheaper than spans."""
        return [span.id for span in self._segment_spans(segment, 0)]

    def check_id(self, token_id: Any) -> int:
        """Return ``token_id`` as an int if it is a valid id of this tokenizer, else raise a LabError."""
        i = check_int(token_id, "Token ids", fix="pass ints")
        if not 0 <= i < self.n_vocab:
            raise LabError(
                f"Token id {i} is outside this tokenizer's vocabulary of {self.n_vocab:,} ids; "
                f"use ids from 0 to {self.n_vocab - 1:,} made by the same tokenizer."
            )
        return i

    def check_ids(self, ids: Any) -> list[int]:
        """Return ``ids`` (a list, tuple, tensor or array of ints) as a list of valid ids."""
        if isinstance(ids, str | bytes):
            raise LabError("decode needs a list of token ids, not text; pass something like [15496, 11].")
        if hasattr(ids, "tolist"):  # torch tensors and numpy arrays
            ids = ids.tolist()
        if isinstance(ids, int):
            ids = [ids]
        if not isinstance(ids, Iterable):
            raise LabError(f"decode needs a list of token ids, got {type(ids).__name__}; pass ints.")
        return [self.check_id(i) for i in ids]

    def resolve_special(self, allowed: Allowed, disallowed: Disallowed) -> tuple[set[str], set[str]]:
        """Turn the tiktoken-style arguments into two plain sets of this tokenizer's special tokens.

        Names that are not special tokens of this tokenizer are ignored, so
        ``allowed_special={"<|endoftext|>"}`` can be passed to any tokenizer.
        """
        known = set(self.special_tokens)
        if allowed is None:
            allowed = self.default_allowed_special
        allowed_set = known if allowed == "all" else _as_set(allowed, "allowed_special") & known
        if disallowed == "all":
            disallowed_set = known - allowed_set
        else:
            disallowed_set = _as_set(disallowed, "disallowed_special") & known
        return allowed_set, disallowed_set

    def split_special(self, text: str, allowed: Allowed, disallowed: Disallowed) -> list[tuple[str, bool]]:
        """Cut ``text`` into ``(segment, is_special)`` pieces around the allowed special tokens.

        Raises:
            LabError: a disallowed special token appears in the text.
        """
        allowed_set, disallowed_set = self.resolve_special(allowed, disallowed)
        check_disallowed(text, disallowed_set)
        if not allowed_set:
            return [(text, False)]
        # Longest first, so a special token that contains another one is matched whole.
        pattern = "(" + "|".join(re.escape(t) for t in sorted(allowed_set, key=len, reverse=True)) + ")"
        # re.split with one group alternates text, token, text, …: the odd positions are the special tokens.
        pieces = re.split(pattern, text)
        return [(piece, i % 2 == 1) for i, piece in enumerate(pieces) if piece or i % 2 == 1]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, n_vocab={self.n_vocab})"


def check_disallowed(text: str, disallowed: AbstractSet[str]) -> None:
    """Raise a LabError if a disallowed special token appears in ``text`` (tiktoken's safety check)."""
    for token in sorted(disallowed):
        if token in text:
            raise LabError(
                f"The text contains the special token {token!r}; pass allowed_special={{{token!r}}} to "
                "encode it as one token, or disallowed_special=() to encode it as plain text."
            )


def _as_set(value: Any, arg: str) -> set[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise LabError(
            f"{arg} must be a set of special tokens or 'all', got {value!r}; e.g. {{'<|endoftext|>'}}."
        )
    return set(value)
