"""The Attention page's prose: the tab title of each of the book's four stages, and a heading and a sentence for
every intermediate the page shows (the numbers come from :func:`core.attention_steps.teaching_steps`)."""

from __future__ import annotations

#: The four teaching stages of :func:`teaching_steps`, in order, with their tab titles.
STAGES: dict[str, str] = {
    "simplified": "1 · Simplified",
    "qkv": "2 · Query, key, value",
    "causal": "3 · Causal + dropout",
    "multihead": "4 · Multi-head",
}

#: One sentence under each intermediate, per stage (``"*"`` applies to every stage without its own sentence).
STEP_NOTES: dict[str, dict[str, str]] = {
    "simplified": {
        "scores": "Each cell is the dot product of the row token's embedding with the column token's: "
        "the more similar two vectors, the larger the score.",
        "weights": "Softmax turns each row of scores into attention weights: all positive, each row summing "
        "to 1.",
        "context": "Each token's context vector is the weighted sum of all embeddings, using its row of "
        "weights.",
    },
    "causal": {
        "weights": "Softmax over the allowed positions only: the first token can attend to nothing but "
        "itself.",
        "context": "Context = dropped weights @ values: each token mixes the values of itself and earlier "
        "tokens.",
    },
    "multihead": {
        "weights": "Every head has its own query, key and value projections, so each one learns its own "
        "pattern (head 1 here is exactly the single head of the previous tab); rows still sum to 1.",
        "context": "The heads' context vectors side by side: H heads × D features each = one row per token.",
        "head_context": "Each head's own context vectors: its weights @ its values, D features per token.",
        "output": "Output = concatenated context @ W_out: the output projection mixes what the heads found.",
    },
    "*": {
        "queries": "Queries = x @ W_query: what each token is looking for.",
        "keys": "Keys = x @ W_key: what each token offers to be matched against.",
        "values": "Values = x @ W_value: the content a token passes on when others attend to it.",
        "scores": "Scores = queries @ keysᵀ: how well each token's query (row) matches every token's key "
        "(column).",
        "scaled": "Dividing by √d_k keeps the scores small, so softmax does not saturate into a single 1.",
        "masked": "Scores above the diagonal belong to future tokens: they become −∞, so softmax gives them "
        "weight 0.",
        "weights": "Softmax of each row: the attention weights, all positive, each row summing to 1.",
        "dropped": "Dropout (training only) zeroes each weight with probability p and scales the survivors "
        "by 1/(1−p), so rows no longer sum to exactly 1 but keep the same expected value.",
        "context": "Context = weights @ values: each token's new vector mixes the values it attends to.",
    },
}


#: A short heading per intermediate (``"*"`` for all stages, overridden per stage).
STEP_TITLES: dict[str, dict[str, str]] = {
    "simplified": {"scores": "Scores = x · xᵀ", "context": "Context = weights · x"},
    "multihead": {"weights": "Attention weights of every head", "head_context": "Context of every head",
                  "context": "Heads concatenated"},
    "*": {
        "queries": "Queries Q = x · W_query", "keys": "Keys K = x · W_key",
        "values": "Values V = x · W_value",
        "scores": "Scores = Q · Kᵀ", "scaled": "Scaled = scores ÷ √d_k", "masked": "Masked: future → −∞",
        "weights": "Weights = softmax(row)", "dropped": "After dropout", "context": "Context = weights · V",
        "output": "Output = context · W_out",
    },
}

#: The intermediates each stage shows (the multi-head stage has more, e.g. per-head queries, kept for tests).
DISPLAY_STEPS: dict[str, tuple[str, ...]] = {
    "simplified": ("scores", "weights", "context"),
    "qkv": ("queries", "keys", "values", "scores", "scaled", "weights", "context"),
    "causal": ("scores", "scaled", "masked", "weights", "dropped", "context"),
    "multihead": ("weights", "context", "output"),
}


def step_title(stage: str, step: str) -> str:
    """The heading of ``step`` within ``stage``, e.g. ``"Scores = Q · Kᵀ"``."""
    return STEP_TITLES.get(stage, {}).get(step) or STEP_TITLES["*"].get(step, step)


def step_note(stage: str, step: str) -> str:
    """The sentence explaining ``step`` (``"scores"``, ``"weights"`` …) within ``stage`` (a key of STAGES)."""
    return STEP_NOTES.get(stage, {}).get(step) or STEP_NOTES["*"].get(step, "")
