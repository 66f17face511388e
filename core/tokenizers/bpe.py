"""Train your own byte-level BPE tokenizer, the algorithm behind GPT-2's vocabulary (the book's section 2.5).

Byte-pair encoding starts from the 256 possible bytes, so any text can be encoded. Training repeats one step:
find the most frequent pair of adjacent tokens and give it a new id. Like GPT-2, the text is first cut into
chunks with GPT-2's regular expression, so a merge never crosses a word boundary (" dog" and "." stay apart).
Encoding replays the merges in the order they were learned.

Speed, so the UI can train while you watch: each distinct chunk is stored once with its frequency, and after a
merge only the chunks that contain the merged pair are re-counted (pair counts are updated, never recomputed).

Example:
    >>> tok = train_bpe("low lower lowest " * 20, vocab_size=260)
    >>> [tok.token_bytes(new) for _, new in tok.merges]
    [b'lo', b'low', b' low']
    >>> tok.decode(tok.encode("slowest")) == "slowest"
    True
"""

from __future__ import annotations

import heapq
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import regex

from core.errors import LabError, check_int
from core.tokenizers.base import Tokenizer, TokenSpan, check_text, display_bytes, make_span
from core.tokenizers.gpt2 import ENDOFTEXT, GPT2_PATTERN

MAX_VOCAB_SIZE = 50_000  # GPT-2 size; more merges than this would take minutes in pure Python
_CHUNKS = regex.compile(GPT2_PATTERN)
Pair = tuple[int, int]


def merge_pair(ids: list[int], pair: Pair, new_id: int) -> list[int]:
    """Replace every non-overlapping occurrence of ``pair`` in ``ids`` (left to right) with ``new_id``.

    Example:
        >>> merge_pair([1, 2, 2, 2, 1, 2], (1, 2), 99)
        [99, 2, 2, 99]
    """
    out, i, n = [], 0, len(ids)
    a, b = pair
    while i < n:
        if i + 1 < n and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


