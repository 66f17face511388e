"""The book's word tokenizers (sections 2.2–2.4) and a character tokenizer, each built from a text.

``SimpleTokenizerV1`` splits on punctuation and whitespace, drops the whitespace and looks each word up in a
vocabulary made from one text: a word it has never seen is an error. ``SimpleTokenizerV2`` adds two special
tokens at the end of the vocabulary, ``<|endoftext|>`` (between documents) and ``<|unk|>`` (any unknown word).
``CharTokenizer`` uses one id per distinct character, the smallest vocabulary that needs no merges.

Example:
    >>> tok = SimpleTokenizerV2.from_text("the cat sat on the mat.")
    >>> tok.encode("the dog sat."), tok.decode(tok.encode("the dog sat."))
    ([5, 7, 4, 0], 'the <|unk|> sat.')
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from core.errors import LabError
from core.tokenizers.base import Tokenizer, TokenSpan, check_text, make_span, need_text

# The book's split: keep punctuation and "--" as tokens, split on (and later drop) whitespace.
BOOK_SPLIT = re.compile(r'([,.:;?_!"()\']|--|\s)')
# decode joins words with spaces; this removes the space the join put before punctuation.
BOOK_JOIN_FIX = re.compile(r'\s+([,.?!"()\'])')  # V1's clean-up in the book
BOOK_V2_JOIN_FIX = re.compile(r'\s+([,.:;?!"()\'])')  # V2's: also no space before ':' and ';'
ENDOFTEXT, UNK = "<|endoftext|>", "<|unk|>"


def book_words(text: str) -> list[tuple[str, int, int]]:
    """The book's ``re.split`` + ``strip`` + drop empties, keeping each word's byte offsets in ``text``.

    Example:
        >>> book_words("Hello, world.")
        [('Hello', 0, 5), (',', 5, 6), ('world', 7, 12), ('.', 12, 13)]
    """
    out, offset = [], 0
    # re.split with a group returns every piece of the text in order, so offsets can be summed as we go.
    for piece in BOOK_SPLIT.split(text):
        size = len(piece.encode("utf-8"))
        word = piece.strip()
        if word:  # whitespace pieces strip to "" and are dropped, as in the book
            lead = len(piece[: len(piece) - len(piece.lstrip())].encode("utf-8"))
            out.append((word, offset + lead, offset + lead + len(word.encode("utf-8"))))
        offset += size
    return out


class SimpleTokenizerV1(Tokenizer):
    """The book's ``SimpleTokenizerV1``: words and punctuation looked up in a fixed vocabulary.

    Args:
        vocab: word → id, e.g. from :meth:`from_text`. Ids must be 0 … len(vocab) - 1.
    """

    name = "simple-v1"

    def __init__(self, vocab: dict[str, int]) -> None:
        if not vocab or sorted(vocab.values()) != list(range(len(vocab))):
            raise LabError("The vocabulary must map words to ids 0, 1, 2, …; build it with from_text(text).")
        self.str_to_int = dict(vocab)
        self.int_to_str = {i: s for s, i in vocab.items()}

    @classmethod
    def from_text(cls, text: str) -> SimpleTokenizerV1:
        """Vocabulary = the text's distinct words and punctuation, sorted (the book's ``sorted(set(…))``)."""
        words = sorted({w for w, _, _ in book_words(need_text(text, cls.name))})
        return cls({w: i for i, w in enumerate(words)})

    @property
    def n_vocab(self) -> int:
        return len(self.str_to_int)

    def token_bytes(self, token_id: int) -> bytes:
        return self.int_to_str[self.check_id(token_id)].encode("utf-8")

    def decode(self, ids: Iterable[int]) -> str:
        """Join the words with spaces, then remove the space before punctuation (the book's decode)."""
        text = " ".join(self.int_to_str[i] for i in self.check_ids(ids))
        return BOOK_JOIN_FIX.sub(r"\1", text)

    def _word_id(self, word: str) -> int | None:
        # Special tokens are matched only through allowed_special, never as ordinary words.
        return None if word in self.special_tokens else self.str_to_int.get(word)

    def _unknown(self, word: str, data: bytes, start: int) -> TokenSpan:
        raise LabError(
            f"The word {word!r} is not in this tokenizer's vocabulary of {self.n_vocab:,} words; use "
            "'simple-v2', which maps unknown words to <|unk|>, or build the vocabulary from a text with it."
        )

    def _segment_spans(self, segment: str, offset: int) -> list[TokenSpan]:
        data = segment.encode("utf-8")
        out = []
        for word, start, end in book_words(segment):
            token_id = self._word_id(word)
            if token_id is None:
                out.append(self._unknown(word, data[start:end], offset + start))
            else:
                out.append(make_span(token_id, data[start:end], offset + start))
        return out


class SimpleTokenizerV2(SimpleTokenizerV1):
    """The book's ``SimpleTokenizerV2``: like V1, plus ``<|endoftext|>`` and ``<|unk|>`` for unknown words.

    As in the book, ``<|endoftext|>`` in the text is encoded as its id by default (``allowed_special="all"``).
    """

    name = "simple-v2"
    default_allowed_special = "all"

    def __init__(self, vocab: dict[str, int]) -> None:
        for token in (ENDOFTEXT, UNK):
            if token not in vocab:
                raise LabError(f"A simple-v2 vocabulary needs {token}; build it with from_text(text).")
        super().__init__(vocab)
        self.special_tokens = {ENDOFTEXT: vocab[ENDOFTEXT], UNK: vocab[UNK]}

    def decode(self, ids: Iterable[int]) -> str:
        """Join the words with spaces, then remove the space before punctuation, ``:`` and ``;`` included (the
        book's V2 decode; V1's keeps those two spaces).

        Example:
            >>> tok = SimpleTokenizerV2.from_text("Note: one; two.")
            >>> tok.decode(tok.encode("Note: one; two."))
            'Note: one; two.'
        """
        text = " ".join(self.int_to_str[i] for i in self.check_ids(ids))
        return BOOK_V2_JOIN_FIX.sub(r"\1", text)

    @classmethod
    def from_text(cls, text: str) -> SimpleTokenizerV2:
        """The V1 vocabulary with ``<|endoftext|>`` and ``<|unk|>`` appended (the book's ``extend``)."""
        # The specials go last even when the text itself contains "<|endoftext|>" between documents.
        words = sorted({w for w, _, _ in book_words(need_text(text, cls.name))} - {ENDOFTEXT, UNK})
        return cls({w: i for i, w in enumerate([*words, ENDOFTEXT, UNK])})

    def _unknown(self, word: str, data: bytes, start: int) -> TokenSpan:
        # The span covers the original word so the UI can show which word became <|unk|>.
        return make_span(self.special_tokens[UNK], data, start, special=True, label=UNK)


class CharTokenizer(Tokenizer):
    """One token per character; the vocabulary is the text's distinct characters, sorted.

    Example:
        >>> tok = CharTokenizer.from_text("hello")
        >>> tok.encode("hole"), tok.n_vocab
        ([1, 3, 2, 0], 4)
    """

    name = "char"

    def __init__(self, chars: Iterable[str]) -> None:
        self.itos = list(chars)
        if not self.itos or len(set(self.itos)) != len(self.itos) or any(len(c) != 1 for c in self.itos):
            raise LabError(
                "The vocabulary must be a list of distinct single characters; build it with from_text(text)."
            )
        self.stoi = {c: i for i, c in enumerate(self.itos)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """Vocabulary = the text's distinct characters, sorted (whitespace included)."""
        if not isinstance(text, str) or not text:
            need_text(text, cls.name)  # raises the usual "pass the text" error
        # Unlike the word tokenizers, a text of only whitespace is fine: its characters are the vocabulary.
        return cls(sorted(set(check_text(text))))

    @property
    def n_vocab(self) -> int:
        return len(self.itos)

    def token_bytes(self, token_id: int) -> bytes:
        return self.itos[self.check_id(token_id)].encode("utf-8")

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.itos[i] for i in self.check_ids(ids))

    def _segment_spans(self, segment: str, offset: int) -> list[TokenSpan]:
        out = []
        for ch in segment:
            if ch not in self.stoi:
                raise LabError(
                    f"The character {ch!r} is not in this tokenizer's vocabulary of {self.n_vocab:,} "
                    "characters; build the vocabulary from a text that contains it."
                )
            data = ch.encode("utf-8")
            out.append(make_span(self.stoi[ch], data, offset))
            offset += len(data)
        return out
