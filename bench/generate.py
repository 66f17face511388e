"""Generation throughput: ours (KV cache) vs transformers ``generate`` (greedy, cache on), and ours cached vs not.

Both models get identical weights (ours is exported to a transformers GPT-2 and loaded back), so the two runs
must produce the same tokens — the benchmark checks that before it reports a ratio. Rounds alternate between the
contestants; the best tokens/s of the rounds is reported.

Usage:
    python bench/generate.py [--presets mini gpt2-small] [--new-tokens 256] [--rounds 2]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.checkpoint import export_hf_gpt2  # noqa: E402
from core.config import GPTConfig  # noqa: E402
from core.generate import generate  # noqa: E402
from core.model import GPTModel  # noqa: E402


def timed(fn) -> tuple[float, torch.Tensor]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def run(presets: list[str], new_tokens: int, rounds: int, prompt_len: int = 8) -> list[dict]:
    from transformers import GPT2LMHeadModel

    results = []
    for preset in presets:
        cfg = GPTConfig.preset(preset, qkv_bias=True, tie_weights=True, drop_rate=0.0)
        torch.manual_seed(0)
        ours = GPTModel(cfg).eval()
        with tempfile.TemporaryDirectory() as tmp:
            export_hf_gpt2(ours, tmp)
            peer = GPT2LMHeadModel.from_pretrained(tmp, attn_implementation="sdpa").eval()
        prompt = torch.randint(0, cfg.vocab_size, (1, prompt_len), generator=torch.Generator().manual_seed(1))
        n = min(new_tokens, cfg.context_length - prompt_len)

        def peer_run():
            with torch.inference_mode():
                return peer.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=n,
                                     min_new_tokens=n, do_sample=False, use_cache=True, pad_token_id=0)

        contestants = {
            "peer (transformers generate)": peer_run,
            "ours (KV cache)": lambda: generate(ours, prompt, n, use_cache=True),
            "ours (no cache)": lambda: generate(ours, prompt, n, use_cache=False),
        }
        best = dict.fromkeys(contestants, float("inf"))
        outputs = {}
        for _ in range(rounds):
            for name, fn in contestants.items():
                dt, out = timed(fn)
                best[name] = min(best[name], dt)
                outputs[name] = out
        same = torch.equal(outputs["ours (KV cache)"], outputs["peer (transformers generate)"])
        tps = {k: n / v for k, v in best.items()}
        row = {
            "preset": preset,
            "new_tokens": n,
            **{f"{k} tok/s": round(v, 1) for k, v in tps.items()},
            "ours cached / peer": round(tps["ours (KV cache)"] / tps["peer (transformers generate)"], 2),
            "ours cached / uncached": round(tps["ours (KV cache)"] / tps["ours (no cache)"], 2),
            "same tokens as peer": same,
        }
        results.append(row)
        print(row, flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["mini", "gpt2-small"])
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}")
    run(args.presets, args.new_tokens, args.rounds)


if __name__ == "__main__":
    main()
