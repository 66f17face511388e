"""The book's chapter 6 (classification fine-tuning) under its own names, as printed, on top of ``core``.

- ``create_balanced_dataset(df)`` and ``random_split(df, train_frac, validation_frac)`` on the book's frame
  (columns ``Label`` and ``Text``, read with ``pd.read_csv(path, sep="\\t", header=None, names=["Label",
  "Text"])``);
- ``SpamDataset(csv_file, tokenizer, max_length=None, pad_token_id=50256)``: items ``(input_ids, label)``, so
  its DataLoader yields ``(input_batch, target_batch)``;
- ``calc_accuracy_loader``, ``calc_loss_batch``, ``calc_loss_loader`` (the last token's logits, §6.6),
  ``evaluate_model`` and ``train_classifier_simple(model, train_loader, val_loader, optimizer, device,
  num_epochs, eval_freq, eval_iter)`` → ``(train_losses, val_losses, train_accs, val_accs, examples_seen)``;
- ``classify_review(text, model, tokenizer, device, max_length=None, pad_token_id=50256)`` → ``"spam"`` or
  ``"not spam"``.

Chapter 5 has its own ``calc_loss_batch``/``calc_loss_loader``/``evaluate_model`` (next-token loss,
:mod:`core.book`); import these from here for chapter 6, as the book's chapter 6 defines them anew. The model
is any GPT whose ``out_head`` has been replaced by an ``nn.Linear(emb_dim, 2)`` (the book's §6.5).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from core.classify import calc_accuracy_loader  # noqa: F401 - the book's §6.6 name and signature
from core.errors import LabError
from core.train_data import mean_batch_loss

PAD_TOKEN_ID = 50256


def _book_frame(df: pd.DataFrame) -> None:
    if not isinstance(df, pd.DataFrame) or not {"Label", "Text"} <= set(df.columns):
        raise LabError("The book's SMS frame has columns 'Label' and 'Text' (pd.read_csv(path, sep='\\t', "
                       "header=None, names=['Label', 'Text'])).")


def create_balanced_dataset(df: pd.DataFrame) -> pd.DataFrame:
    """As many "ham" rows (sampled with ``random_state=123``) as there are "spam" rows, then the spam rows."""
    _book_frame(df)
    spam = df[df["Label"] == "spam"]
    ham = df[df["Label"] == "ham"].sample(len(spam), random_state=123)
    return pd.concat([ham, spam])


def random_split(df: pd.DataFrame, train_frac: float, validation_frac: float
                 ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Shuffle (``random_state=123``) and cut at ``int(n·train_frac)`` and ``int(n·validation_frac)`` more."""
    if not 0 < train_frac <= 1 or not 0 <= validation_frac <= 1 - train_frac:
        raise LabError(f"Split fractions {train_frac}, {validation_frac} must be > 0 and add up to at most 1.")
    shuffled = df.sample(frac=1, random_state=123).reset_index(drop=True)
    train_end = int(len(shuffled) * train_frac)
    validation_end = train_end + int(len(shuffled) * validation_frac)
    return shuffled[:train_end], shuffled[train_end:validation_end], shuffled[validation_end:]


class SpamDataset(Dataset):
    """The book's ``SpamDataset``: a CSV with ``Text`` and integer ``Label`` columns, every text encoded and
    padded (with ``pad_token_id``) to ``max_length`` (default: the longest text; longer ones are cut)."""

    def __init__(self, csv_file: Any, tokenizer: Any, max_length: int | None = None,
                 pad_token_id: int = PAD_TOKEN_ID) -> None:
        self.data = pd.read_csv(csv_file) if not isinstance(csv_file, pd.DataFrame) else csv_file
        _book_frame(self.data)
        self.encoded_texts = [tokenizer.encode(str(text)) for text in self.data["Text"]]
        self.max_length = max(map(len, self.encoded_texts), default=0) if max_length is None else int(max_length)
        self.encoded_texts = [ids[: self.max_length] + [pad_token_id] * (self.max_length - len(ids[: self.max_length]))
                              for ids in self.encoded_texts]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        label = self.data.iloc[index]["Label"]
        return torch.tensor(self.encoded_texts[index], dtype=torch.long), torch.tensor(int(label), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.data)

    def _longest_encoded_length(self) -> int:
        return max(map(len, self.encoded_texts), default=0)


