"""The guided path's default settings, defined once: the pages' widgets start from them, ``bench/guided_path.py``
and the journey browser test run them, and the README's table reports what they give on a 2-core CPU.

They were chosen by measurement (bench/README.md, "The guided path"): on the built-in corpus (172 k GPT-2
tokens) 200 steps of ``mini`` at a peak learning rate of 1e-3 read the corpus about 1.2 times, so validation loss
falls from ln(50,257) ≈ 10.8 to about 2.3 without overfitting and the samples become words and phrases. The book's
4e-4 is tuned for GPT-2's 124M parameters; on this small model and short run it leaves samples of repeated
tokens.

    >>> PRETRAIN_PRESET, PRETRAIN.max_steps, PRETRAIN.lr
    ('mini', 200, 0.001)
    >>> sample_prompt("builtin-corpus"), sample_prompt("the-verdict")
    ('Once upon a time', 'Every effort moves you')
"""

from __future__ import annotations

import dataclasses

from core.classify_job import ClassifySettings
from core.instruct_job import InstructSettings
from core.train_config import TrainSettings

BOOK_PROMPT = "Every effort moves you"  # chapter 5's prompt, for The Verdict and any other corpus
STORY_PROMPT = "Once upon a time"  # how most of the built-in stories begin

PRETRAIN_PRESET = "mini"
PRETRAIN_CORPUS = "builtin-corpus"
PRETRAIN = TrainSettings(max_steps=200, batch_size=8, lr=1e-3, warmup_steps=20, eval_every=25, sample_every=25,
                         seed=123, val_ratio=0.1, sample_prompt=STORY_PROMPT)

CLASSIFY = ClassifySettings()  # built-in spam, last block + final norm + head, 5 epochs

# Instruction fine-tuning: a model trained from scratch needs many more steps at a higher rate than GPT-2's
# weights, which the book fine-tunes for 2 epochs at 5e-5.
INSTRUCT_SCRATCH = InstructSettings(epochs=10, max_steps=400, lr=1e-3, mask_prompt=True, n_eval=40, eval_every=20)
INSTRUCT_PRETRAINED = InstructSettings(epochs=2, max_steps=30, lr=5e-5, mask_prompt=False, n_eval=10)


def sample_prompt(corpus_source: str) -> str:
    """The prompt a run's samples continue: a story opening for the built-in stories, the book's otherwise."""
    return STORY_PROMPT if corpus_source == PRETRAIN_CORPUS else BOOK_PROMPT


def instruct_settings(from_scratch: bool) -> InstructSettings:
    """The Instructions page's starting settings for a model trained here (True) or GPT-2's weights (False)."""
    return dataclasses.replace(INSTRUCT_SCRATCH if from_scratch else INSTRUCT_PRETRAINED)
