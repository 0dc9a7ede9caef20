from __future__ import annotations

import pytest

from streaming.errors import ConfigError, DecodeError
from streaming.features import FeatureSpec

SPEC = FeatureSpec.from_mapping({"amount": "numeric", "count": "numeric", "channel": "categorical"})


def test_order_and_kinds_follow_the_configuration() -> None:
    assert SPEC.names == ("amount", "count", "channel")
    assert SPEC.numeric == ("amount", "count")
    assert SPEC.categorical == ("channel",)
    assert SPEC.as_mapping() == {"amount": "numeric", "count": "numeric", "channel": "categorical"}


def test_extra_features_are_allowed() -> None:
    SPEC.check({"amount": 1, "count": 2.0, "channel": "web", "unused": "x"})


@pytest.mark.parametrize(
    ("values", "reason", "message"),
    [
        ({"count": 1, "channel": "web"}, "feature_spec", "missing feature 'amount'"),
        ({"amount": "1", "count": 1, "channel": "web"}, "feature_spec", "'amount' must be a number"),
        ({"amount": True, "count": 1, "channel": "web"}, "feature_spec", "'amount' must be a number"),
        ({"amount": 1, "count": 1, "channel": 3}, "feature_spec", "'channel' must be a string"),
        ({"amount": float("nan"), "count": 1, "channel": "web"}, "non_finite", "'amount' is nan"),
        ({"amount": 1, "count": float("-inf"), "channel": "web"}, "non_finite", "'count' is -inf"),
    ],
)
def test_values_that_break_the_spec(values: dict, reason: str, message: str) -> None:
    with pytest.raises(DecodeError, match=message) as caught:
        SPEC.check(values)
    assert caught.value.reason == reason


def test_a_bad_spec_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'amount' has kind 'float'"):
        FeatureSpec.from_mapping({"amount": "float"})
    with pytest.raises(ConfigError, match="empty"):
        FeatureSpec.from_mapping({})
