"""Training-step throughput: our GPTModel vs transformers' GPT2LMHeadModel, measured in one run, alternating.

Three contestants share one plain loop (forward → cross-entropy → backward → AdamW step):

- ``peer``:  ``transformers.GPT2LMHeadModel`` with SDPA attention, fp32, ``torch.optim.AdamW`` defaults
- ``ours``:  ``core.model.GPTModel`` with the same configuration (qkv biases, tied weights), same fp32 loop
- ``ours+``: the project's own training step (``core.train.make_train_step``): whatever the device offers
  (bf16 autocast where supported, fused AdamW)

Rounds alternate between contestants so drifting machine load hits all of them alike; the best-of-rounds
tokens/s is reported with ratios against the peer.

Usage:
    python bench/train_step.py [--presets tiny mini gpt2-small] [--rounds 3] [--steps 4]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.config import GPTConfig  # noqa: E402
from core.model import GPTModel  # noqa: E402

SHAPES = {"tiny": (8, 64), "mini": (8, 128), "gpt2-small": (2, 256)}  # (batch, tokens) per preset


def peer_model(cfg: GPTConfig):
    """transformers' GPT-2 with the same sizes, biases, tying and SDPA attention."""
    from transformers import GPT2Config, GPT2LMHeadModel

    hf_cfg = GPT2Config(
        vocab_size=cfg.vocab_size, n_positions=cfg.context_length, n_embd=cfg.emb_dim, n_layer=cfg.n_layers,
        n_head=cfg.n_heads, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=True,
        attn_implementation="sdpa",
    )
    return GPT2LMHeadModel(hf_cfg)


def plain_step(model, opt, x, y, is_peer: bool):
    logits = model(x).logits if is_peer else model(x)
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


def make_contestants(preset: str):
    cfg = GPTConfig.preset(preset, qkv_bias=True, tie_weights=True, drop_rate=0.0)
    torch.manual_seed(0)
    peer = peer_model(cfg).train()
    ours = GPTModel(cfg).train()
    ours_fast = GPTModel(cfg).train()
    contestants = {
        "peer": (peer, torch.optim.AdamW(peer.parameters(), lr=1e-4), True),
        "ours": (ours, torch.optim.AdamW(ours.parameters(), lr=1e-4), False),
    }
    try:
        from core.train import make_train_step
    except ImportError:  # the project step is optional while core.train is being built
        make_train_step = None
    if make_train_step is not None:
        contestants["ours+"] = (make_train_step(ours_fast, lr=1e-4), None, False)
    return cfg, contestants


def run(presets: list[str], rounds: int, steps: int) -> list[dict]:
    results = []
    for preset in presets:
        batch, tokens = SHAPES[preset]
        cfg, contestants = make_contestants(preset)
        tokens = min(tokens, cfg.context_length)
        gen = torch.Generator().manual_seed(0)
        x = torch.randint(0, cfg.vocab_size, (batch, tokens), generator=gen)
        y = torch.randint(0, cfg.vocab_size, (batch, tokens), generator=gen)
        best = dict.fromkeys(contestants, 0.0)
        for _ in range(rounds):
            for name, (model, opt, is_peer) in contestants.items():
                step = (lambda: model(x, y)) if opt is None else (lambda: plain_step(model, opt, x, y, is_peer))
                step()  # warm-up (allocations, autotuning)
                t0 = time.perf_counter()
                for _ in range(steps):
                    step()
                dt = time.perf_counter() - t0
                best[name] = max(best[name], steps * batch * tokens / dt)
        row = {"preset": preset, "batch": batch, "tokens": tokens, **{f"{k} tok/s": round(v) for k, v in best.items()}}
        for name in best:
            if name != "peer":
                row[f"{name}/peer"] = round(best[name] / best["peer"], 2)
        results.append(row)
        print(row, flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["tiny", "mini", "gpt2-small"], choices=list(SHAPES))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=4)
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}")
    run(args.presets, args.rounds, args.steps)


if __name__ == "__main__":
    main()