class BPETokenizer(Tokenizer):
    """A byte-level BPE tokenizer defined by its merges, usually made by :func:`train_bpe`.

    Args:
        merges: ``((left id, right id), new id)`` in the order learned; new ids run 256, 257, …
        special_tokens: special token strings, given the ids after the last merge (``<|endoftext|>`` = last).
        counts: how often each pair occurred when it was merged (for :meth:`merges_table`).
    """

    def __init__(
        self,
        merges: Sequence[tuple[Pair, int]],
        special_tokens: Iterable[str] = (ENDOFTEXT,),
        counts: Sequence[int] | None = None,
    ) -> None:
        self.merges = [((int(a), int(b)), int(new)) for (a, b), new in merges]
        self.vocab = [bytes([i]) for i in range(256)]  # id → bytes
        for (a, b), new in self.merges:
            if new != len(self.vocab) or not (0 <= a < new and 0 <= b < new):
                raise LabError(
                    f"Merge ({a}, {b}) → {new} is out of order; merges must create ids 256, 257, … in turn."
                )
            self.vocab.append(self.vocab[a] + self.vocab[b])
        # A lower new id means learned earlier, which means applied first when encoding.
        self.ranks = {pair: new for pair, new in self.merges}
        self.special_tokens = {s: len(self.vocab) + k for k, s in enumerate(dict.fromkeys(special_tokens))}
        self.merge_counts = list(counts) if counts is not None else []
        self.requested_vocab_size = self.n_vocab
        self.stopped_early = False  # set by train_bpe when the text ran out of pairs
        self.train_seconds = 0.0
        self.name = f"bpe-{self.n_vocab}"
        self._cache: dict[str, list[int]] = {}

    @property
    def n_vocab(self) -> int:
        return len(self.vocab) + len(self.special_tokens)

    def token_bytes(self, token_id: int) -> bytes:
        token_id = self.check_id(token_id)
        if token_id < len(self.vocab):
            return self.vocab[token_id]
        return next(s for s, i in self.special_tokens.items() if i == token_id).encode("utf-8")

    def encode_chunk(self, chunk: str) -> list[int]:
        """Ids of one pre-tokenized chunk: start from its bytes, apply the earliest merge until none fits."""
        if chunk in self._cache:
            return self._cache[chunk]
        ids = list(chunk.encode("utf-8"))
        while len(ids) >= 2:
            pair = min(zip(ids, ids[1:]), key=lambda p: self.ranks.get(p, 1 << 62))
            if pair not in self.ranks:
                break  # no adjacent pair was ever merged
            ids = merge_pair(ids, pair, self.ranks[pair])
        if len(self._cache) > 100_000:  # bound memory on huge, varied inputs
            self._cache.clear()
        self._cache[chunk] = ids
        return ids

    def _segment_ids(self, segment: str) -> list[int]:
        return [i for chunk in _CHUNKS.findall(segment) for i in self.encode_chunk(chunk)]

    def _segment_spans(self, segment: str, offset: int) -> list[TokenSpan]:
        out = []
        for token_id in self._segment_ids(segment):
            data = self.vocab[token_id]
            out.append(make_span(token_id, data, offset))
            offset += len(data)
        return out

    def merges_table(self) -> list[dict[str, Any]]:
        """One row per merge, in the order learned, for a merges table in the UI.

        Returns:
            Dicts with ``rank`` (1 = learned first), ``id`` (the new token), ``left``, ``right``, ``merged``
            (display labels) and ``count`` (how often the pair occurred when merged; None if unknown).
        """
        counts = self.merge_counts + [None] * (len(self.merges) - len(self.merge_counts))
        return [
            {
                "rank": rank,
                "id": new,
                "left": display_bytes(self.vocab[a]),
                "right": display_bytes(self.vocab[b]),
                "merged": display_bytes(self.vocab[new]),
                "count": count,
            }
            for rank, (((a, b), new), count) in enumerate(zip(self.merges, counts), start=1)
        ]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly description (merges, counts, special tokens); :meth:`from_dict` rebuilds it."""
        return {
            "merges": [[a, b] for (a, b), _ in self.merges],
            "counts": list(self.merge_counts),
            "special_tokens": list(self.special_tokens),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BPETokenizer:
        try:
            merges = [((a, b), 256 + k) for k, (a, b) in enumerate(data["merges"])]
            return cls(merges, data.get("special_tokens", ()), data.get("counts"))
        except (KeyError, TypeError, ValueError) as err:
            if isinstance(err, LabError):
                raise
            raise LabError("This is not a saved BPE tokenizer; pass the dict to_dict() returned.") from None


def _check_vocab_size(vocab_size: Any, minimum: int) -> int:
    return check_int(vocab_size, "vocab_size", low=minimum, high=MAX_VOCAB_SIZE,
                     fix=f"it needs at least {minimum} ids (256 bytes + special tokens); try 512")


def _distinct_words(text: str, endoftext: bool) -> tuple[list[list[int]], list[int]]:
    """Each distinct regex chunk once (as bytes) with its frequency: "the" may occur 1,000 times but is one word."""
    docs = text.split(ENDOFTEXT) if endoftext else [text]
    freq = Counter(chunk for doc in docs for chunk in _CHUNKS.findall(doc))
    return [list(chunk.encode("utf-8")) for chunk in freq], list(freq.values())


def _pair_index(words: list[list[int]], weights: list[int]) -> tuple[dict, dict, list]:
    """Pair → occurrences in the whole text, pair → indices of the words that contain it, and a heap of pairs.

    The heap is a max-heap through negated counts; ordering by (−count, pair) breaks ties towards the smallest
    pair. Entries go stale when a count changes; a stale entry is skipped when it reaches the top.
    """
    counts: dict[Pair, int] = defaultdict(int)
    where: dict[Pair, set[int]] = defaultdict(set)
    for w, (ids, f) in enumerate(zip(words, weights)):
        for pair in zip(ids, ids[1:]):
            counts[pair] += f
            where[pair].add(w)
    heap = [(-c, pair) for pair, c in counts.items()]
    heapq.heapify(heap)
    return counts, where, heap


def _merge_everywhere(pair: Pair, new_id: int, words: list[list[int]], weights: list[int],
                      where: dict[Pair, set[int]]) -> dict[Pair, int]:
    """Merge ``pair`` in every word that holds it (in place); return how each pair's count changes."""
    delta: dict[Pair, int] = defaultdict(int)
    for w in where.pop(pair):
        old = words[w]
        new = merge_pair(old, pair, new_id)
        if len(new) == len(old):
            continue  # a stale index: this word no longer holds the pair
        f = weights[w]
        for p in zip(old, old[1:]):
            delta[p] -= f
        for p in zip(new, new[1:]):
            delta[p] += f
            where[p].add(w)
        words[w] = new
    return delta


