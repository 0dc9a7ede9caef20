"""The scorer's Kafka transport: kafka-python, or librdkafka (confluent-kafka) for speed.

``kafka.client`` chooses. kafka-python's consume and produce cost 30-40 µs per record on
these machines, about 85% of the scorer's time; librdkafka's a few. Both transports give the
scorer the same small surface, in kafka-python's terms (its ``TopicPartition`` keys, its
exception types), so :class:`~streaming.scoring.service.ScoringService` has one code path:

- a **consumer** (:func:`make_scoring_consumer`): group membership with cooperative-sticky
  assignment and a :class:`kafka.ConsumerRebalanceListener` (``on_partitions_assigned``,
  ``_revoked``, ``_lost``), batched ``poll(timeout_ms, max_records)`` returning records per
  partition (each with ``topic``, ``partition``, ``offset``, ``timestamp``, ``key`` and
  ``value``), ``commit`` (raising :class:`kafka.errors.CommitFailedError` when a rebalance
  refused it), ``commit_async``, ``committed``, ``seek``, ``seek_to_beginning``,
  ``assignment``, ``partitions_for_topic``, ``group_metadata`` (for transactions),
  ``highwater`` and ``position`` (lag);
- an **output producer** (:func:`make_output_producer`): ``send(topic, key, value)`` that
  reports a failed delivery to the ``on_failure`` it was made with, ``flush(timeout)``,
  ``close(timeout)``, and kafka-python's transaction methods.

On librdkafka, rebalance callbacks run inside ``poll`` on the caller's thread (they may
block), and the consumer reads ``read_committed`` (its default), like driftloop's
kafka-python consumers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.errors import (
    CommitFailedError,
    GroupAuthorizationFailedError,
    KafkaError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailedError,
)

from streaming.config import KafkaSettings
from streaming.errors import KafkaUnavailableError
from streaming.kafka.clients import make_consumer, make_producer
from streaming.kafka.native import LibrdkafkaLog, NativeProducer, librdkafka_config, librdkafka_offsets

#: Fetch large chunks per round trip (librdkafka's names), as ``BATCH_FETCH_OPTIONS``.
_LIBRDKAFKA_FETCH = {"fetch.max.bytes": 52_428_800, "max.partition.fetch.bytes": 10_485_760}


class Record:
    """One consumed record, with kafka-python's ``ConsumerRecord`` attribute names."""

    __slots__ = ("key", "offset", "partition", "timestamp", "topic", "value")

    def __init__(self, topic: str, partition: int, offset: int, timestamp: int, key: Any, value: Any) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
        self.key = key
        self.value = value


class NoRebalanceHooks(ConsumerRebalanceListener):
    """A listener that does nothing on a rebalance (the benchmarks' loops)."""

    def on_partitions_revoked(self, revoked: Any) -> None:
        pass

    def on_partitions_assigned(self, assigned: Any) -> None:
        pass


def make_scoring_consumer(kafka: KafkaSettings, group_id: str, **options: Any) -> Any:
    """The scorer's group consumer on ``kafka.client`` (kafka-python option names)."""
    if kafka.client == "kafka-python":
        return make_consumer(kafka, group_id, **options)
    return ConfluentConsumer(kafka, group_id, **options)


def make_output_producer(
    kafka: KafkaSettings,
    on_failure: Callable[[BaseException], object],
    delivery_timeout_s: float,
    **options: Any,
) -> Any:
    """The scorer's producer on ``kafka.client`` (``transactional_id`` and
    ``transaction_timeout_ms`` among ``options`` make it transactional)."""
    if kafka.client == "kafka-python":
        return KafkaPythonOutputs(kafka, on_failure, delivery_timeout_s, **options)
    return NativeProducer(
        kafka,
        on_failure,
        delivery_timeout_s,
        linger_ms=options.get("linger_ms", 5),
        transactional_id=options.get("transactional_id"),
        transaction_timeout_ms=options.get("transaction_timeout_ms", 60_000),
        track_offsets=False,
    )


