"""Events round-trip, and every kind of bad input becomes one DecodeError naming the reason."""

from __future__ import annotations

import contextlib
import random
from datetime import UTC, datetime

import msgspec
import pytest

from streaming.errors import DecodeError
from streaming.events import (
    EVENT_TYPES,
    DeadLetter,
    DriftEvent,
    EventCodec,
    Evidence,
    FeatureShift,
    Label,
    ModelUpdate,
    OffsetRange,
    Outcome,
    Score,
    Transaction,
    WindowStats,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

EXAMPLES: list[msgspec.Struct] = [
    Transaction(
        transaction_id="t1",
        account_id="a1",
        event_time=NOW,
        features={"amount": 12.5, "merchant_category": "grocery"},
    ),
    Label(transaction_id="t1", label=1, label_time=NOW),
    Score(
        transaction_id="t1",
        account_id="a1",
        model_name="fraud",
        model_version="v1",
        role="champion",
        score=0.93,
        threshold=0.5,
        decision=True,
        event_time=NOW,
        scored_at=NOW,
        latency_ms=3.2,
    ),
    Outcome(
        transaction_id="t1",
        account_id="a1",
        model_name="fraud",
        model_version="v1",
        role="champion",
        score=0.93,
        threshold=0.5,
        decision=True,
        label=1,
        event_time=NOW,
        scored_at=NOW,
        label_time=NOW,
        delay_s=0.0,
        latency_ms=3.2,
    ),
    DriftEvent(
        event_id="e1",
        model_name="fraud",
        model_version="v1",
        signal="feature",
        detector="adwin",
        feature="amount",
        partition=0,
        offset_start=10,
        offset_end=99,
        before=WindowStats(count=50, mean=1.0, std=0.1),
        after=WindowStats(count=40, mean=2.0),
        statistic=0.4,
        p_value=0.001,
        severity="high",
        detected_at=NOW,
        scope=[0, 3],
        partitions_seen=12,
        explanation=[
            FeatureShift(column="amount", psi=0.4, p_value=0.0001, before=WindowStats(count=2000, mean=50.0))
        ],
        evidence=[OffsetRange(topic="drift.evidence", partition=0, start=5, end=9)],
        event_time=NOW,
    ),
    Evidence(
        model_name="fraud",
        model_version="v1",
        bins="0123456789abcdef",
        topic="transactions",
        partition=3,
        offset_start=100,
        offset_end=163,
        rows=64,
        event_time_start_ms=1_767_225_600_000,
        event_time_end_ms=1_767_225_660_000,
        numeric=[[30, 34], [64, 0]],
        numeric_sum=[3200.0, 12.5],
        numeric_sum_squares=[170_000.0, 3.1],
        scores=[60, 4],
        score_sum=3.2,
        score_sum_squares=0.9,
        decisions=4,
        categorical=[[50, 13, 1]],
        producer="score-1/driftloop-scorer",
    ),
    ModelUpdate(
        model_name="fraud",
        version="v2",
        status="rejected",
        reasons=["auc below 0.8"],
        evidence={"auc": 0.71},
        created_at=NOW,
    ),
    DeadLetter(
        reason="invalid_json",
        error="JSON is malformed",
        source_topic="transactions",
        partition=3,
        offset=17,
        key=b"a1",
        value=b"\xff\x00garbage",
        consumer="score",
        failed_at=NOW,
    ),
]


def test_every_event_type_has_an_example() -> None:
    assert {type(e) for e in EXAMPLES} == set(EVENT_TYPES)


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: type(e).__name__)
def test_round_trip(event: msgspec.Struct) -> None:
    codec = EventCodec(type(event))
    assert codec.decode(codec.encode(event)) == event


def _transaction_json(**overrides: str) -> bytes:
    fields = {
        "transaction_id": '"t1"',
        "account_id": '"a1"',
        "event_time": '"2026-11-27T12:00:00Z"',
        "features": '{"amount": 1.5}',
    }
    fields.update(overrides)
    body = ",".join(f'"{k}":{v}' for k, v in fields.items() if v is not None)
    return ("{" + body + "}").encode()


@pytest.mark.parametrize(
    ("raw", "reason", "names"),
    [
        (b"\x00\xff\xfe garbage", "invalid_json", "malformed"),
        (b"", "empty", "no value"),
        (b"[1, 2, 3]", "validation", "object"),
        (_transaction_json(account_id="42"), "validation", "account_id"),
        (_transaction_json(event_time='"yesterday"'), "validation", "event_time"),
        (_transaction_json(event_time='"2026-11-27T12:00:00"'), "validation", "timezone"),
        (_transaction_json(features='{"amount": [1]}'), "feature_spec", "features"),
        (
            b'{"transaction_id":"t1","event_time":"2026-11-27T12:00:00Z","features":{}}',
            "validation",
            "account_id",
        ),
        (_transaction_json(features='{"amount": NaN}'), "invalid_json", "malformed"),
        (_transaction_json(features='{"amount": 1e999}'), "non_finite", "out of range - at `$.features"),
        (_transaction_json(schema_version="2"), "unsupported_schema_version", "Invalid enum value 2"),
        (_transaction_json(schema_version='"1"'), "unsupported_schema_version", "schema_version"),
    ],
)
def test_bad_transactions_raise_one_error_naming_the_reason(raw: bytes, reason: str, names: str) -> None:
    with pytest.raises(DecodeError) as caught:
        EventCodec(Transaction).decode(raw)
    assert caught.value.reason == reason
    assert names in str(caught.value)


def test_a_missing_value_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="no value"):
        EventCodec(Label).decode(None)


def test_labels_outside_zero_one_are_rejected() -> None:
    raw = b'{"transaction_id":"t1","label":2,"label_time":"2026-11-27T12:00:00Z"}'
    with pytest.raises(DecodeError, match="label"):
        EventCodec(Label).decode(raw)


def test_a_non_finite_score_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="finite"):
        Score(
            transaction_id="t1",
            account_id="a1",
            model_name="m",
            model_version="v",
            role="champion",
            score=0.5,
            threshold=0.5,
            decision=False,
            event_time=NOW,
            scored_at=NOW,
            latency_ms=float("inf"),
        )


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda t: t.__name__)
def test_no_third_party_exception_escapes_on_mutated_input(event_type: type[msgspec.Struct]) -> None:
    """Random byte flips, truncations and insertions of valid payloads only ever raise DecodeError."""
    codec = EventCodec(event_type)
    valid = codec.encode(next(e for e in EXAMPLES if type(e) is event_type))
    rng = random.Random(7)
    for _ in range(3000):
        raw = bytearray(valid)
        for _ in range(rng.randint(1, 4)):
            action = rng.random()
            position = rng.randrange(len(raw))
            if action < 0.4:
                raw[position] = rng.randrange(256)
            elif action < 0.7:
                del raw[position:]
                if not raw:
                    break
            else:
                raw[position:position] = rng.choice([b"NaN", b"1e999", b'"', b"null", b"-", b"\xc3"])
        with contextlib.suppress(DecodeError):
            codec.decode(bytes(raw))
