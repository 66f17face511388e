import pytest

from core.config import PRESET_NAMES, GPTConfig
from core.errors import LabError


def test_gpt2_small_matches_book():
    cfg = GPTConfig.preset("gpt2-small")
    assert (cfg.vocab_size, cfg.context_length, cfg.emb_dim, cfg.n_heads, cfg.n_layers) == (50257, 1024, 768, 12, 12)
    assert cfg.drop_rate == 0.1 and cfg.qkv_bias is False


@pytest.mark.parametrize(
    "name, emb, layers, heads",
    [("gpt2-medium", 1024, 24, 16), ("gpt2-large", 1280, 36, 20), ("gpt2-xl", 1600, 48, 25)],
)
def test_larger_presets(name, emb, layers, heads):
    cfg = GPTConfig.preset(name)
    assert (cfg.emb_dim, cfg.n_layers, cfg.n_heads) == (emb, layers, heads)


def test_presets_include_cpu_sizes():
    assert {"tiny", "mini"} <= set(PRESET_NAMES)


def test_overrides_and_round_trip():
    cfg = GPTConfig.preset("tiny", context_length=16, qkv_bias=True)
    assert cfg.context_length == 16 and cfg.qkv_bias
    assert GPTConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.replace(n_layers=3).n_layers == 3


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"emb_dim": 100, "n_heads": 3}, "divisible"),
        ({"n_layers": 0}, "positive"),
        ({"vocab_size": -5}, "positive"),
        ({"emb_dim": 64.0}, "whole number"),
        ({"drop_rate": 1.5}, "between 0 and 1"),
    ],
)
def test_invalid_values_explain_themselves(changes, words):
    with pytest.raises(LabError, match=words):
        GPTConfig.preset("tiny", **changes)


def test_unknown_preset_and_field():
    with pytest.raises(LabError, match="Unknown preset 'gpt5'"):
        GPTConfig.preset("gpt5")
    with pytest.raises(LabError, match="Unknown configuration field"):
        GPTConfig.preset("tiny", embed_dim=8)
    with pytest.raises(ValueError):  # LabError is a ValueError for callers that catch the builtin
        GPTConfig.from_dict({"heads": 2})


@pytest.mark.parametrize("field, limit", [("vocab_size", 2_000_000), ("context_length", 1_048_576),
                                          ("emb_dim", 65_536), ("n_heads", 1_024), ("n_layers", 1_024),
                                          ("ff_mult", 64)])  # fmt: skip
def test_sizes_have_upper_bounds_that_say_the_limit(field, limit):
    base = {"emb_dim": 1024, "n_heads": 1}  # every head count and width below the limits divides evenly
    GPTConfig(**{**base, field: limit})  # the limit itself is allowed
    with pytest.raises(LabError, match=rf"{field} must be at most {limit:,}, got {limit + 1}; .*GPT-2 XL"):
        GPTConfig(**{**base, field: limit + 1})


def test_every_preset_is_within_the_bounds():
    for name in PRESET_NAMES:
        GPTConfig.preset(name)


def test_divisor_hint_is_instant_for_huge_widths():
    """The suggestion for n_heads used to scan range(1, emb_dim + 1): hours for emb_dim=10**12."""
    from core.config import _divisor_hint

    assert _divisor_hint(10**12, 12) == 10 and _divisor_hint(100, 3) == 2 and _divisor_hint(97, 12) == 1
    assert _divisor_hint(768, 11) == 12 and _divisor_hint(768, 5) == 4  # a tie goes to the smaller
    with pytest.raises(LabError, match="try n_heads = 8"):
        GPTConfig(emb_dim=65_536, n_heads=7)


@pytest.mark.parametrize("value", ["x" * 10**6, 10**5000, float("inf"), [1] * 10**5],
                         ids=["1-MB-string", "5001-digit-int", "inf", "long-list"])
def test_config_messages_stay_short_whatever_the_value(value):
    with pytest.raises(LabError) as info:
        GPTConfig(vocab_size=value)
    assert len(str(info.value)) < 200, str(info.value)[:300]
    with pytest.raises(LabError, match="Unknown preset") as info:
        GPTConfig.preset(value)
    assert len(str(info.value)) < 200


@pytest.mark.parametrize("field", ["tie_weights", "qkv_bias"])
@pytest.mark.parametrize("value", ["no", 0, 1, None, "False"])
def test_switches_must_be_true_or_false(field, value):
    with pytest.raises(LabError, match=f"{field} must be True or False"):
        GPTConfig(**{field: value})
