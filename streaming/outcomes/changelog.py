"""The join stores' changelog topic: what a checkpoint changed, and how a store catches up.

Partition p of the compacted changelog belongs to store p. A checkpoint produces each
changed key (``None``: a deletion, a tombstone) and the store's input offsets, flushes, and
only then is the store committed, with the changelog position after its records. A store
opened on a disk that lacks it, or holds an older copy, replays the changelog from that
position to the end before the partition is processed.
"""

from __future__ import annotations

from collections.abc import Mapping

from streaming.config import KafkaSettings
from streaming.errors import DeliveryError
from streaming.kafka.native import NativeDeliveryError, NativeProducer
from streaming.kafka.reading import TopicReader
from streaming.outcomes.store import PartitionStore

_APPLY_EVERY = 10_000  # records per RocksDB batch while replaying


def catch_up(
    store: PartitionStore, kafka: KafkaSettings, topic: str, partition: int, timeout_s: float = 600.0
) -> int:
    """Replay ``topic``'s partition into ``store`` from where it stopped; the records applied."""
    applied = 0
    start = store.changelog_position
    with TopicReader(
        kafka, topic, {partition: start}, partitions=[partition], topic_timeout_s=30.0
    ) as reader:
        batch: list[tuple[bytes, bytes | None]] = []
        position = start
        for record in reader.read_to_end(timeout_s=timeout_s, max_records=_APPLY_EVERY):
            batch.append((record.key, record.value))
            position = record.offset + 1
            if len(batch) >= _APPLY_EVERY:
                applied += store.apply(batch, position)
                batch.clear()
        if batch or position != start:
            applied += store.apply(batch, position)
    return applied


def produce_changes(
    producer: NativeProducer,
    topic: str,
    changes: Mapping[int, Mapping[bytes, bytes | None]],
    timeout_s: float,
) -> dict[int, int]:
    """Produce each partition's changes, flush, and return the changelog position after each
    partition's records. Raises :class:`DeliveryError` unless every record landed."""
    failures = producer.failures
    try:
        for partition, records in changes.items():
            for key, value in records.items():
                producer.send(topic, key, value, partition)
        producer.flush(timeout_s)
    except NativeDeliveryError as exc:
        raise DeliveryError(f"the join's changelog was not written ({exc}); offsets not committed") from exc
    if producer.failures > failures:
        raise DeliveryError(
            f"the join's changelog was not written ({producer.failures - failures} records refused, "
            "see the delivery errors); offsets not committed"
        )
    positions = {}
    for partition, records in changes.items():
        position = producer.next_offset(topic, partition) if records else None
        if position is None:
            raise DeliveryError(
                f"the join's changelog for partition {partition} was not acknowledged; offsets not committed"
            )
        positions[partition] = position
    return positions
