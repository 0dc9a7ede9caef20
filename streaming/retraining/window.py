"""The training window: recent transactions with their labels, read from Kafka.

Kafka is the source of truth. The window is every transaction whose Kafka timestamp is
within ``retraining.window_s`` before ``end`` (default: now), read up to the end offsets at
the time of the read, with the label of each from the ``outcomes`` of `driftloop join`
written since the window began (whatever the label's delay: a label joined today for a
transaction of the window counts; the join has already refused late, duplicate and
unknown ones). Unlabelled transactions are left out (and counted), and only the newest
``retraining.max_rows`` labelled rows are kept. What was read (offset ranges per
partition, counts) is returned as lineage for the dataset snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from kafka.errors import KafkaError

from streaming.config import Settings
from streaming.errors import DecodeError, KafkaUnavailableError
from streaming.events import DriftEvent, EventCodec, Outcome, transaction_type
from streaming.kafka.reading import TopicReader


@dataclass
class TrainingWindow:
    """Labelled rows (envelope, features, ``label``) and what was read to get them."""

    frame: pd.DataFrame
    lineage: dict[str, Any] = field(default_factory=dict)


def fetch_training_window(
    settings: Settings, end: datetime | None = None, timeout_s: float = 120.0
) -> TrainingWindow:
    """Read the window; raise KafkaUnavailableError if the brokers cannot be read."""
    end = end or datetime.now(UTC)
    start_ms = int((end.timestamp() - settings.retraining.window_s) * 1000)
    spec = settings.feature_spec()
    topics = settings.topics
    transactions, tx_ranges, tx_bad = _read_range(
        settings,
        topics.transactions,
        start_ms,
        EventCodec(transaction_type(spec, settings.messages.limits()), settings.messages.max_bytes),
        timeout_s,
    )
    outcomes, outcome_ranges, outcome_bad = _read_range(
        settings, topics.outcomes, start_ms, EventCodec(Outcome, settings.messages.max_bytes), timeout_s
    )
    rows = []
    values = spec.values
    names = spec.names
    for partition, offset, t in transactions:
        row = dict(zip(names, values(t.features), strict=True))
        row.update(
            transaction_id=t.transaction_id,
            account_id=t.account_id,
            event_time=t.event_time,
            partition=partition,
            offset=offset,
        )
        rows.append(row)
    frame = pd.DataFrame(
        rows, columns=["transaction_id", "account_id", "event_time", *names, "partition", "offset"]
    )
    truth = {o.transaction_id: o.label for _, _, o in outcomes}  # one label per transaction
    frame["label"] = frame["transaction_id"].map(truth)
    unlabelled = int(frame["label"].isna().sum())
    frame = frame.dropna(subset=["label"]).astype({"label": int})
    frame = frame.sort_values(["event_time", "partition", "offset"], kind="stable").tail(
        settings.retraining.max_rows
    )
    frame = frame.drop(columns=["partition", "offset"]).reset_index(drop=True)
    lineage = {
        "window_start": datetime.fromtimestamp(start_ms / 1000, UTC).isoformat(),
        "window_end": end.isoformat(),
        "transactions": {"topic": topics.transactions, "offsets": tx_ranges, "undecodable": tx_bad},
        "outcomes": {"topic": topics.outcomes, "offsets": outcome_ranges, "undecodable": outcome_bad},
        "transactions_read": len(transactions),
        "outcomes_read": len(outcomes),
        "unlabelled": unlabelled,
        "rows": len(frame),
    }
    return TrainingWindow(frame, lineage)


def _read_range(
    settings: Settings, topic: str, start_ms: int, codec: EventCodec[Any], timeout_s: float
) -> tuple[list[tuple[int, int, Any]], dict[str, list[int]], int]:
    """Every decodable record of ``topic`` from ``start_ms`` to the current end, per partition."""
    try:
        with TopicReader(
            settings.kafka, topic, start_ms, topic_timeout_s=30.0, request_timeout_ms=30_000
        ) as reader:
            records: list[tuple[int, int, Any]] = []
            undecodable = 0
            for record in reader.read_to_end(timeout_s, max_records=5000):
                try:
                    records.append((record.partition, record.offset, codec.decode(record.value)))
                except DecodeError:
                    undecodable += 1  # the scorer already dead-lettered it
            ranges = {str(p): [reader.starts[p], end] for p, end in reader.ends.items()}
            return records, ranges, undecodable
    except KafkaError as exc:
        raise KafkaUnavailableError(f"reading {topic} failed: {exc}") from exc


def find_drift_event(settings: Settings, event_id: str, timeout_s: float = 30.0) -> DriftEvent | None:
    """The drift event ``event_id`` on ``drift.events`` (the newest copy: a replayed event has
    the same id), or None when it is not there."""
    codec = EventCodec(DriftEvent, settings.messages.max_bytes)
    found = None
    try:
        with TopicReader(settings.kafka, settings.topics.drift_events, topic_timeout_s=10.0) as reader:
            for record in reader.read_to_end(timeout_s, max_records=5000):
                try:
                    event = codec.decode(record.value)
                except DecodeError:
                    continue
                if event.event_id == event_id:
                    found = event
    except KafkaError as exc:
        raise KafkaUnavailableError(f"reading {settings.topics.drift_events} failed: {exc}") from exc
    return found
