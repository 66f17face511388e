"""LLM Scratch Lab core: a small, readable PyTorch implementation of a GPT-style language model.

Everything here is plain PyTorch and never imports Streamlit, so it can be used from a notebook, a script or the
command line (``python -m core --help``). The submodules follow the book's chapters:

- :mod:`core.tokenizers`  text ↔ token ids (GPT-2 BPE, simple regex tokenizers, characters, your own BPE)
- :mod:`core.data`        sliding-window datasets and dataloaders
- :mod:`core.embeddings`  PCA projections and nearest neighbours of embedding vectors
- :mod:`core.attention`   self-attention step by step (:mod:`core.attention_steps` for the teaching page)
- :mod:`core.config`      ``GPTConfig`` and named presets
- :mod:`core.model`       ``GPTModel`` (fast SDPA path and a manual path that exposes attention weights)
- :mod:`core.stats`       parameter, memory and FLOP counts, shape traces, the architecture report
- :mod:`core.generate`    decoding with temperature, top-k, top-p and a KV cache (:mod:`core.generate_steps`)
- :mod:`core.train_step`  the one optimizer step every training loop takes
- :mod:`core.train`       pretraining with exact resume (``train_config``, ``train_plan``, ``train_data``,
  ``train_eval``, ``train_memory``, ``train_speed``, ``distributed``, ``run_recorder``)
- :mod:`core.finetune_loop`  the simple loop the fine-tuning chapters share
- :mod:`core.classify`    classification fine-tuning (data in :mod:`core.classify_data`)
- :mod:`core.instruct`    instruction fine-tuning (:mod:`core.instruct_data`, :mod:`core.instruct_score`)
- :mod:`core.lora`        low-rank adapters: apply, merge, count
- storage: :mod:`core.fileio`, :mod:`core.checkpoint`, :mod:`core.safetensors_check`, :mod:`core.hf_gpt2`,
  :mod:`core.pretrained`, :mod:`core.runs`, :mod:`core.datasets`
- services the app and the CLI share: :mod:`core.jobs`, :mod:`core.pretrain_job`, :mod:`core.run_view`,
  :mod:`core.preflight`, :mod:`core.classify_job`, :mod:`core.instruct_job`, :mod:`core.lora_lab`,
  :mod:`core.model_spec`, :mod:`core.journey`, :mod:`core.limits`, :mod:`core.errors`
- :mod:`core.cli`         ``python -m core pretrain | generate | export | runs`` (one module per command group)
"""

from core.errors import LabError

__all__ = ["LabError"]
__version__ = "0.1.0"
