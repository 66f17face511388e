"""The one checker for whole numbers, numbers in a range and names from a list (core.errors)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from core.errors import MAX_INT, LabError, check_choice, check_int, check_number, parse_json_safely, shown


@pytest.mark.parametrize(
    "value, kwargs, expected",
    [
        (3, {}, 3),
        (0, {"low": 0}, 0),
        (-5, {}, -5),
        (np.int64(7), {"low": 1}, 7),
        (torch.tensor(4), {"low": 1}, 4),
        (MAX_INT, {}, MAX_INT),
        (10, {"low": 1, "high": 10}, 10),
    ],
)
def test_check_int_accepts_whole_numbers(value, kwargs, expected):
    got = check_int(value, "n", **kwargs)
    assert got == expected and type(got) is int


def _id(value):
    """Test ids: a 5,000-digit number is named by its size (pytest's own id would call str() and fail)."""
    return shown(value, limit=24) if isinstance(value, int) and abs(value) > 10**20 else None


@pytest.mark.parametrize(
    "value, kwargs, message",
    [
        (True, {}, "n must be a whole number, got True."),
        (False, {"low": 0}, "n must be a whole number, got False."),
        (np.bool_(True), {}, "n must be a whole number, got np.True_."),
        (2.5, {}, "n must be a whole number, got 2.5."),
        (4.0, {}, "n must be a whole number, got 4.0."),
        (math.nan, {}, "n must be a whole number, got nan."),
        ("7", {}, "n must be a whole number, got '7'."),
        (None, {"low": 1}, "n must be a whole number, got None."),
        ([1], {}, "n must be a whole number, got [1]."),
        (0, {"low": 1}, "n must be a positive whole number, got 0."),
        (-1, {"low": 0}, "n must be a whole number of at least 0, got -1."),
        (1, {"low": 2_000}, "n must be a whole number of at least 2,000, got 1."),
        (11, {"low": 1, "high": 10}, "n must be at most 10, got 11."),
        (MAX_INT + 1, {}, f"n must be at most {MAX_INT:,}, got {MAX_INT + 1}."),
        (10**5000, {"low": 1}, f"n must be at most {MAX_INT:,}, got a number of about 5,001 digits."),
        (-(10**5000), {"low": 1}, "n must be a positive whole number, got a number of about 5,001 digits."),
        (0, {"low": 1, "fix": "try 8"}, "n must be a positive whole number, got 0; try 8."),
    ],
    ids=_id,
)
def test_check_int_refuses_with_one_sentence(value, kwargs, message):
    if message.startswith("n must be a whole number, got np."):
        message = f"n must be a whole number, got {value!r}."  # NumPy 1 and 2 spell their bool differently
    with pytest.raises(LabError) as info:
        check_int(value, "n", **kwargs)
    assert str(info.value) == message


def test_check_int_quotes_a_huge_value_briefly():
    with pytest.raises(LabError) as info:
        check_int("x" * 1_000_000, "seed", fix="try 123")
    assert len(str(info.value)) < 120 and str(info.value).endswith("…; try 123.")


@pytest.mark.parametrize(
    "value, kwargs, expected",
    [
        (0.5, {"low": 0, "high": 1}, 0.5),
        (0, {"low": 0, "high": 1, "high_open": True}, 0.0),
        (1, {"low": 0, "high": 1}, 1.0),
        (np.float32(0.25), {"low": 0}, 0.25),
        (-3, {}, -3.0),
        (1e-5, {"low": 0, "high": 1, "low_open": True, "high_open": True}, 1e-5),
    ],
)
def test_check_number_accepts_numbers_in_range(value, kwargs, expected):
    got = check_number(value, "x", **kwargs)
    assert got == expected and type(got) is float


@pytest.mark.parametrize(
    "value, kwargs, message",
    [
        (True, {}, "x must be a finite number, got True."),
        ("0.1", {}, "x must be a finite number, got '0.1'."),
        (None, {}, "x must be a finite number, got None."),
        (math.nan, {"low": 0, "high": 1}, "x must be a finite number between 0 and 1, got nan."),
        (math.inf, {"low": 0}, "x must be a finite number 0 or more, got inf."),
        (10**400, {"low": 0, "high": 1}, "x must be between 0 and 1, got a number of about 401 digits."),
        (1, {"low": 0, "high": 1, "high_open": True}, "x must be between 0 and 1 (exclusive of 1), got 1."),
        (0, {"low": 0, "high": 1, "low_open": True}, "x must be between 0 and 1 (exclusive of 0), got 0."),
        (0.0, {"low": 0, "high": 1, "low_open": True, "high_open": True},
         "x must be between 0 and 1 (exclusive of both), got 0.0."),
        (0, {"low": 0, "low_open": True}, "x must be a positive number, got 0."),
        (2, {"low": 2, "low_open": True}, "x must be more than 2, got 2."),
        (-1, {"low": 0}, "x must be 0 or more, got -1."),
        (3, {"high": 2}, "x must be at most 2, got 3."),
        (2, {"high": 2, "high_open": True}, "x must be less than 2, got 2."),
        (-2, {"low": 0, "low_open": True, "fix": "try 16"}, "x must be a positive number, got -2; try 16."),
    ],
    ids=_id,
)
def test_check_number_refuses_with_one_sentence(value, kwargs, message):
    with pytest.raises(LabError) as info:
        check_number(value, "x", **kwargs)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "value, kwargs, expected",
    [("b", {}, "b"), (" B ", {"fold": True}, "b"), ("a", {}, "a")],
)
def test_check_choice_accepts_a_choice(value, kwargs, expected):
    assert check_choice(value, "thing", ("a", "b"), **kwargs) == expected


@pytest.mark.parametrize(
    "value, kwargs, message",
    [
        ("c", {}, "Unknown thing 'c'; choose one of: a, b."),
        (" B ", {}, "Unknown thing ' B '; choose one of: a, b."),
        (["a"], {}, "Unknown thing ['a']; choose one of: a, b."),
        (None, {"fold": True}, "Unknown thing None; choose one of: a, b."),
        (1, {}, "Unknown thing 1; choose one of: a, b."),
        ("c", {"fix": "see the list"}, "Unknown thing 'c'; see the list."),
    ],
)
def test_check_choice_refuses_with_one_sentence(value, kwargs, message):
    with pytest.raises(LabError) as info:
        check_choice(value, "thing", ("a", "b"), **kwargs)
    assert str(info.value) == message


def test_check_choice_reads_the_keys_of_a_mapping_and_quotes_a_huge_name_briefly():
    assert check_choice("y", "preset", {"x": 1, "y": 2}) == "y"
    with pytest.raises(LabError, match=r"^Unknown preset '.*…; choose one of: x, y\.$") as info:
        check_choice("z" * 1_000_000, "preset", {"x": 1, "y": 2})
    assert len(str(info.value)) < 120


def test_lab_error_is_a_value_error_and_shown_stays_short():
    assert issubclass(LabError, ValueError)
    assert shown(list(range(1000))) == "a list of 1,000 items"
    assert shown("abc") == "'abc'"


@pytest.mark.parametrize("text, problem", [("{", "line 1"), ("[" * 100_000, "nested"), (b"\xff", "UTF-8"),
                                           ("1" * 5000, "4,300 digits")])
def test_parse_json_safely_turns_every_failure_into_one_sentence(text, problem):
    with pytest.raises(LabError, match=f"run.json is not readable JSON .*{problem}.*; fix the file or remove it."):
        parse_json_safely(text, "run.json")
    assert parse_json_safely(json.dumps({"a": [1]}), "x") == {"a": [1]}
