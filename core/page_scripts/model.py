"""Scripts for the model pages: Embeddings (book §2.7–2.8), Attention (chapter 3) and Architecture (chapter 4).

Each writer turns the page's settings into a settings block (plain literals) followed by fixed code: the code
never contains a value the visitor typed, only the names set at the top.

Example:
    >>> from core.config import PRESETS
    >>> cfg = {k: PRESETS["tiny"]["config"][k] for k in BOOK_CONFIG_KEYS}
    >>> title, body = architecture_script({"config": cfg, "tie": True, "batch": 1, "tokens": 4})
    >>> "GPTModel(CONFIG)" in body, title
    (True, 'Architecture: parameters, FLOPs, memory and one forward pass (book ch. 4)')
"""

from __future__ import annotations

from typing import Any

from core.config import GPTConfig
from core.errors import LabError, check_choice, check_int, check_number
from core.model_spec import KINDS
from core.page_scripts import lit, need

SCOPES = {"vocabulary": "the whole vocabulary", "corpus": "the tokens of the built-in stories"}
BOOK_CONFIG_KEYS = ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers", "drop_rate", "qkv_bias")


def _spec(settings: dict[str, Any]) -> dict[str, Any]:
    """The active model's spec, checked: a plain dict whose kind :func:`core.model_spec.build_model` knows."""
    spec = need(settings, "spec")[0]
    if not isinstance(spec, dict) or spec.get("kind") not in KINDS:
        raise LabError(f"The model spec must be a dict whose kind is one of {', '.join(KINDS)}; got {spec!r}.")
    return spec


MODEL_LINES = """
from core.model_spec import build_model, spec_tokenizer

# §4.1's GPTModel, the one the page's sidebar picked (a preset is the same seeded random init)
model = build_model(SPEC)
tokenizer = spec_tokenizer(SPEC, model.cfg.vocab_size)  # the tokenizer the model's ids mean (GPT-2's here)
"""

# --- Embeddings ----------------------------------------------------------------------------------------------

EMBEDDING_SIZES = """
import torch

cfg = model.cfg
# §2.7 the token-embedding layer: one row of emb_dim numbers per vocabulary id (an nn.Embedding)
print(f"Token embedding tok_emb (vocab × emb_dim): {cfg.vocab_size:,} × {cfg.emb_dim}")
# §2.8 the position-embedding layer: one row per position of the context
print(f"Position embedding pos_emb (context × emb_dim): {cfg.context_length:,} × {cfg.emb_dim}")
print(f"Embedding parameters: {model.tok_emb.weight.numel() + model.pos_emb.weight.numel():,}")
"""

EMBEDDING_LOOKUP = """
from core.book import text_to_token_ids

# §2.8 the lookup: ids pick rows of tok_emb, positions 0 … T−1 pick rows of pos_emb, and the two are added
ids = text_to_token_ids(SENTENCE, tokenizer)[:, : cfg.context_length]  # (1, T): no more positions than that
with torch.no_grad():
    token_embeddings = model.tok_emb(ids)  # (1, T, emb_dim)
    position_embeddings = model.pos_emb(torch.arange(ids.shape[1]))  # (T, emb_dim)
    input_embeddings = token_embeddings + position_embeddings  # (1, T, emb_dim): broadcast over the batch
print(f"Input embeddings shape: {tuple(input_embeddings.shape)}")
for name, matrix in (("Token embeddings [0]", token_embeddings[0]), ("Position embeddings", position_embeddings),
                     ("Input embeddings [0]", input_embeddings[0])):
    for i, row in enumerate(matrix[:4, :4].tolist()):  # the page's preview: first 4 rows and columns
        print(f"{name} row {i}: " + ", ".join(f"{v:.3f}" for v in row))
"""

