"""The librdkafka clients' kafka-python surface, where no broker is needed."""

from __future__ import annotations

import confluent_kafka
import pytest
from kafka import TopicPartition
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.errors import KafkaError, MessageSizeTooLargeError, TopicAuthorizationFailedError

from streaming.config import KafkaSettings
from streaming.errors import ConfigError
from streaming.kafka.confluent import ConfluentConsumer, ConfluentProducer, kafka_error
from streaming.kafka.transport import make_consumer, make_producer

NOWHERE = KafkaSettings(bootstrap_servers="127.0.0.1:1", client="confluent-kafka")


def test_kafka_client_chooses_the_implementation() -> None:
    consumer = make_consumer(NOWHERE, None)
    producer = make_producer(NOWHERE)
    try:
        assert isinstance(consumer, ConfluentConsumer) and isinstance(producer, ConfluentProducer)
    finally:
        consumer.close()
        producer.close(timeout=0)


def test_an_option_librdkafka_has_no_equivalent_for_is_refused_not_ignored() -> None:
    with pytest.raises(ConfigError, match=r"consumer option consumer_timeout_ms=5.*kafka-python"):
        ConfluentConsumer(NOWHERE, "g", consumer_timeout_ms=5)
    with pytest.raises(ConfigError, match="producer option retry_backoff_ms"):
        ConfluentProducer(NOWHERE, retry_backoff_ms=5)
    with pytest.raises(ConfigError, match="never auto-commit"):
        ConfluentConsumer(NOWHERE, "g", enable_auto_commit=True)


def test_kafka_python_option_names_are_translated() -> None:
    consumer = ConfluentConsumer(
        NOWHERE,
        "g",
        max_poll_records=7,
        session_timeout_ms=6000,
        partition_assignment_strategy=[RangePartitionAssignor],
    )
    try:
        assert consumer._max_records == 7 and consumer._assignor == "range"
    finally:
        consumer.close()


def test_a_reader_without_a_group_may_not_subscribe() -> None:
    reader = ConfluentConsumer(NOWHERE, None)
    try:
        with pytest.raises(ConfigError, match="assign"):
            reader.subscribe(["t"])
        reader.assign([TopicPartition("t", 0), TopicPartition("t", 1)])
        reader.assign([TopicPartition("t", 1)])
        assert reader.assignment() == {TopicPartition("t", 1)}
        reader.pause(TopicPartition("t", 1))
        assert reader.paused() == {TopicPartition("t", 1)}
        reader.resume(TopicPartition("t", 1))
        assert reader.paused() == set()
    finally:
        reader.close()


def test_librdkafka_errors_become_kafka_python_errors_of_the_same_kind() -> None:
    refused = kafka_error(
        confluent_kafka.KafkaError(confluent_kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED), "read t"
    )
    assert isinstance(
        refused, TopicAuthorizationFailedError
    ) and "read t: Broker: Topic authorization failed" in str(refused)
    too_large = kafka_error(confluent_kafka.KafkaError(confluent_kafka.KafkaError.MSG_SIZE_TOO_LARGE))
    assert isinstance(too_large, MessageSizeTooLargeError)
    other = kafka_error(confluent_kafka.KafkaError(confluent_kafka.KafkaError._TRANSPORT))
    assert type(other) is KafkaError