class KafkaPythonOutputs:
    """kafka-python's producer behind the output-producer surface (see the module docstring)."""

    def __init__(
        self,
        kafka: KafkaSettings,
        on_failure: Callable[[BaseException], object],
        delivery_timeout_s: float,
        **options: Any,
    ) -> None:
        self._on_failure = on_failure
        self.producer = make_producer(kafka, max_block_ms=int(delivery_timeout_s * 1000), **options)

    def send(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        self.producer.send(topic, key=key, value=value).add_errback(self._on_failure)

    def flush(self, timeout: float) -> None:
        self.producer.flush(timeout=timeout)

    def close(self, timeout: float = 10.0) -> None:
        self.producer.close(timeout=timeout)

    def __getattr__(self, name: str) -> Any:  # the transaction methods, as they are
        return getattr(self.producer, name)


class ConfluentConsumer:
    """A librdkafka group consumer with the kafka-python surface the scorer uses."""

    def __init__(self, kafka: KafkaSettings, group_id: str, **options: Any) -> None:
        import confluent_kafka

        self._ck = confluent_kafka
        config: dict[str, Any] = {
            **librdkafka_config(kafka),
            **_LIBRDKAFKA_FETCH,
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
            "isolation.level": "read_committed",
            "session.timeout.ms": options.get("session_timeout_ms", 30_000),
            "heartbeat.interval.ms": options.get("heartbeat_interval_ms", 3000),
            "error_cb": self._client_error,
            "logger": LibrdkafkaLog(),
        }
        if options.get("group_instance_id"):
            config["group.instance.id"] = options["group_instance_id"]
        self.last_error: str | None = None
        try:
            self._consumer = confluent_kafka.Consumer(config)
        except confluent_kafka.KafkaException as exc:
            raise KafkaUnavailableError(
                f"cannot create a consumer for {kafka.bootstrap_servers}: {exc}"
            ) from exc
        self._listener: Any = None
        self._assignment: set[TopicPartition] = set()
        self.config = {"sasl_plain_username": kafka.sasl_plain_username}

    # -- the group ------------------------------------------------------------------

    def subscribe(self, topics: list[str], listener: Any) -> None:
        self._listener = listener
        self._consumer.subscribe(
            topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        assigned = [TopicPartition(p.topic, p.partition) for p in partitions]
        self._assignment.update(assigned)
        if self._listener is not None:
            self._listener.on_partitions_assigned(assigned)

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        revoked = [TopicPartition(p.topic, p.partition) for p in partitions]
        if self._listener is not None:
            self._listener.on_partitions_revoked(revoked)
        self._assignment.difference_update(revoked)

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        lost = [TopicPartition(p.topic, p.partition) for p in partitions]
        if self._listener is not None:
            self._listener.on_partitions_lost(lost)
        self._assignment.difference_update(lost)

    def assignment(self) -> set[TopicPartition]:
        return set(self._assignment)

    def group_metadata(self) -> Any:
        return self._consumer.consumer_group_metadata()

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        try:
            metadata = self._consumer.list_topics(topic, timeout=5)
        except self._ck.KafkaException:
            return None
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            if found is not None and found.error.code() == self._ck.KafkaError.TOPIC_AUTHORIZATION_FAILED:
                raise TopicAuthorizationFailedError(f"topic {topic!r}: {found.error.str()}")
            return None
        return set(found.partitions) or None

    # -- records ---------------------------------------------------------------------

    def poll(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Record]]:
        """Up to ``max_records`` records, per partition in offset order."""
        messages = self._consumer.consume(num_messages=max_records, timeout=timeout_ms / 1000)
        polled: dict[TopicPartition, list[Record]] = {}
        for m in messages:
            error = m.error()
            if error is not None:
                self._raise(error)
                continue
            partition: Any = m.partition()
            tp = TopicPartition(m.topic(), partition)
            records = polled.get(tp)
            if records is None:
                records = polled[tp] = []
            offset: Any = m.offset()
            records.append(Record(tp.topic, partition, offset, m.timestamp()[1], m.key(), m.value()))
        return polled

    # -- offsets ---------------------------------------------------------------------

    def commit(self, offsets: Mapping[TopicPartition, Any]) -> None:
        """Commit ``{tp: OffsetAndMetadata or offset}``; :class:`CommitFailedError` when the
        group's generation moved on (a rebalance)."""
        try:
            self._consumer.commit(offsets=librdkafka_offsets(offsets), asynchronous=False)
        except self._ck.KafkaException as exc:
            error = exc.args[0]
            retriable = (
                self._ck.KafkaError.REBALANCE_IN_PROGRESS,
                self._ck.KafkaError.ILLEGAL_GENERATION,
                self._ck.KafkaError.UNKNOWN_MEMBER_ID,
                self._ck.KafkaError._ASSIGNMENT_LOST,
            )
            if error.code() in retriable:
                raise CommitFailedError(error.str()) from exc
            self._raise(error)

    def commit_async(self, offsets: Mapping[TopicPartition, Any], callback: Any = None) -> None:
        self._consumer.commit(offsets=librdkafka_offsets(offsets), asynchronous=True)

    def committed(self, tp: TopicPartition) -> int | None:
        [found] = self._consumer.committed([self._ck.TopicPartition(tp.topic, tp.partition)], timeout=30)
        return found.offset if found.offset >= 0 else None

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._consumer.seek(self._ck.TopicPartition(tp.topic, tp.partition, offset))

    def seek_to_beginning(self, tp: TopicPartition) -> None:
        self._consumer.seek(self._ck.TopicPartition(tp.topic, tp.partition, self._ck.OFFSET_BEGINNING))

    def highwater(self, tp: TopicPartition) -> int | None:
        _low, high = self._consumer.get_watermark_offsets(
            self._ck.TopicPartition(tp.topic, tp.partition), cached=True
        )
        return high if high >= 0 else None

    def position(self, tp: TopicPartition, timeout_ms: int = 1000) -> int:
        [found] = self._consumer.position([self._ck.TopicPartition(tp.topic, tp.partition)])
        if found.offset < 0:
            raise KafkaError(f"no position yet for {tp}")
        return int(found.offset)

    def close(self, autocommit: bool = False) -> None:
        self._consumer.close()

    # -- helpers ---------------------------------------------------------------------

    def _raise(self, error: Any) -> None:
        """Raise a kafka-python error for a consumer error librdkafka reported; transient
        ones (a broker down for a moment: librdkafka reconnects) are only remembered."""
        code = error.code()
        refusals = {
            self._ck.KafkaError.TOPIC_AUTHORIZATION_FAILED: TopicAuthorizationFailedError,
            self._ck.KafkaError.GROUP_AUTHORIZATION_FAILED: GroupAuthorizationFailedError,
            self._ck.KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: TransactionalIdAuthorizationFailedError,
        }
        if code in refusals:
            raise refusals[code](error.str())
        if error.fatal() or (not error.retriable() and code != self._ck.KafkaError._PARTITION_EOF):
            raise KafkaError(error.str())
        self.last_error = error.str()

    def _client_error(self, error: Any) -> None:
        self.last_error = error.str()
