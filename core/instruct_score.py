"""Scores for generated instruction responses (the book's section 7.8 uses an LLM judge; these need none).

Exact match and token F1 follow SQuAD's answer normalisation; :func:`similarity_score` is a character n-gram
F1, a rough heuristic. A reference made only of words the normalisation drops (``"The"``) is compared without
dropping them, and an empty answer never matches a non-empty reference.

Example:
    >>> exact_match("", "the"), exact_match("  ", ""), exact_match("The!", "the")
    (0.0, 0.0, 1.0)
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from core.errors import LabError

SCORE_HELP = {
    "exact_match": "1 when the answer equals the reference after lowercasing and dropping punctuation and the "
                   "articles a/an/the (SQuAD's normalisation), else 0; an empty or whitespace-only answer is 0.",
    "token_f1": "the harmonic mean of precision and recall of the words the answer shares with the reference "
                "(same normalisation), from 0 to 1; an empty answer is 0.",
    "similarity": "a heuristic, not a judge: F1 of the character trigrams of the two normalised texts, from 0 to "
                  "1; it rewards shared wording and spelling, not meaning.",
}


def _plain(text: str) -> str:
    """Lowercase, no punctuation, single spaces."""
    return " ".join("".join(ch for ch in str(text).lower() if ch not in string.punctuation).split())


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lowercase, drop punctuation and the articles a/an/the, squeeze whitespace."""
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", _plain(text)).split())


def _normalized_pair(pred: str, ref: str) -> tuple[str, str]:
    """Both answers normalised; if that empties a non-empty reference (``"The."``), keep the articles, and if
    that still empties it (``"!!"``), compare the lowercased raw texts: an empty answer must not match."""
    p, r = normalize_answer(pred), normalize_answer(ref)
    if r or not str(ref).strip():
        return p, r
    p, r = _plain(pred), _plain(ref)
    return (p, r) if r else (str(pred).strip().lower(), str(ref).strip().lower())


def exact_match(pred: str, ref: str) -> float:
    """1.0 if the answers are equal after :func:`normalize_answer`, else 0.0."""
    if not str(pred).strip():
        return 0.0
    p, r = _normalized_pair(pred, ref)
    return float(p == r)


def token_f1(pred: str, ref: str) -> float:
    """SQuAD's token F1: harmonic mean of precision and recall of shared (normalised) words, in [0, 1].

    Example:
        >>> round(token_f1("The cat sat", "a cat sat down"), 3)
        0.8
    """
    if not str(pred).strip():
        return 0.0
    p, r = (text.split() for text in _normalized_pair(pred, ref))
    if not p or not r:
        return float(p == r)
    same = sum((Counter(p) & Counter(r)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(r)
    return 2 * precision * recall / (precision + recall)


def similarity_score(pred: str, ref: str, n: int = 3) -> float:
    """A HEURISTIC similarity in [0, 1]: F1 of character n-grams of the normalised texts.

    The book scores responses with an LLM judge (Llama 3 via Ollama); without one this rewards answers that
    share wording and spelling with the reference. It does not understand meaning: treat it as a rough guide.
    """
    if not str(pred).strip():
        return 0.0
    a, b = (text.replace(" ", "_") for text in _normalized_pair(pred, ref))
    if len(a) < n or len(b) < n:
        return float(a == b)
    ga = Counter(a[i : i + n] for i in range(len(a) - n + 1))
    gb = Counter(b[i : i + n] for i in range(len(b) - n + 1))
    same = sum((ga & gb).values())
    if same == 0:
        return 0.0
    precision, recall = same / sum(ga.values()), same / sum(gb.values())
    return 2 * precision * recall / (precision + recall)


def score_responses(preds: Sequence[str], refs: Sequence[str]) -> dict[str, float]:
    """Mean ``exact_match``, ``token_f1`` and (heuristic) ``similarity`` over pairs, and their count ``n``."""
    if len(preds) != len(refs):
        raise LabError(f"Got {len(preds)} responses for {len(refs)} references; give one per example.")
    n = len(preds)
    if n == 0:
        return {"exact_match": float("nan"), "token_f1": float("nan"), "similarity": float("nan"), "n": 0}
    return {
        "exact_match": sum(map(exact_match, preds, refs)) / n,
        "token_f1": sum(map(token_f1, preds, refs)) / n,
        "similarity": sum(map(similarity_score, preds, refs)) / n,
        "n": n,
    }


def export_responses_json(entries: Sequence[Mapping[str, Any]], responses: Sequence[str]) -> str:
    """The test records with a ``"model_response"`` key added, as JSON text (the book's file format)."""
    if len(entries) != len(responses):
        raise LabError(f"Got {len(responses)} responses for {len(entries)} entries; give one response each.")
    records = [{**dict(e), "model_response": r} for e, r in zip(entries, responses)]
    return json.dumps(records, indent=4, ensure_ascii=False)
