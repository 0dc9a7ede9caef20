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