def calc_loss_batch(input_batch: torch.Tensor, target_batch: torch.Tensor, model: torch.nn.Module,
                    device: Any) -> torch.Tensor:
    """Cross-entropy of the last token's logits against the class labels (§6.6)."""
    logits = model(input_batch.to(device))[:, -1, :]  # (B, K)
    return F.cross_entropy(logits, target_batch.to(device))


def calc_loss_loader(data_loader: Any, model: torch.nn.Module, device: Any, num_batches: int | None = None) -> float:
    """Mean :func:`calc_loss_batch` over the first ``num_batches`` batches (all by default); NaN if empty."""
    return mean_batch_loss(data_loader, num_batches, lambda x, y: calc_loss_batch(x, y, model, device))


def evaluate_model(model: torch.nn.Module, train_loader: Any, val_loader: Any, device: Any,
                   eval_iter: int) -> tuple[float, float]:
    model.eval()
    losses = (calc_loss_loader(train_loader, model, device, eval_iter),
              calc_loss_loader(val_loader, model, device, eval_iter))
    model.train()
    return losses


def train_classifier_simple(model: torch.nn.Module, train_loader: Any, val_loader: Any,
                            optimizer: torch.optim.Optimizer, device: Any, num_epochs: int, eval_freq: int,
                            eval_iter: int) -> tuple[list[float], list[float], list[float], list[float], int]:
    """The book's §6.7 loop: losses every ``eval_freq`` steps, accuracies (over ``eval_iter`` batches) after
    each epoch, printed as the book prints them. Returns ``(train_losses, val_losses, train_accs, val_accs,
    examples_seen)``."""
    train_losses, val_losses, train_accs, val_accs = [], [], [], []
    examples_seen, global_step = 0, -1
    for epoch in range(int(num_epochs)):
        model.train()
        for input_batch, target_batch in train_loader:
            optimizer.zero_grad()
            loss = calc_loss_batch(input_batch, target_batch, model, device)
            loss.backward()
            optimizer.step()
            examples_seen += input_batch.shape[0]
            global_step += 1
            if global_step % eval_freq == 0:
                train_loss, val_loss = evaluate_model(model, train_loader, val_loader, device, eval_iter)
                train_losses.append(train_loss)
                val_losses.append(val_loss)
                print(f"Ep {epoch + 1} (Step {global_step:06d}): Train loss {train_loss:.3f}, "
                      f"Val loss {val_loss:.3f}")
        model.eval()
        train_acc = calc_accuracy_loader(train_loader, model, device, num_batches=eval_iter)
        val_acc = calc_accuracy_loader(val_loader, model, device, num_batches=eval_iter)
        print(f"Training accuracy: {train_acc * 100:.2f}% | Validation accuracy: {val_acc * 100:.2f}%")
        train_accs.append(train_acc)
        val_accs.append(val_acc)
    return train_losses, val_losses, train_accs, val_accs, examples_seen


@torch.no_grad()
def classify_review(text: str, model: torch.nn.Module, tokenizer: Any, device: Any, max_length: int | None = None,
                    pad_token_id: int = PAD_TOKEN_ID) -> str:
    """ "spam" or "not spam" for one text: encoded, cut to the model's context (and ``max_length``), padded to
    ``max_length``, classified by the last token's logits (§6.8)."""
    model.eval()
    ids = tokenizer.encode(text)
    context = int(model.pos_emb.weight.shape[0])
    keep = min(max_length, context) if max_length is not None else context
    ids = ids[:keep]
    if max_length is not None:
        ids = ids + [pad_token_id] * (keep - len(ids))
    logits = model(torch.tensor(ids, device=device).unsqueeze(0))[:, -1, :]
    return "spam" if int(logits.argmax(dim=-1)) == 1 else "not spam"
