"""schemas/ is generated from the event definitions and must agree with them."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
import yaml

from streaming import events, schema_export
from streaming.events import EVENT_TYPES, Label
from streaming.schema_export import schema_differences, schema_file_name

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"


def test_committed_schemas_match_the_code() -> None:
    assert schema_differences(SCHEMAS) == [], "run `driftloop schemas generate` and commit schemas/"


def test_a_field_changed_in_code_only_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    class Label(events._Event, frozen=True, kw_only=True):  # same name, one more field
        """Delayed ground truth for one transaction: 1 is fraud, 0 is legitimate."""

        transaction_id: str
        label: int
        label_time: events.AwareDatetime
        source: str

    changed = tuple(Label if t.__name__ == "Label" else t for t in EVENT_TYPES)
    monkeypatch.setattr(schema_export, "EVENT_TYPES", changed)
    assert schema_differences(SCHEMAS) == [
        "label.v1.schema.json: differs from the event definitions in streaming/events.py"
    ]


def test_schema_files_validate_real_payloads() -> None:
    schema = json.loads((SCHEMAS / schema_file_name(Label)).read_text())
    assert schema["required"] == ["transaction_id", "label", "label_time"]
    assert schema["properties"]["label"] == {"type": "integer", "minimum": 0, "maximum": 1}


def test_asyncapi_lists_every_topic_and_message() -> None:
    document = yaml.safe_load((SCHEMAS / "asyncapi.yaml").read_text())
    addresses = {c["address"] for c in document["channels"].values()}
    assert {
        "transactions",
        "labels",
        "scores",
        "drift.events",
        "model.updates",
        "transactions.dlq",
        "driftloop.state",
    } <= addresses
    messages = document["components"]["messages"]
    assert set(messages) == {t.__name__ for t in EVENT_TYPES}
    for message in messages.values():
        assert (SCHEMAS / message["payload"]["$ref"].removeprefix("./")).is_file()


def test_generated_schema_describes_the_struct() -> None:
    for event_type in EVENT_TYPES:
        schema = json.loads((SCHEMAS / schema_file_name(event_type)).read_text())
        fields = {f.encode_name for f in msgspec.structs.fields(event_type)}
        assert set(schema["properties"]) == fields


def test_a_transaction_is_valid_by_the_published_schema_exactly_when_the_scorer_decodes_it() -> None:
    """The published contract is the scorer's: any JSON document either both accept or both
    refuse. (Numbers beyond a float's range are the one thing JSON Schema cannot express.)"""
    import math
    import random

    import jsonschema

    from streaming.config import Settings
    from streaming.errors import DecodeError
    from streaming.events import EventCodec, transaction_type
    from tests.malformed import malformed_kinds, valid_transactions

    settings = Settings()
    codec = EventCodec(transaction_type(settings.feature_spec(), settings.messages.limits()))
    schema = json.loads((SCHEMAS / "transaction.v1.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    valid = valid_transactions(5, 50)
    cases = [("valid", json.dumps(v).encode()) for v in valid]
    rng = random.Random(5)
    for _ in range(5):
        cases += [(k, make()) for k, make in malformed_kinds(valid[0], rng).items()]

    def strict_json(raw: bytes) -> object:
        def number(text: str) -> float:
            value = float(text)
            if not math.isfinite(value):
                raise ValueError(f"{text} is not a finite number")
            return value

        def constant(name: str) -> object:
            raise ValueError(f"{name} is not JSON")

        return json.loads(raw, parse_float=number, parse_constant=constant)

    compared = 0
    for kind, raw in cases:
        if raw is not None and len(raw) > settings.messages.max_bytes:
            assert f"at most {settings.messages.max_bytes:,} bytes" in schema["$comment"]
            continue  # a size, stated in the schema's $comment: JSON Schema has no keyword for it
        try:
            document = strict_json(raw or b"")
        except (ValueError, RecursionError):
            continue  # not JSON (or too deep for Python's parser): no schema says anything of it
        try:
            codec.decode(raw)
            decoded = True
        except DecodeError:
            decoded = False
        assert validator.is_valid(document) == decoded, (kind, (raw or b"")[:300])
        compared += 1
    assert compared >= 100, compared  # 50 valid, 11 JSON-parseable malformed kinds x 5