EMBEDDING_NEIGHBOURS = """
from core.embeddings import nearest_neighbours
from core.tokenizers import display_bytes

# §2.7 the rows of tok_emb that point most nearly the same way as QUERY's row (cosine similarity); not a book
# listing, so core's function ranks them (at random init the top ones are chance)
candidates = None
if SEARCH_AMONG == "corpus":
    from core.datasets import load_corpus

    candidates = tokenizer.encode(load_corpus("builtin-corpus"), allowed_special={"<|endoftext|>"})
print(f"Neighbours of: {display_bytes(tokenizer.token_bytes(QUERY))} (id {QUERY})")
for rank, (i, sim) in enumerate(nearest_neighbours(model.tok_emb, QUERY, k=10, candidates=candidates), start=1):
    print(f"Neighbour {rank}: {display_bytes(tokenizer.token_bytes(i))} (id {i}), cosine similarity {sim:.4f}")
"""


def embeddings_script(s: dict[str, Any]) -> tuple[str, str]:
    """Settings: ``spec`` (the active model), ``sentence``, ``query`` (a token id), ``scope`` ("vocabulary" or
    "corpus": where the neighbours are searched)."""
    spec = _spec(s)
    sentence, query, scope = need(s, "sentence", "query", "scope")
    if not isinstance(sentence, str):
        raise LabError(f"The sentence must be text, got {type(sentence).__name__}.")
    query = check_int(query, "query", low=0)
    scope = check_choice(scope, "scope", SCOPES)
    head = (f"SPEC = {lit(spec)}\nSENTENCE = {lit(sentence)}\nQUERY = {query}  # the token whose neighbours "
            f"are listed\nSEARCH_AMONG = {lit(scope)}  # {SCOPES[scope]}\n")
    lookup = EMBEDDING_LOOKUP if sentence.strip() else "\n# The sentence is empty: nothing to look up.\n"
    body = head + MODEL_LINES + EMBEDDING_SIZES + lookup + EMBEDDING_NEIGHBOURS
    return "Embeddings: token and position vectors of the active model (book §2.7–2.8)", body


# --- Attention -----------------------------------------------------------------------------------------------

ATTENTION_SHOW = '''
import math

import torch

from core.book import MultiHeadAttention, SelfAttention_v1

torch.set_grad_enabled(False)  # only looking: no gradients


def show(label, matrix):
    """Print a matrix as the page's heatmaps write their cells: two decimals, −∞ where the mask hides a score."""
    for i, row in enumerate(matrix.tolist(), start=1):
        print(f"{label} row {i}: " + ", ".join("−∞" if v == float("-inf") else f"{v:.2f}" for v in row))

'''

ATTENTION_BOOK_INPUTS = """
from core.attention import book_example_inputs

# §3.3 the inputs: the book's six words "Your journey starts with one step" with their 3-D embeddings
words, inputs = book_example_inputs()  # inputs (T, 3)
D_IN = 3
"""

ATTENTION_OWN_INPUTS = """
from core.attention_steps import sentence_inputs

# §3.3 the inputs: the page gives every distinct word a fixed random D_IN-D vector (uniform in [0, 1), seed 123)
inp = sentence_inputs(TEXT, d_in=D_IN)
words, inputs = inp.words, inp.x  # inputs (T, D_IN)
"""

ATTENTION_STAGES_1_2 = """
T = inputs.shape[0]
print("Words:", " ".join(words))

# §3.3.1 attention scores: the dot product of every input with every input
scores = inputs @ inputs.T  # (T, T)
# §3.3.1 attention weights: softmax makes each row positive and sum to 1
weights = torch.softmax(scores, dim=-1)
# §3.3.2 context vectors: row i mixes all the inputs with token i's weights
context = weights @ inputs  # (T, D_IN)
for step, m in (("scores", scores), ("weights", weights), ("context", context)):
    show(f"§3.3 {step}", m)

# §3.4.1 trainable projections: SelfAttention_v1 draws W_query, W_key, W_value with torch.rand, so after
# torch.manual_seed(SEED) it holds the page's matrices (seed 123 on the book's words: the book's numbers)
torch.manual_seed(SEED)
sa_v1 = SelfAttention_v1(D_IN, D_OUT)
W_query, W_key, W_value = sa_v1.W_query.detach(), sa_v1.W_key.detach(), sa_v1.W_value.detach()
queries, keys, values = inputs @ W_query, inputs @ W_key, inputs @ W_value  # (T, D_OUT) each
scores = queries @ keys.T  # §3.4.1 every query against every key
scaled = scores / math.sqrt(keys.shape[-1])  # §3.4.1 divided by √d_k, so softmax does not saturate
weights = torch.softmax(scaled, dim=-1)
context = weights @ values
for step, m in (("queries", queries), ("keys", keys), ("values", values), ("scores", scores),
                ("scaled", scaled), ("weights", weights), ("context", context)):
    show(f"§3.4 {step}", m)
print("SelfAttention_v1 gives the same context:", "yes" if torch.allclose(sa_v1(inputs), context) else "no")
"""

