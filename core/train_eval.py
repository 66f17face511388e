"""What the pretraining loop measures besides the training loss: the validation loss (every rank scores its share
of the held-out windows) and the sample text a run shows at its evaluation points.

:class:`Evaluation` is a mixin of :class:`core.train.Trainer`.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from core.errors import LabError
from core.train_data import _loss_sum
from core.train_step import autocast


class Evaluation:
    """Validation loss and samples of a :class:`core.train.Trainer` (uses its model, data and settings)."""

    def evaluate(self) -> float:
        """Validation loss over ``eval_batches`` batches (all when None), with dropout off."""
        s = self.settings
        self.model.eval()
        try:
            with autocast(self.device, self.amp_dtype):
                total, count = _loss_sum(
                    self.model, self.val_x, self.val_y, s.batch_size, s.eval_batches, self.device,
                    self.rank, self.world,
                )  # fmt: skip
        finally:
            self.model.train()
        if self.world > 1:  # each rank scored every world-th batch; add the pieces up
            both = torch.tensor([total, count], dtype=torch.float64, device=self.device)
            dist.all_reduce(both)
            total, count = both.tolist()
        return total / count

    def _sample(self) -> str | None:
        s = self.settings
        if self.rank != 0 or self.tokenizer is None or s.sample_tokens == 0 or not s.sample_prompt:
            return None
        from core.generate import generate_text  # generation switches to eval mode and restores train mode

        try:
            return generate_text(
                self.model, self.tokenizer, s.sample_prompt, s.sample_tokens,
                temperature=s.sample_temperature, seed=s.seed + self.step,
            )  # fmt: skip
        except LabError as err:
            note = f"No sample text: {err}"
            if note not in self.notes:
                self.notes.append(note)
            return None

