"""Malformed transactions of twenty-odd kinds, for the poison-message and contract tests."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable

from streaming.events import encode_event
from streaming.simulation.generator import TransactionSimulator, to_transactions

MB = 1024 * 1024


def valid_transactions(seed: int, n: int) -> list[dict[str, object]]:
    frame = TransactionSimulator(seed=seed).generate(n)
    return [json.loads(encode_event(t)) for t in to_transactions(frame)]


def _json(document: object) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def malformed_kinds(template: dict[str, object], rng: random.Random) -> dict[str, Callable[[], bytes | None]]:
    """Name -> a maker of one malformed transaction value (``None``: a record without a value)."""

    def changed(**fields: object) -> bytes:
        return _json({**template, "transaction_id": f"bad-{rng.random()}", **fields})

    def features(**values: object) -> bytes:
        return changed(features={**template["features"], **values})  # type: ignore[dict-item]

    def nested(depth: int) -> bytes:
        return b'{"schema_version":1,"junk":' + b"[" * depth + b"]" * depth + b"}"

    return {
        "empty": lambda: b"",
        "no_value": lambda: None,
        "binary": lambda: rng.randbytes(rng.randint(1, 4096)),
        "invalid_utf8": lambda: b'{"transaction_id":"\xff\xfe","account_id":"a"}',
        "truncated_json": lambda: changed()[: rng.randint(1, 60)],
        "json_array": lambda: b"[1, 2, 3]",
        "json_scalar": lambda: b"42",
        "missing_field": lambda: _json({k: v for k, v in json.loads(changed()).items() if k != "account_id"}),
        "number_as_string": lambda: features(amount="12.5"),
        "category_as_number": lambda: features(channel=7),
        "missing_feature": lambda: changed(features={"amount": 1.0}),
        "nan_literal": lambda: re.sub(rb'"amount":[^,}]+', b'"amount":NaN', changed()),
        "overflow_number": lambda: re.sub(rb'"amount":[^,}]+', b'"amount":1e999', changed()),
        "unknown_schema_version": lambda: changed(schema_version=9),
        "naive_event_time": lambda: changed(event_time="2026-01-01T00:00:00"),
        "id_600kb": lambda: changed(transaction_id="x" * 600_000),
        "empty_id": lambda: changed(account_id=""),
        "long_category": lambda: features(merchant_category="m" * 10_000),
        "nested_100k": lambda: nested(100_000),
        "nested_1k_in_features": lambda: re.sub(
            rb'"features":\{[^}]*\}', b'"features":' + b"[" * 1000 + b"]" * 1000, changed()
        ),
        "two_megabytes": lambda: changed(padding="p" * (2 * MB - 1000)),
        "just_over_the_limit": lambda: changed(padding="p" * (MB + 10)),
    }