ATTENTION_STAGES_3_4 = """
# §3.5.1 the causal mask: a token may not look at the tokens after it (their scores become −∞, weight 0)
future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
masked = scaled.masked_fill(future, float("-inf"))
weights = torch.softmax(masked, dim=-1)
# §3.5.2 dropout on the weights (training only), as nn.Dropout(DROPOUT) does it: zero each weight with
# probability DROPOUT and scale the rest by 1 / (1 − DROPOUT); the pattern comes from a generator seeded with SEED
dropped = weights
if DROPOUT > 0:
    keep = torch.rand((T, T), generator=torch.Generator().manual_seed(SEED)) >= DROPOUT
    dropped = weights * keep / (1.0 - DROPOUT)
context = dropped @ values
for step, m in (("scores", scores), ("scaled", scaled), ("masked", masked), ("weights", weights),
                ("dropped", dropped), ("context", context)):
    show(f"§3.5 {step}", m)

# §3.6.2 multi-head attention: N_HEADS heads of D_OUT features, one projection per kind split into heads.
# Head 1 keeps the matrices above; head h draws its own after torch.manual_seed(SEED + h − 1).
mats = [(W_query, W_key, W_value)]
for h in range(1, N_HEADS):
    torch.manual_seed(SEED + h)
    sa = SelfAttention_v1(D_IN, D_OUT)
    mats.append((sa.W_query.detach(), sa.W_key.detach(), sa.W_value.detach()))
Wq, Wk, Wv = (torch.cat([m[i] for m in mats], dim=1) for i in range(3))  # (D_IN, N_HEADS · D_OUT) each
width = N_HEADS * D_OUT


def heads(z):  # (T, N_HEADS · D_OUT) → (N_HEADS, T, D_OUT): each head its own D_OUT consecutive features
    return z.view(T, N_HEADS, D_OUT).transpose(0, 1)


q, k, v = heads(inputs @ Wq), heads(inputs @ Wk), heads(inputs @ Wv)
scaled = (q @ k.transpose(1, 2)) / math.sqrt(D_OUT)  # (N_HEADS, T, T)
weights = torch.softmax(scaled.masked_fill(future, float("-inf")), dim=-1)  # no dropout: inference
context = (weights @ v).transpose(0, 1).reshape(T, width)  # the heads side by side, (T, width)
bound = 1 / math.sqrt(width)  # the output projection: nn.Linear's init range, drawn with seed SEED + 1000
W_out = torch.rand(width, width, generator=torch.Generator().manual_seed(SEED + 1000)) * 2 * bound - bound
output = context @ W_out  # (T, width)
for h in range(N_HEADS):
    show(f"§3.6 head {h + 1} weights", weights[h])
show("§3.6 context", context)
show("§3.6 output", output)

# the book's MultiHeadAttention class with the same matrices (nn.Linear stores them transposed) agrees
mha = MultiHeadAttention(D_IN, width, T, 0.0, N_HEADS)
for linear, w in ((mha.W_query, Wq), (mha.W_key, Wk), (mha.W_value, Wv), (mha.out_proj, W_out)):
    linear.weight.copy_(w.T)
mha.out_proj.bias.zero_()
same = torch.allclose(mha(inputs.unsqueeze(0))[0], output, atol=1e-6)
print("The book's MultiHeadAttention gives the same output:", "yes" if same else "no")
"""

