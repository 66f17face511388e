"""LLM Scratch Lab core: a small, readable PyTorch implementation of a GPT-style language model.

Everything here is plain PyTorch and never imports Streamlit, so it can be used from a notebook, a script or the
command line (``python -m core --help``). The submodules follow the book's chapters:

- :mod:`core.tokenizers`  text ↔ token ids (GPT-2 BPE, simple regex tokenizers, characters, your own BPE)
- :mod:`core.data`        sliding-window datasets and dataloaders
- :mod:`core.embeddings`  PCA projections and nearest neighbours of embedding vectors
- :mod:`core.attention`   the four teaching steps of self-attention, with every intermediate tensor
- :mod:`core.config`      ``GPTConfig`` and named presets
- :mod:`core.model`       ``GPTModel`` (fast SDPA path and a manual path that exposes attention weights)
- :mod:`core.stats`       parameter, memory and FLOP counts, shape traces, small architecture demos
- :mod:`core.generate`    decoding with temperature, top-k, top-p and a KV cache
- :mod:`core.checkpoint`  safetensors save/load, Hugging Face GPT-2 import/export
- :mod:`core.train`       pretraining loop with exact resume (settings in :mod:`core.train_config`,
  run directories in :mod:`core.runs`), data-parallel under ``torchrun``
- :mod:`core.jobs`        background training jobs with a concurrency cap
- :mod:`core.lora`        low-rank adapters: apply, merge, count
- :mod:`core.classify`    classification fine-tuning (spam/ham)
- :mod:`core.instruct`    instruction fine-tuning (Alpaca format) and scoring
- :mod:`core.datasets`    built-in and downloadable corpora/datasets, upload validation
- :mod:`core.cli`         ``python -m core pretrain | generate | export | runs``
"""

from core.errors import LabError

__all__ = ["LabError"]
__version__ = "0.1.0"
