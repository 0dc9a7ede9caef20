"""``driftloop events tail TOPIC``: follow one of driftloop's topics, readable or as JSON lines.

Alert consumers, runbooks and newcomers need to see what driftloop publishes without
writing a consumer: drift events, model updates (retraining outcomes, canary steps,
promotions), dead letters, scores.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from streaming.cli._common import app, kafka_settings_of
from streaming.errors import ConfigError

if TYPE_CHECKING:
    from streaming.config import TopicNames
    from streaming.topics import TopicSpec

events_app = typer.Typer(
    help="Follow driftloop's topics: drift events, model updates, dead letters, scores.", no_args_is_help=True
)
app.add_typer(events_app, name="events")


@events_app.command("tail")
def tail(
    ctx: typer.Context,
    topic: Annotated[
        str,
        typer.Argument(
            help="A topic name (drift.events) or its setting (drift_events, model-updates, transactions-dlq)."
        ),
    ],
    json_lines: Annotated[
        bool,
        typer.Option(
            "--json", help="One JSON object per record: topic, partition, offset, time, key, value."
        ),
    ] = False,
    from_end: Annotated[
        bool, typer.Option("--from-end", help="Only records that arrive from now on.")
    ] = False,
    follow: Annotated[
        bool, typer.Option(help="Keep waiting for new records; --no-follow stops at the current end.")
    ] = True,
    limit: Annotated[int, typer.Option(min=0, help="Stop after this many records (0: no limit).")] = 0,
) -> None:
    """Print the records of TOPIC from the beginning (or --from-end) and follow it until Ctrl-C.

    Each record is decoded as the event its topic carries (see `driftloop topics list`);
    one that does not decode is shown with the reason and its bytes, never skipped.
    """
    from streaming.events import EventCodec
    from streaming.kafka.reading import TopicReader
    from streaming.topics import topic_catalogue

    settings = kafka_settings_of(ctx)
    spec = find_topic(topic_catalogue(settings.topics), settings.topics, topic)
    assert spec.message is not None
    codec = EventCodec(spec.message)
    shown = 0
    with TopicReader(settings.kafka, spec.name, "end" if from_end else "beginning") as reader:
        try:
            for record in reader.records(follow):
                typer.echo(record_json(record, codec) if json_lines else record_line(record, codec))
                shown += 1
                if limit and shown >= limit:
                    break
        except KeyboardInterrupt:
            pass


def find_topic(catalogue: list[TopicSpec], names: TopicNames, wanted: str) -> TopicSpec:
    """The catalogue entry for a topic name or its setting name (``-`` or ``_``)."""
    by_setting = {field: getattr(names, field) for field in type(names).model_fields}
    name = by_setting.get(wanted.replace("-", "_"), wanted)
    for spec in catalogue:
        if spec.name == name:
            if spec.message is None:
                raise ConfigError(f"{name} holds driftloop's internal state, not events; nothing to show")
            return spec
    choices = ", ".join(s.name for s in catalogue if s.message is not None)
    raise ConfigError(f"{wanted!r} is not one of driftloop's topics; choose one of {choices}")


def _decoded(record: Any, codec: Any) -> tuple[Any, str | None]:
    from streaming.errors import DecodeError

    try:
        return codec.decode(record.value), None
    except DecodeError as exc:
        return None, str(exc)


def _when(record: Any) -> str:
    return datetime.fromtimestamp(record.timestamp / 1000, UTC).isoformat(timespec="milliseconds")


def record_json(record: Any, codec: Any) -> str:
    """One JSON line: where the record is, and its value as JSON (or why it is not)."""
    import msgspec

    event, error = _decoded(record, codec)
    out: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": _when(record),
        "key": None if record.key is None else record.key.decode("utf-8", "replace"),
    }
    if error is None:
        out["value"] = msgspec.to_builtins(event)
    else:
        out["value"] = None
        out["error"] = error
        out["value_base64"] = base64.b64encode(record.value or b"").decode()
    return json.dumps(out, default=str)


def record_line(record: Any, codec: Any) -> str:
    """One readable line: time, partition/offset, and what the event says."""
    event, error = _decoded(record, codec)
    where = f"{_when(record)}  p{record.partition}@{record.offset}"
    if error is not None:
        preview = (record.value or b"")[:80]
        return f"{where}  undecodable: {error}  bytes={preview!r}"
    return f"{where}  {describe(event)}"


def describe(event: Any) -> str:
    """What an event says, in a line (fields that are unset are left out)."""
    kind = type(event).__name__
    if kind == "DriftEvent":
        moved = [s.column for s in event.explanation if s.moved]
        parts = [
            f"drift {event.signal} {event.status}" + (f" ({event.resolution})" if event.resolution else ""),
            f"detector={event.detector}",
            f"feature={event.feature}" if event.feature else "",
            f"severity={event.severity}",
            f"p={event.p_value:.2g}" if event.p_value is not None else "",
            f"model={event.model_name} {event.model_version}",
            f"partition={event.partition}" if event.partition is not None else "",
            f"moved={','.join(moved)}" if moved else "",
            f"episode={event.episode_id}" if event.episode_id and event.episode_id != event.event_id else "",
            f"id={event.event_id}",
        ]
    elif kind == "ModelUpdate":
        parts = [
            f"{event.status} {event.model_name} {event.version}",
            f"traffic={event.traffic_percent:g}%" if event.traffic_percent is not None else "",
            f"champion={event.champion_version}" if event.champion_version else "",
            f"drift_event={event.drift_event_id}" if event.drift_event_id else "",
            f"reasons={'; '.join(event.reasons)}" if event.reasons else "",
        ]
    elif kind == "DeadLetter":
        parts = [
            f"dead letter reason={event.reason}",
            f"from={event.source_topic}/{event.partition}@{event.offset}",
            f"error={event.error}",
        ]
    elif kind == "Score":
        parts = [
            f"score {event.transaction_id} {event.score:.4f}",
            "flagged" if event.decision else "passed",
            f"by {event.model_version} ({event.role})",
            f"{event.latency_ms:.0f} ms",
        ]
    elif kind == "Label":
        parts = [f"label {event.transaction_id} = {event.label}"]
    elif kind == "Transaction":
        features = " ".join(f"{k}={v}" for k, v in event.features.items())
        parts = [f"transaction {event.transaction_id} account={event.account_id} {features}"]
    else:  # a new event type: its fields as JSON
        import msgspec

        parts = [f"{kind} {msgspec.json.encode(event).decode()}"]
    return "  ".join(p for p in parts if p)
