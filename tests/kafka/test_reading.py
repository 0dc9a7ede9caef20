"""The one topic reader against a real broker: from the beginning, the end or a time, to the end."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from streaming.config import KafkaSettings
from streaming.errors import KafkaUnavailableError
from streaming.kafka.reading import TopicReader, end_offsets
from streaming.kafka.transport import make_producer
from tests.clients import ON_BOTH_CLIENTS

pytestmark = [pytest.mark.integration, ON_BOTH_CLIENTS]


def write(kafka: KafkaSettings, topic: str, values: list[tuple[int, int]]) -> None:
    """``(partition, timestamp_ms)`` records, valued ``"{partition}@{timestamp_ms}"``."""
    producer = make_producer(kafka)
    try:
        for partition, timestamp_ms in values:
            producer.send(
                topic,
                value=f"{partition}@{timestamp_ms}".encode(),
                partition=partition,
                timestamp_ms=timestamp_ms,
            )
        producer.flush(timeout=30)
    finally:
        producer.close()


def values(records: list) -> list[str]:
    return [record.value.decode() for record in records]


def test_read_to_end_stops_at_the_end_it_saw_and_the_next_poll_continues(
    kafka_settings: KafkaSettings, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory("reading", partitions=3)
    write(kafka_settings, topic, [(p, 1_000 + i) for i in range(50) for p in range(3)])
    with TopicReader(kafka_settings, topic) as reader:
        assert reader.starts == {0: 0, 1: 0, 2: 0} and reader.ends == {0: 50, 1: 50, 2: 50}
        first = list(reader.read_to_end(timeout_s=30, max_records=7))
        assert len(first) == 150 and reader.caught_up()
        for p in range(3):  # per partition, in offset order
            assert [r.offset for r in first if r.partition == p] == list(range(50))
        write(kafka_settings, topic, [(1, 9_000), (2, 9_001)])
        assert len(list(reader.read_to_end(timeout_s=30))) == 2  # to the new end
        assert reader.ends == {0: 50, 1: 51, 2: 51}
        assert list(reader.read_to_end(timeout_s=30)) == []  # nothing new: returns at once
    assert end_offsets(kafka_settings, topic) == {0: 50, 1: 51, 2: 51}


def test_read_to_end_leaves_what_was_written_after_it_began_for_the_next_poll(
    kafka_settings: KafkaSettings, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory("reading", partitions=1)
    write(kafka_settings, topic, [(0, 1_000 + i) for i in range(10)])
    with TopicReader(kafka_settings, topic) as reader:
        records = reader.read_to_end(timeout_s=30, max_records=3)
        first = next(records)  # the end is taken when reading starts: 10
        write(kafka_settings, topic, [(0, 2_000 + i) for i in range(5)])  # later fetches see these
        assert [r.offset for r in [first, *records]] == list(range(10))
        later: list = []
        for _ in range(20):
            later += reader.poll(timeout_ms=500)
            if len(later) >= 5:
                break
        assert [r.offset for r in later] == list(range(10, 15)), "nothing skipped, nothing read twice"


def test_a_reader_starts_at_a_time_or_at_the_end(
    kafka_settings: KafkaSettings, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory("reading", partitions=2)
    write(kafka_settings, topic, [(0, 1_000), (0, 2_000), (0, 3_000), (1, 1_500)])
    with TopicReader(kafka_settings, topic, start=2_000) as reader:
        assert reader.starts == {0: 1, 1: 1}  # partition 1 has nothing at or after 2 s: its end
        assert values(list(reader.read_to_end())) == ["0@2000", "0@3000"]
    with TopicReader(kafka_settings, topic, start="end") as reader:
        assert reader.caught_up() and list(reader.read_to_end()) == []
        assert list(reader.records(follow=False)) == []


def test_a_missing_topic_is_a_clear_error(kafka_settings: KafkaSettings) -> None:
    with pytest.raises(KafkaUnavailableError, match="does not exist"):
        TopicReader(kafka_settings, "no-such-topic-here", topic_timeout_s=1)
