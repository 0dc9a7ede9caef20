"""Generate ``schemas/`` from the event definitions: JSON Schema files and an AsyncAPI document.

``driftloop schemas generate`` writes them; ``driftloop schemas generate --check`` (and the
test suite) fails when the files on disk and the code disagree.

The Transaction and Label schemas are those of the decoders the consumers use, built from
the configured feature spec and ``messages`` limits: every feature named and required
with its type, ids and categories bounded, extra features allowed or not. A message valid
by the published schema is one the scorer scores. With your own features, generate your
own: ``driftloop -c driftloop.toml schemas generate --out my-schemas``.
"""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

import msgspec
import yaml

from streaming import __version__
from streaming.config import Settings, TopicNames
from streaming.events import EVENT_TYPES, SCHEMA_VERSION, Label, Transaction, label_type, transaction_type
from streaming.topics import topic_catalogue

SCHEMA_BASE_URI = "https://driftloop.dev/schemas/"
ASYNCAPI_FILE = "asyncapi.yaml"


def schema_file_name(event_type: type[msgspec.Struct]) -> str:
    """``DriftEvent`` -> ``drift_event.v1.schema.json``."""
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", event_type.__name__).lower()
    return f"{snake}.v{SCHEMA_VERSION}.schema.json"


def json_schema(event_type: type[msgspec.Struct]) -> dict[str, Any]:
    """A standalone JSON Schema (draft 2020-12) for one event type."""
    generated = msgspec.json.schema(event_type)
    definitions = generated["$defs"]
    root = dict(definitions.pop(event_type.__name__))
    document: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_BASE_URI + schema_file_name(event_type),
        **root,
    }
    if definitions:
        document["$defs"] = definitions
    return _normalised(_rewrite_refs(document, event_type.__name__))


_NULL = {"type": "null"}


def _normalised(node: Any) -> Any:
    """The schema in one canonical form, whichever msgspec release generated it.

    Two things changed between releases: how docstring indentation is stripped from a
    ``description`` (0.23 dedents, 0.18 kept it), and where ``null`` goes in the ``anyOf``
    of an optional field (0.18 first, 0.23 last). Descriptions are cleaned as
    :func:`inspect.cleandoc` cleans a docstring, and ``null`` goes last.
    """
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                out[key] = inspect.cleandoc(value)
            elif key == "anyOf" and isinstance(value, list):
                out[key] = [_normalised(v) for v in sorted(value, key=lambda v: v == _NULL)]
            else:
                out[key] = _normalised(value)
        return out
    if isinstance(node, list):
        return [_normalised(item) for item in node]
    return node


def _rewrite_refs(node: Any, root_name: str) -> Any:
    if isinstance(node, dict):
        return {
            key: ("#" if value == f"#/$defs/{root_name}" else value)
            if key == "$ref"
            else _rewrite_refs(value, root_name)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(item, root_name) for item in node]
    return node


def asyncapi_document(names: TopicNames | None = None) -> dict[str, Any]:
    """An AsyncAPI 3.0 document listing every topic and the message it carries."""
    names = names or TopicNames()
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for topic in topic_catalogue(names):
        channel_id = topic.name.replace(".", "_")
        channel: dict[str, Any] = {
            "address": topic.name,
            "description": topic.description,
            "bindings": {
                "kafka": {
                    "partitions": topic.partitions,
                    "replicas": topic.replication_factor,
                    "topicConfiguration": {"cleanup.policy": [topic.configs.get("cleanup.policy", "delete")]},
                    "bindingVersion": "0.5.0",
                }
            },
        }
        if topic.message is not None:
            name = topic.message.__name__
            messages[name] = {
                "name": name,
                "title": name,
                "summary": (topic.message.__doc__ or "").strip().splitlines()[0],
                "contentType": "application/json",
                "payload": {"$ref": f"./{schema_file_name(topic.message)}"},
                "bindings": {
                    "kafka": {"key": {"type": "string", "description": topic.key}, "bindingVersion": "0.5.0"}
                },
            }
            channel["messages"] = {name: {"$ref": f"#/components/messages/{name}"}}
        channels[channel_id] = channel
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "driftloop",
            "version": __version__,
            "description": (
                "Topics driftloop reads and writes. Payloads are JSON; each carries "
                f"schema_version {SCHEMA_VERSION}. Generated by `driftloop schemas generate`."
            ),
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "components": {"messages": messages},
    }


def published_types(settings: Settings | None = None) -> list[type[msgspec.Struct]]:
    """The event types as the consumers decode them under ``settings`` (default: the defaults)."""
    settings = settings or Settings()
    limits = settings.messages.limits()
    typed: dict[type[msgspec.Struct], type[msgspec.Struct]] = {
        Transaction: transaction_type(settings.feature_spec(), limits),
        Label: label_type(limits),
    }
    return [typed.get(t, t) for t in EVENT_TYPES]


def rendered_files(settings: Settings | None = None) -> dict[str, str]:
    """File name -> exact text of every file under ``schemas/``."""
    settings = settings or Settings()
    files = {}
    for event_type in published_types(settings):
        document = json_schema(event_type)
        if event_type.__name__ in ("Transaction", "Label"):  # what driftloop reads from producers
            document["$comment"] = (
                f"A message's value is at most {settings.messages.max_bytes:,} bytes (messages.max_bytes)."
            )
        files[schema_file_name(event_type)] = json.dumps(document, indent=2, sort_keys=False) + "\n"
    files[ASYNCAPI_FILE] = "# Generated by `driftloop schemas generate`; do not edit.\n" + yaml.safe_dump(
        asyncapi_document(), sort_keys=False, width=100
    )
    return files


def write_schemas(directory: Path, settings: Settings | None = None) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered_files(settings).items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


def schema_differences(directory: Path, settings: Settings | None = None) -> list[str]:
    """Names of files under ``directory`` that are missing, stale or no longer generated."""
    expected = rendered_files(settings)
    problems = []
    for name, text in expected.items():
        path = directory / name
        if not path.exists():
            problems.append(f"{name}: missing")
        elif path.read_text() != text:
            problems.append(f"{name}: differs from the event definitions in streaming/events.py")
    generated_here = {p.name for p in directory.glob("*.schema.json")} | (
        {ASYNCAPI_FILE} if (directory / ASYNCAPI_FILE).exists() else set()
    )
    for stale in sorted(generated_here - expected.keys()):
        problems.append(f"{stale}: no event defines it any more")
    return problems
