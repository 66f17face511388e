"""Tests for core.data: sliding windows, the dataset, the dataloader and their error messages."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
import tiktoken
import tiktoken.load
import torch

from core.data import (
    GPTDataset,
    GPTDatasetV1,
    create_dataloader,
    create_dataloader_v1,
    describe_windows,
    sliding_windows,
    to_token_ids,
    window_count,
)
from core.errors import LabError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gpt2() -> tiktoken.Encoding:
    """GPT-2's tokenizer built from the shipped ranks, so these tests do not depend on core.tokenizers."""
    return tiktoken.Encoding(
        name="gpt2",
        pat_str=r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
        mergeable_ranks=tiktoken.load.load_tiktoken_bpe(str(ROOT / "assets" / "gpt2.tiktoken")),
        special_tokens={"<|endoftext|>": 50256},
    )


def book_loop(ids: list[int], max_length: int, stride: int) -> tuple[list[list[int]], list[list[int]]]:
    """The book's GPTDatasetV1 loop, verbatim in spirit: the reference the vectorised version must match."""
    inputs, targets = [], []
    for i in range(0, len(ids) - max_length, stride):
        inputs.append(ids[i : i + max_length])
        targets.append(ids[i + 1 : i + max_length + 1])
    return inputs, targets


# --- counting -----------------------------------------------------------------------------------------------


def test_window_count_matches_book_loop_brute_force():
    for n in range(0, 40):
        for length in range(1, 12):
            for stride in range(1, 14):
                book = len(range(0, n - length, stride))
                assert window_count(n, length, stride) == book, (n, length, stride)


@pytest.mark.parametrize(
    ("n", "length", "stride", "expected"),
    [(5, 4, 1, 1), (4, 4, 1, 0), (10, 4, 4, 2), (10, 4, 100, 1), (100, 1, 1, 99), (0, 1, 1, 0), (9, 4, 4, 2)],
)
def test_window_count_edge_cases(n, length, stride, expected):
    assert window_count(n, length, stride) == expected


def test_random_windows_match_book_loop_and_closed_form():
    rng = random.Random(0)
    for _ in range(300):
        n = rng.randint(0, 300)
        length = rng.randint(1, 40)
        stride = rng.choice([1, 2, length, length + 1, length + 7, rng.randint(1, 60)])
        ids = [rng.randrange(50257) for _ in range(n)]
        x, y = sliding_windows(ids, length, stride)
        ref_x, ref_y = book_loop(ids, length, stride)
        assert x.shape == y.shape == (window_count(n, length, stride), length)
        assert x.tolist() == ref_x and y.tolist() == ref_y
        assert x.dtype == y.dtype == torch.int64


# --- shift by one -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("length", "stride"), [(4, 1), (4, 4), (3, 9), (1, 1), (7, 2)])
def test_targets_are_inputs_shifted_by_one(length, stride):
    ids = torch.randint(0, 1000, (101,), generator=torch.Generator().manual_seed(1))
    x, y = sliding_windows(ids, length, stride)
    assert torch.equal(y[:, :-1], x[:, 1:])
    for i in range(x.shape[0]):
        start = i * stride
        assert torch.equal(x[i], ids[start : start + length])
        assert y[i, -1] == ids[start + length]  # the target's new token is the one after the window


def test_windows_share_memory_with_ids():
    ids = torch.arange(20)
    x, _ = sliding_windows(ids, 4, 2)
    assert x.untyped_storage().data_ptr() == ids.untyped_storage().data_ptr()


def test_too_short_gives_empty_windows():
    x, y = sliding_windows([1, 2, 3], 3, 1)
    assert x.shape == y.shape == (0, 3)


# --- the book's test vector ---------------------------------------------------------------------------------