ATTENTION_MODEL = """
# Part 2, inside the active model: §3.6's attention in every block of §4's GPTModel. The book's model returns
# logits only, so core's model_attention asks it for each layer's weights too (dropout off).
from core.attention_steps import model_attention

att = model_attention(model, tokenizer, MODEL_TEXT)  # att.weights: (layers, heads, T, T)
n_layers, n_heads = att.weights.shape[:2]
if LAYER >= n_layers or HEAD >= n_heads:
    raise SystemExit(f"This model has {n_layers} layers of {n_heads} heads; pick a layer and head within them.")
print(f"Model tokens shown: {len(att.tokens)}")
print(f"Heatmap: layer {LAYER + 1}, head {HEAD + 1}")
for h in range(n_heads):  # the page's grid: every head of the chosen layer
    show(f"Layer {LAYER + 1}, head {h + 1}", att.weights[LAYER, h])
"""


def _attention_settings(s: dict[str, Any]) -> str:
    """The settings block of the Attention script, each value checked."""
    source, d_in, d_out, n_heads, dropout, seed, text, layer, head = need(
        s, "source", "d_in", "d_out", "n_heads", "dropout", "seed", "model_text", "layer", "head")
    check_choice(source, "source", ("book", "text"))
    sizes = {name: check_int(value, name, low=1, high=64) for name, value in
             (("d_in", d_in), ("d_out", d_out), ("n_heads", n_heads))}  # fmt: skip
    dropout = check_number(dropout, "dropout", low=0, high=1, high_open=True)
    if not isinstance(text, str):
        raise LabError(f"The model's sentence must be text, got {type(text).__name__}.")
    lines = [f"SPEC = {lit(_spec(s))}\n"]
    if source == "text":
        sentence = need(s, "text")[0]
        if not isinstance(sentence, str):
            raise LabError(f"The sentence must be text, got {type(sentence).__name__}.")
        lines.append(f"TEXT = {lit(sentence)}  # Part 1's own sentence\nD_IN = {sizes['d_in']}\n")
    lines.append(f"D_OUT, N_HEADS = {sizes['d_out']}, {sizes['n_heads']}  # every head has D_OUT features\n"
                 f"DROPOUT, SEED = {lit(dropout)}, {check_int(seed, 'seed', low=0)}\n"
                 f"MODEL_TEXT = {lit(text)}  # Part 2's sentence\n"
                 f"LAYER, HEAD = {check_int(layer, 'layer', low=0)}, {check_int(head, 'head', low=0)}  # from 0\n")
    return "".join(lines)


def attention_script(s: dict[str, Any]) -> tuple[str, str]:
    """Settings: ``source`` ("book" for the book's six words, "text" for ``text``), ``d_in`` (own text only),
    ``d_out``, ``n_heads``, ``dropout``, ``seed``; Part 2: ``spec``, ``model_text``, ``layer``, ``head`` (0-based)."""
    settings = _attention_settings(s)
    inputs = ATTENTION_OWN_INPUTS if s["source"] == "text" else ATTENTION_BOOK_INPUTS
    body = (settings + ATTENTION_SHOW + "\n# --- Part 1: the book's chapter 3, step by step\n" + inputs
            + ATTENTION_STAGES_1_2 + ATTENTION_STAGES_3_4 + MODEL_LINES + ATTENTION_MODEL)
    return "Attention: chapter 3 step by step, then inside the active model (book ch. 3)", body


# --- Architecture --------------------------------------------------------------------------------------------

