"""Events travel through a real Kafka broker, on both clients, and come back identical."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import kafka
import pytest

from streaming.config import KafkaSettings, TopicNames
from streaming.events import EventCodec, Transaction
from streaming.kafka.clients import ensure_topics, make_admin
from streaming.kafka.transport import make_consumer, make_producer
from streaming.topics import topic_catalogue
from tests.clients import ON_BOTH_CLIENTS

pytestmark = pytest.mark.integration


def test_kafka_python_is_recent_enough() -> None:
    assert tuple(int(p) for p in kafka.__version__.split(".")[:3]) >= (3, 0, 12)


@ON_BOTH_CLIENTS
def test_transactions_round_trip_through_the_broker(
    kafka_settings: KafkaSettings, topic_factory, group_id: str
) -> None:
    topic = topic_factory("transactions", partitions=4)
    codec = EventCodec(Transaction)
    sent = [
        Transaction(
            transaction_id=f"t{i}",
            account_id=f"a{i % 7}",
            event_time=datetime(2026, 11, 27, 12, 0, i % 60, tzinfo=UTC),
            features={"amount": float(i), "merchant_category": "grocery"},
        )
        for i in range(200)
    ]
    producer = make_producer(kafka_settings)
    for event in sent:
        producer.send(topic, key=event.account_id.encode(), value=codec.encode(event))
    producer.flush(timeout=30)
    producer.close()

    consumer = make_consumer(kafka_settings, group_id, topic)
    received: list[Transaction] = []
    deadline = time.monotonic() + 60
    while len(received) < len(sent) and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            received.extend(codec.decode(r.value) for r in records)
    consumer.commit()
    consumer.close()
    assert sorted(received, key=lambda e: e.transaction_id) == sorted(sent, key=lambda e: e.transaction_id)


@ON_BOTH_CLIENTS
def test_commits_are_manual_and_a_new_member_resumes_after_them(
    kafka_settings: KafkaSettings, topic_factory, group_id: str
) -> None:
    topic = topic_factory("resume")
    producer = make_producer(kafka_settings)
    for i in range(10):
        producer.send(topic, value=str(i).encode())
    producer.flush(timeout=30)

    first = make_consumer(kafka_settings, group_id, topic, max_poll_records=4)
    seen: list[bytes] = []
    deadline = time.monotonic() + 60
    while len(seen) < 4 and time.monotonic() < deadline:
        for records in first.poll(timeout_ms=500, max_records=4).values():
            seen.extend(r.value for r in records)
    first.commit()  # commits exactly what was polled: the first 4
    more = []
    while not more and time.monotonic() < deadline:  # polled but never committed
        for records in first.poll(timeout_ms=500).values():
            more.extend(r.value for r in records)
    first.close(autocommit=False)

    second = make_consumer(kafka_settings, group_id, topic)
    rest: list[bytes] = []
    while len(rest) < 6 and time.monotonic() < deadline:
        for records in second.poll(timeout_ms=500).values():
            rest.extend(r.value for r in records)
    second.close(autocommit=False)
    assert seen == [b"0", b"1", b"2", b"3"]
    assert more, "the first consumer should have polled beyond its commit"
    assert rest == [str(i).encode() for i in range(4, 10)]


@ON_BOTH_CLIENTS
def test_catalogue_topics_are_created_once_with_their_cleanup_policy(
    kafka_settings: KafkaSettings, unique_name
) -> None:
    names = TopicNames(**{field: unique_name(field) for field in TopicNames.model_fields})
    catalogue = topic_catalogue(names, partitions=2)
    assert sorted(ensure_topics(kafka_settings, catalogue)) == sorted(t.name for t in catalogue)
    assert ensure_topics(kafka_settings, catalogue) == []
    admin = make_admin(kafka_settings)
    try:
        described = {t["name"]: t for t in admin.describe_topics([names.transactions, names.model_updates])}
        assert len(described[names.transactions]["partitions"]) == 2
        configs = admin.describe_configs(
            config_resources=[kafka.admin.ConfigResource("TOPIC", names.model_updates)]
        )
    finally:
        admin.close()
    assert "compact" in repr(configs)