def test_the_verdict_first_window(gpt2, shared_data):
    path = shared_data / "the-verdict.txt"
    if not path.exists():
        pytest.skip("the-verdict.txt is not available")
    text = path.read_text(encoding="utf-8")
    assert len(to_token_ids(text, gpt2)) == 5145
    loader = create_dataloader(text, gpt2, batch_size=1, max_length=4, stride=1, shuffle=False)
    x, y = next(iter(loader))
    assert x.tolist() == [[40, 367, 2885, 1464]]
    assert y.tolist() == [[367, 2885, 1464, 1807]]
    assert len(loader) == 5141
    book = create_dataloader_v1(text, batch_size=8, max_length=4, stride=4, shuffle=False, tokenizer=gpt2)
    x8, _ = next(iter(book))
    assert x8.shape == (8, 4) and x8[1].tolist() == [1807, 3619, 402, 271]  # the book's second row
    assert x8[4].tolist() == [922, 5891, 1576, 438]


def test_default_tokenizer_is_gpt2(gpt2):
    text = "Hello, do you like tea? <|endoftext|> In the sunlit terraces of someunknownPlace."
    expected = gpt2.encode(text, allowed_special={"<|endoftext|>"})
    assert to_token_ids(text).tolist() == expected
    assert to_token_ids(text, "gpt2").tolist() == expected


def test_tokenizer_without_special_switch_still_works():
    class Chars:
        def encode(self, text):
            return [ord(c) for c in text]

    ds = GPTDataset("abcdef", Chars(), max_length=2, stride=2)
    assert ds.input_ids.tolist() == [[97, 98], [99, 100]]


# --- speed --------------------------------------------------------------------------------------------------


def best_of_3(fn) -> float:
    times = []
    for _ in range(3):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


@pytest.mark.parametrize(("length", "stride"), [(256, 128), (8, 1)])
def test_million_tokens_build_fast(length, stride):
    ids = torch.randint(0, 50257, (1_000_000,), generator=torch.Generator().manual_seed(0))

    def build():
        x, y = sliding_windows(ids, length, stride)
        # Materialise too, so the timing covers real work and not only a strided view.
        return x.contiguous(), y.contiguous()

    assert best_of_3(build) < 1.0
    x, _ = sliding_windows(ids, length, stride)
    assert x.shape[0] == window_count(1_000_000, length, stride)


# --- dataset and loader -------------------------------------------------------------------------------------


def test_dataset_items_and_alias():
    ds = GPTDatasetV1(list(range(10)), max_length=4, stride=4)
    assert GPTDatasetV1 is GPTDataset and len(ds) == 2
    x, y = ds[1]
    assert x.tolist() == [4, 5, 6, 7] and y.tolist() == [5, 6, 7, 8]


def test_loader_accepts_list_tensor_and_int32():
    ids = list(range(50))
    for source in (ids, torch.tensor(ids), torch.tensor(ids, dtype=torch.int32)):
        x, y = next(iter(create_dataloader(source, batch_size=3, max_length=5, stride=5, shuffle=False)))
        assert x.dtype == torch.int64 and x.shape == (3, 5)
        assert x[0].tolist() == [0, 1, 2, 3, 4] and y[2].tolist() == [11, 12, 13, 14, 15]


def test_drop_last_false_keeps_the_small_batch():
    loader = create_dataloader(
        list(range(30)), batch_size=4, max_length=4, stride=4, shuffle=False, drop_last=False
    )
    sizes = [x.shape[0] for x, _ in loader]
    assert sizes == [4, 3]  # 7 windows


def order(loader) -> list[int]:
    return [int(v) for x, _ in loader for v in x[:, 0]]


def test_seeded_shuffle_is_reproducible():
    ids = list(range(500))
    first = order(create_dataloader(ids, batch_size=2, max_length=4, stride=4, seed=123))
    again = order(create_dataloader(ids, batch_size=2, max_length=4, stride=4, seed=123))
    other = order(create_dataloader(ids, batch_size=2, max_length=4, stride=4, seed=7))
    plain = order(create_dataloader(ids, batch_size=2, max_length=4, stride=4, shuffle=False))
    assert first == again
    assert first != other and first != plain
    assert sorted(first) == sorted(plain)  # a shuffle, not a different set of windows


def test_seed_does_not_touch_global_rng():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    order(create_dataloader(list(range(200)), batch_size=2, max_length=4, stride=4, seed=5))
    assert torch.equal(torch.rand(3), expected)


