"""GPT-2's byte-pair encoding, built offline from ``assets/gpt2.tiktoken`` (the book's section 2.5).

GPT-2 cuts text into chunks with a regular expression (words with their leading space, numbers, punctuation,
whitespace), turns each chunk into UTF-8 bytes and merges byte pairs by rank: 50,000 merges on top of the 256
single bytes, plus ``<|endoftext|>`` = 50256, for 50,257 ids. tiktoken does the merging (in Rust); we hand it
the ranks from a local file, so nothing is ever downloaded.

Example:
    >>> tok = GPT2Tokenizer()
    >>> tok.encode("Hello, world"), tok.n_vocab
    ([15496, 11, 995], 50257)
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

import tiktoken

from core.errors import LabError
from core.paths import assets_dir
from core.tokenizers.base import (
    Allowed,
    Disallowed,
    Tokenizer,
    TokenSpan,
    check_disallowed,
    check_text,
    make_span,
)

# GPT-2's pre-tokenizer: contractions; optional space + letters; optional space + digits; optional space +
# other symbols; whitespace not followed by a non-space (so " the" keeps its space); any other whitespace.
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
ENDOFTEXT = "<|endoftext|>"
GPT2_SPECIAL_TOKENS = {ENDOFTEXT: 50256}
GPT2_N_VOCAB = 50257
GPT2_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
ENV_VAR = "LLMLAB_GPT2_TIKTOKEN"
DEFAULT_PATH = assets_dir() / "gpt2.tiktoken"  # the checkout's assets/, or the installed copy (core.paths)


def gpt2_ranks_path() -> Path:
    """Where the ranks are read from: ``$LLMLAB_GPT2_TIKTOKEN`` when set, else ``assets/gpt2.tiktoken``."""
    return Path(os.environ.get(ENV_VAR) or DEFAULT_PATH)


def read_ranks(path: Path) -> dict[bytes, int]:
    """Parse a ``.tiktoken`` file: one ``base64(token bytes) rank`` pair per line, checked by sha256.

    This is the format ``tiktoken.load.load_tiktoken_bpe`` reads. We parse it ourselves because that function
    also copies the file into a cache folder under /tmp, which a local, read-only asset does not need.
    """
    try:
        data = path.read_bytes()
    except OSError:
        raise LabError(
            f"GPT-2's token ranks were not found at {path}; restore assets/gpt2.tiktoken or set {ENV_VAR}."
        ) from None
    if hashlib.sha256(data).hexdigest() != GPT2_SHA256:
        raise LabError(
            f"The file {path} is not GPT-2's token ranks (its sha256 differs); restore assets/gpt2.tiktoken."
        )
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


@functools.lru_cache(maxsize=4)
def _load_encoding(path: str) -> tiktoken.Encoding:
    return tiktoken.Encoding(
        name="gpt2",
        pat_str=GPT2_PATTERN,
        mergeable_ranks=read_ranks(Path(path)),
        special_tokens=GPT2_SPECIAL_TOKENS,
        explicit_n_vocab=GPT2_N_VOCAB,
    )


def load_gpt2_encoding() -> tiktoken.Encoding:
    """The ``tiktoken.Encoding`` for GPT-2, built from the local ranks file (cached per path; no network)."""
    return _load_encoding(str(gpt2_ranks_path()))


class GPT2Tokenizer(Tokenizer):
    """GPT-2's tokenizer (the book's ``tiktoken.get_encoding("gpt2")``), plus spans for display.

    The underlying ``tiktoken.Encoding`` is ``.encoding``; ``encode`` and ``decode`` call it directly.
    """

    name = "gpt2"
    special_tokens = GPT2_SPECIAL_TOKENS

    def __init__(self, encoding: tiktoken.Encoding | None = None) -> None:
        self.encoding = encoding if encoding is not None else load_gpt2_encoding()

    @property
    def n_vocab(self) -> int:
        return self.encoding.n_vocab

    def token_bytes(self, token_id: int) -> bytes:
        return self.encoding.decode_single_token_bytes(self.check_id(token_id))

    def encode(
        self, text: str, allowed_special: Allowed = None, disallowed_special: Disallowed = "all"
    ) -> list[int]:
        """Text → ids, exactly as tiktoken's ``Encoding.encode`` (which does the work)."""
        text = check_text(text)
        allowed, disallowed = self.resolve_special(allowed_special, disallowed_special)
        check_disallowed(text, disallowed)  # tiktoken would raise too, with a longer, less direct message
        return self.encoding.encode(text, allowed_special=allowed, disallowed_special=disallowed)

    def decode(self, ids: Iterable[int]) -> str:
        return self.encoding.decode(self.check_ids(ids))

    def _segment_spans(self, segment: str, offset: int) -> list[TokenSpan]:
        out = []
        for token_id in self.encoding.encode_ordinary(segment):
            data = self.encoding.decode_single_token_bytes(token_id)
            out.append(make_span(token_id, data, offset))
            offset += len(data)
        return out