def _apply_counts(delta: dict[Pair, int], counts: dict[Pair, int], heap: list[tuple[int, Pair]]) -> None:
    """Add ``delta`` to ``counts``; push the changed counts onto the heap, forget pairs that no longer occur."""
    for p, d in delta.items():
        if d:
            counts[p] += d
            if counts[p] > 0:
                heapq.heappush(heap, (-counts[p], p))
            else:
                del counts[p]


def train_bpe(
    text: str,
    vocab_size: int,
    progress: Callable[[int, int], None] | None = None,
    *,
    endoftext: bool = True,
) -> BPETokenizer:
    """Learn ``vocab_size - 256 - specials`` merges from ``text`` (minbpe's ``RegexTokenizer.train``).

    Args:
        text: the training text. ``<|endoftext|>`` in it separates documents and is never merged into words.
        vocab_size: total ids, special tokens included (the result's n_vocab): 257 … 50,000 with
            ``endoftext``, 256 … 50,000 without.
        progress: called as ``progress(merges_done, merges_wanted)`` about 100 times, and once at the end.
        endoftext: add ``<|endoftext|>`` as the last id.

    Returns:
        A :class:`BPETokenizer`. If every chunk is a single token before ``vocab_size`` is reached, training
        stops early: ``stopped_early`` is True and ``n_vocab`` is smaller than ``requested_vocab_size``.
        Ties between equally frequent pairs go to the pair with the smallest ids: training is deterministic.

    Example:
        >>> tok = train_bpe("aaab" * 10, vocab_size=258, endoftext=False)
        >>> tok.merges, tok.merge_counts
        ([((97, 97), 256), ((97, 98), 257)], [20, 10])
    """
    if not isinstance(text, str) or not text:
        raise LabError("BPE training needs a non-empty text; pass the text to learn the merges from.")
    text = check_text(text)
    specials = (ENDOFTEXT,) if endoftext else ()
    size = _check_vocab_size(vocab_size, 256 + len(specials))
    n_merges = size - 256 - len(specials)
    start, every = time.perf_counter(), max(1, n_merges // 100)
    words, weights = _distinct_words(text, endoftext)
    counts, where, heap = _pair_index(words, weights)
    merges: list[tuple[Pair, int]] = []
    merge_counts: list[int] = []
    while len(merges) < n_merges:
        while heap and counts.get(heap[0][1], 0) != -heap[0][0]:
            heapq.heappop(heap)
        if not heap:
            break  # every chunk is one token: nothing left to merge
        neg, pair = heapq.heappop(heap)
        new_id = 256 + len(merges)
        merges.append((pair, new_id))
        merge_counts.append(-neg)
        _apply_counts(_merge_everywhere(pair, new_id, words, weights, where), counts, heap)
        counts.pop(pair, None)
        if progress is not None and len(merges) % every == 0:
            progress(len(merges), n_merges)

    tok = BPETokenizer(merges, specials, merge_counts)
    tok.requested_vocab_size = size
    tok.stopped_early = len(merges) < n_merges
    tok.train_seconds = time.perf_counter() - start
    if progress is not None:
        progress(len(merges), n_merges)
    return tok
