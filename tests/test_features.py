from __future__ import annotations

import msgspec
import pytest

from streaming.errors import ConfigError, DecodeError
from streaming.events import EventCodec, transaction_type
from streaming.features import FeatureSpec

SPEC = FeatureSpec.from_mapping({"amount": "numeric", "count": "numeric", "channel": "categorical"})
CODEC = EventCodec(transaction_type(SPEC))
ENVELOPE = '"transaction_id":"t1","account_id":"a1","event_time":"2026-11-27T12:00:00Z"'


def decode(features: str):  # type: ignore[no-untyped-def]
    return CODEC.decode(("{" + ENVELOPE + ',"features":' + features + "}").encode())


def test_order_and_kinds_follow_the_configuration() -> None:
    assert SPEC.names == ("amount", "count", "channel")
    assert SPEC.numeric == ("amount", "count")
    assert SPEC.categorical == ("channel",)
    assert SPEC.as_mapping() == {"amount": "numeric", "count": "numeric", "channel": "categorical"}


def test_typed_features_decode_in_spec_order_and_ignore_extras() -> None:
    transaction = decode('{"channel": "web", "count": 2, "amount": 1.5, "unused": "x"}')
    assert SPEC.values(transaction.features) == (1.5, 2.0, "web")
    assert SPEC.values({"channel": "web", "count": 2.0, "amount": 1.5}) == (1.5, 2.0, "web")


def test_typed_transactions_keep_the_wire_format() -> None:
    transaction = decode('{"amount": 1.5, "count": 2.0, "channel": "web"}')
    assert msgspec.json.decode(msgspec.json.encode(transaction))["features"] == {
        "amount": 1.5,
        "count": 2.0,
        "channel": "web",
    }


def test_feature_names_need_not_be_identifiers() -> None:
    spec = FeatureSpec.from_mapping({"amount (EUR)": "numeric", "merchant-category": "categorical"})
    codec = EventCodec(transaction_type(spec))
    raw = "{" + ENVELOPE + ',"features":{"amount (EUR)":3,"merchant-category":"fuel"}}'
    assert spec.values(codec.decode(raw.encode()).features) == (3.0, "fuel")


@pytest.mark.parametrize(
    ("features", "message"),
    [
        ('{"count": 1, "channel": "web"}', "missing required field `amount`"),
        (
            '{"amount": "1", "count": 1, "channel": "web"}',
            "Expected `float`, got `str` - at `$.features.amount`",
        ),
        (
            '{"amount": true, "count": 1, "channel": "web"}',
            "Expected `float`, got `bool` - at `$.features.amount`",
        ),
        ('{"amount": 1, "count": 1, "channel": 3}', "Expected `str`, got `int` - at `$.features.channel`"),
        ('{"amount": null, "count": 1, "channel": "web"}', "got `null` - at `$.features.amount`"),
    ],
)
def test_values_that_break_the_spec_name_the_feature(features: str, message: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode(features)
    assert caught.value.reason == "feature_spec"
    assert message in str(caught.value)


def test_a_bad_spec_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'amount' has kind 'float'"):
        FeatureSpec.from_mapping({"amount": "float"})
    with pytest.raises(ConfigError, match="empty"):
        FeatureSpec.from_mapping({})
