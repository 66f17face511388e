"""Instruction data, the book's sections 7.2-7.4: the Alpaca template, the dataset and the collate function.

Each record ``{instruction, input, output}`` becomes one text (the Alpaca template), the model is trained
on it with the ordinary next-token loss, and padding (plus, optionally, the prompt) is kept out of the loss
by setting those targets to ``-100``, the index ``F.cross_entropy`` ignores.

Shape legend: B batch, T tokens (longest sequence in the batch), V vocabulary.

Example:
    >>> print(format_example({"instruction": "Say hi.", "input": "", "output": "Hi!"}))
    Below is an instruction that describes a task. Write a response that appropriately completes the request.
    <BLANKLINE>
    ### Instruction:
    Say hi.
    <BLANKLINE>
    ### Response:
    Hi!
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from core.classify_data import encode_text
from core.errors import LabError, check_int

PAD_TOKEN_ID = 50256  # <|endoftext|>: marks the end of a response and pads the batch
IGNORE_INDEX = -100  # F.cross_entropy skips targets with this value
PROMPT_INTRO = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request."
)
RESPONSE_HEADER = "\n\n### Response:\n"


# ---------------------------------------------------------------------------------------------- the template
def _field(entry: Mapping[str, Any], key: str, index: int | None, required: bool) -> str:
    where = f"Record {index}" if index is not None else "The record"
    if not isinstance(entry, Mapping):
        raise LabError(f"{where} is not a dict with 'instruction', 'input' and 'output'; fix the data.")
    value = entry.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise LabError(f"{where} has no {key!r} text; every record needs a non-empty {key!r}.")
    return value


def format_input(entry: Mapping[str, Any], index: int | None = None) -> str:
    """The Alpaca prompt exactly as the book writes it: intro, instruction and (if not empty) input.

    Args:
        entry: a dict with ``instruction`` and optionally ``input``.
        index: the record's position, used only in error messages.
    """
    text = PROMPT_INTRO + "\n\n### Instruction:\n" + _field(entry, "instruction", index, required=True)
    extra = _field(entry, "input", index, required=False)
    return text + ("\n\n### Input:\n" + extra if extra else "")


def format_prompt(entry: Mapping[str, Any], index: int | None = None) -> str:
    """What the model is given when it answers: :func:`format_input` and the ``"### Response:"`` header.

    The header is part of the prompt, not of the answer: at answer time the lab writes it (the book lets the
    model write it and strips it afterwards), so with ``mask_prompt`` the loss counts the response itself and
    its end-of-text, nothing of the template.
    """
    return format_input(entry, index) + RESPONSE_HEADER


def format_example(entry: Mapping[str, Any], index: int | None = None) -> str:
    """The full training text: :func:`format_input` + ``"\\n\\n### Response:\\n"`` + output."""
    return format_input(entry, index) + RESPONSE_HEADER + _field(entry, "output", index, required=True)


# ------------------------------------------------------------------------------------------ dataset, collate
class InstructionDataset(Dataset):
    """Pre-tokenised instruction examples (the book's ``InstructionDataset``).

    Args:
        data: records with ``instruction``, ``input`` (may be empty) and ``output``.
        tokenizer: anything with ``encode(text)``, e.g. ``core.tokenizers.get_tokenizer("gpt2")``.
        max_length: the most tokens one example may have, normally the model's context length. Longer
            examples are truncated (their end is cut) and counted in ``n_truncated``; never silently.

    Each item is ``{"input_ids": list[int], "prompt_length": int}``; ``prompt_length`` counts the tokens of
    :func:`format_prompt` (what the model is given when it answers, the response header included), used by
    ``mask_prompt``.
    """

    def __init__(
        self, data: Sequence[Mapping[str, Any]], tokenizer: Any, max_length: int | None = None
    ) -> None:
        if not isinstance(data, Sequence) or isinstance(data, str) or not data:
            raise LabError("Instruction data must be a non-empty list of instruction/input/output records.")
        if max_length is not None:
            max_length = check_int(max_length, "max_length", low=2)
        self.data, self.tokenizer, self.max_length = list(data), tokenizer, max_length
        self.encoded_texts: list[list[int]] = []
        self.prompt_lengths: list[int] = []
        self.n_truncated = 0
        for i, entry in enumerate(self.data):
            full = encode_text(tokenizer, format_example(entry, i))
            prompt = encode_text(tokenizer, format_prompt(entry, i))
            # BPE could in principle merge across the prompt/response border; count only the shared prefix.
            n_prompt = next((k for k, (a, b) in enumerate(zip(prompt, full)) if a != b), len(prompt))
            if max_length is not None and len(full) > max_length:
                self.n_truncated += 1
                full = full[:max_length]
            self.encoded_texts.append(full)
            self.prompt_lengths.append(min(n_prompt, len(full)))
        self.notes = [] if not self.n_truncated else [
            f"{self.n_truncated} of {len(self.data)} examples were longer than {max_length} tokens and were "
            "truncated (their responses lose their end)."
        ]

    def __len__(self) -> int:
        return len(self.encoded_texts)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"input_ids": self.encoded_texts[i], "prompt_length": self.prompt_lengths[i]}


def custom_collate_fn(
    batch: Sequence[Sequence[int] | torch.Tensor | Mapping[str, Any]],
    pad_token_id: int = PAD_TOKEN_ID,
    ignore_index: int = IGNORE_INDEX,
    allowed_max_length: int | None = None,
    mask_prompt: bool = False,
    prompt_lengths: Sequence[int] | None = None,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a batch into ``(inputs, targets)``, both (B, T), as the book's ``custom_collate_fn``.

    Each sequence gets one ``<|endoftext|>`` appended (so the model learns to stop), is padded to the batch's
    longest with ``pad_token_id``, and is split into inputs = seq[:-1] and targets = seq[1:]. In the
    targets every padding position except the first end-of-text becomes ``ignore_index``; with
    ``mask_prompt`` the targets that predict prompt tokens do too (target j predicts token j + 1, so
    ``targets[:prompt_len - 1]``).

    Args:
        batch: token-id lists (or tensors), or :class:`InstructionDataset` items (dicts with ``input_ids`` and
            ``prompt_length``).
        allowed_max_length: cut inputs and targets to this many positions (the book: 1024).
        prompt_lengths: prompt tokens per sequence; overrides the items' ``prompt_length``.

    The padding is found by position, not by value, so a literal ``<|endoftext|>`` inside a text still counts.

    Example:
        >>> inputs, targets = custom_collate_fn([[0, 1, 2, 3, 4], [5, 6]])
        >>> targets.tolist()
        [[1, 2, 3, 4, 50256], [6, 50256, -100, -100, -100]]
    """
    seqs, lens = [], []
    for item in batch:
        if isinstance(item, Mapping):
            seqs.append([int(t) for t in item["input_ids"]])
            lens.append(int(item.get("prompt_length", 0)))
        else:
            seqs.append([int(t) for t in (item.tolist() if isinstance(item, torch.Tensor) else item)])
            lens.append(0)
    if not seqs:
        raise LabError("The batch is empty; give the collate function at least one sequence.")
    if prompt_lengths is not None:
        if len(prompt_lengths) != len(seqs):
            raise LabError(f"Got {len(prompt_lengths)} prompt lengths for {len(seqs)} sequences; "
                           "give one per sequence.")
        lens = [int(n) for n in prompt_lengths]
    width = max(len(s) for s in seqs) + 1  # +1 for the appended <|endoftext|>
    padded = torch.full((len(seqs), width), pad_token_id, dtype=torch.long)
    for row, s in enumerate(seqs):
        padded[row, : len(s)] = torch.tensor(s, dtype=torch.long)
    inputs, targets = padded[:, :-1].clone(), padded[:, 1:].clone()  # (B, T) each, T = width - 1
    for row, s in enumerate(seqs):
        targets[row, len(s) :] = ignore_index  # target len(s) - 1 is the end-of-text we keep
        if mask_prompt and lens[row] > 1:
            targets[row, : lens[row] - 1] = ignore_index
    if allowed_max_length is not None:
        inputs, targets = inputs[:, :allowed_max_length], targets[:, :allowed_max_length]
    return inputs.to(device), targets.to(device)


def make_instruction_loader(
    dataset: InstructionDataset,
    batch_size: int = 8,
    shuffle: bool = False,
    drop_last: bool = False,
    mask_prompt: bool = False,
    allowed_max_length: int | None = None,
    pad_token_id: int = PAD_TOKEN_ID,
    device: str | torch.device = "cpu",
    seed: int | None = 123,
) -> DataLoader:
    """A DataLoader over ``dataset`` with :func:`custom_collate_fn` (the book: batch 8, shuffled training)."""
    collate = partial(custom_collate_fn, pad_token_id=pad_token_id, allowed_max_length=allowed_max_length,
                      mask_prompt=mask_prompt, device=device)
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                      collate_fn=collate, generator=gen, num_workers=0)


def loss_mask_view(
    inputs: torch.Tensor, targets: torch.Tensor, tokenizer: Any = None, ignore_index: int = IGNORE_INDEX,
) -> list[list[dict[str, Any]]]:
    """Per row, per position: the input token, the target token and whether it counts in the loss.

    Args:
        inputs, targets: (B, T) from :func:`custom_collate_fn`.
        tokenizer: if given, each cell also has ``token`` and ``target`` text (``None`` for ignored targets).
    """
    rows = []
    for ids, tgt in zip(inputs.tolist(), targets.tolist()):
        row = []
        for a, b in zip(ids, tgt):
            cell: dict[str, Any] = {"token_id": a, "target_id": b, "counts": b != ignore_index}
            if tokenizer is not None:
                cell["token"] = tokenizer.decode([a])
                cell["target"] = tokenizer.decode([b]) if b != ignore_index else None
            row.append(cell)
        rows.append(row)
    return rows