def test_describe_windows():
    info = describe_windows(10, 4, 4)
    assert info == {
        "n_windows": 2,
        "window_tokens": 5,
        "overlap": 0,
        "gap": 0,
        "tokens_covered": 9,
        "tokens_unused_at_end": 1,
    }
    assert describe_windows(100, 8, 2)["overlap"] == 6
    assert describe_windows(100, 4, 10)["gap"] == 5
    assert describe_windows(3, 4, 1) == {
        "n_windows": 0,
        "window_tokens": 5,
        "overlap": 3,  # a property of the settings, even when the text is too short for a window
        "gap": 0,
        "tokens_covered": 0,
        "tokens_unused_at_end": 3,
    }


def test_describe_windows_adds_up():
    rng = random.Random(1)
    for _ in range(300):
        n, length, stride = rng.randint(0, 200), rng.randint(1, 20), rng.randint(1, 30)
        info = describe_windows(n, length, stride)
        x, y = sliding_windows(list(range(n)), length, stride)
        used = set(x.flatten().tolist()) | set(y.flatten().tolist())
        assert info["tokens_covered"] == len(used)
        if info["n_windows"]:
            gaps = (info["n_windows"] - 1) * info["gap"]
            assert info["tokens_covered"] + gaps + info["tokens_unused_at_end"] == n
            assert info["tokens_unused_at_end"] == n - 1 - max(used)


# --- errors -------------------------------------------------------------------------------------------------


def test_not_enough_tokens_message(gpt2):
    text = "word " * 37
    n = len(gpt2.encode(text))
    with pytest.raises(LabError) as err:
        create_dataloader(text, gpt2)
    assert str(err.value) == (
        f"The text has {n} tokens but one training window needs max_length + 1 = 257 tokens; "
        "use a longer text or a smaller context length."
    )


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"stride": 0}, "stride must be a positive whole number"),
        ({"stride": -3}, "stride must be a positive whole number"),
        ({"stride": 1.5}, "stride must be a whole number"),
        ({"max_length": 0}, "max_length must be a positive whole number"),
        ({"max_length": True}, "max_length must be a whole number"),
        ({"batch_size": 0}, "batch_size must be a positive whole number"),
        ({"num_workers": -1}, "num_workers must be a whole number of at least 0"),
        ({"seed": "abc"}, "seed must be a whole number"),
        ({"batch_size": 50}, "drop_last=True would yield no batches"),
    ],
)
def test_bad_arguments(kwargs, fragment):
    args = {"batch_size": 2, "max_length": 4, "stride": 4} | kwargs
    with pytest.raises(LabError, match=fragment):
        create_dataloader(list(range(40)), **args)


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("", "The text is empty"),
        ("   \n\t ", "The text is empty"),
        ([], "The input has 0 tokens"),
        ([1, 2, 3], "The input has 3 tokens"),
        ([1.0, 2.5, 3.0] * 10, "must be whole numbers, got torch.float32"),
        (torch.zeros(2, 20, dtype=torch.long), "one flat sequence, got shape \\(2, 20\\)"),
        (torch.ones(30, dtype=torch.bool), "must be whole numbers"),
        ([1, -2, 3] * 10, "must not be negative"),
        (["a", "b"], "must be a list of whole numbers"),
        (b"bytes", "not text"),
        (None, "must be a list of whole numbers"),
    ],
)
def test_bad_sources(source, fragment):
    with pytest.raises(LabError, match=fragment):
        create_dataloader(source, object(), batch_size=1, max_length=4, stride=1)


def test_bad_tokenizer():
    with pytest.raises(LabError, match="must have an encode"):
        create_dataloader("some text here", tokenizer=42, max_length=2)


def test_drop_last_message_is_one_actionable_sentence():
    with pytest.raises(LabError) as err:
        create_dataloader(list(range(13)), batch_size=4, max_length=4, stride=4)
    message = str(err.value)
    assert "only 3 training windows" in message and "lower batch_size to 3 or set drop_last=False" in message
    assert message.count(".") == 1 and message.endswith(".")


def test_lab_error_is_value_error():
    with pytest.raises(ValueError):
        window_count(10, 0, 1)