ARCHITECTURE_CODE = '''
import torch

from core.book import GPTModel
from core.config import GPTConfig
from core.formatting import format_bytes as binary
from core.formatting import format_si as si
from core.stats import flops_per_token


# §4.6 the whole model, built on PyTorch's meta device: every tensor has its shape but no storage, so even
# GPT-2 XL costs no memory and no time
with torch.device("meta"):
    model = GPTModel(CONFIG).eval()

# §4.6 counting the parameters: every weight and bias of every layer, with the output head's own matrix
untied = sum(p.numel() for p in model.parameters())
# §4.6 weight tying: GPT-2 reuses the token embedding as its output head, so the head's V × C matrix goes
tied = untied - model.out_head.weight.numel()
print(f"Parameters, untied: {untied:,}")
print(f"Parameters, tied: {tied:,}")
# not a book listing: ≈ 2 FLOPs per weight per token plus attention over the full context (core.stats)
flops = flops_per_token(GPTConfig.from_dict(CONFIG))
print(f"Forward FLOPs / token: {si(flops['forward'], 'FLOP')}")
print(f"Training FLOPs / token: {si(flops['training'], 'FLOP')}")


def count(modules):
    return sum(p.numel() for m in modules for p in m.parameters())


# §4.6 where the parameters are, each component summed over the blocks
blocks = list(model.trf_blocks)
parts = {
    "Token embedding": count([model.tok_emb]),
    "Positional embedding": count([model.pos_emb]),
    "Attention Q/K/V": count([lin for b in blocks for lin in (b.att.W_query, b.att.W_key, b.att.W_value)]),
    "Attention output projection": count([b.att.out_proj for b in blocks]),
    "Feed-forward (2 linear layers)": count([b.ff for b in blocks]),
    "LayerNorms in blocks (2 each)": count([n for b in blocks for n in (b.norm1, b.norm2)]),
    "Final LayerNorm": count([model.final_norm]),
    "Output head (tied to token embedding)" if TIE else "Output head": 0 if TIE else count([model.out_head]),
}
for name, n in parts.items():
    print(f"{name}: {n:,}")

# memory: the weights alone, and training with AdamW (weights + gradients + two fp32 moments per parameter)
n = tied if TIE else untied
for dtype, size in (("fp32", 4), ("bf16", 2)):
    print(f"Weights only (inference), {dtype}: {binary(n * size)}")
    print(f"Training with AdamW, {dtype}: {binary(n * size * 2 + n * 4 * 2)}")

# §4.6 one forward pass (shapes only, on the meta device): (batch, tokens) ids in, (batch, tokens, vocab) out
idx = torch.zeros(BATCH, TOKENS, dtype=torch.long, device="meta")
with torch.no_grad():
    logits = model(idx)
print(f"Input shape: {tuple(idx.shape)}")
print(f"Output shape: {tuple(logits.shape)}")
'''


def architecture_script(s: dict[str, Any]) -> tuple[str, str]:
    """Settings: ``config`` (the book's GPT_CONFIG_124M keys), ``tie`` (output head tied to tok_emb), ``batch``
    and ``tokens`` (the traced input's shape; ``tokens`` at most the context length)."""
    config, tie, batch, tokens = need(s, "config", "tie", "batch", "tokens")
    if not isinstance(config, dict) or set(config) != set(BOOK_CONFIG_KEYS):
        raise LabError(f"The configuration must be a dict with exactly the keys {', '.join(BOOK_CONFIG_KEYS)}.")
    if not isinstance(tie, bool):
        raise LabError(f"The tie setting must be True or False, got {tie!r}.")
    cfg = GPTConfig(**config, tie_weights=tie)  # LabError for sizes that do not fit together
    batch = check_int(batch, "batch", low=1)
    tokens = check_int(tokens, "tokens", low=1, high=cfg.context_length,
                       fix="the traced input can be at most the context length")
    head = (f"CONFIG = {lit({k: config[k] for k in BOOK_CONFIG_KEYS})}  # the book's GPT_CONFIG_124M keys\n"
            f"TIE = {tie}  # output head tied to the token embedding (GPT-2 as shipped)\n"
            f"BATCH, TOKENS = {batch}, {tokens}  # the traced input\n")
    return "Architecture: parameters, FLOPs, memory and one forward pass (book ch. 4)", head + ARCHITECTURE_CODE


SCRIPTS = {"embeddings": embeddings_script, "attention": attention_script, "architecture": architecture_script}
