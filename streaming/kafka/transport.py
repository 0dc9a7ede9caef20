"""driftloop's Kafka transport: kafka-python, or librdkafka (confluent-kafka) for speed.

``kafka.client`` chooses, for every component. kafka-python's consume and produce cost
30-40 µs per record on these machines, about 85% of the scorer's time; librdkafka's a few.
Both give the same surface, in kafka-python's terms (its ``TopicPartition`` keys, its
exception types, its option names; see :mod:`streaming.kafka.confluent` for the librdkafka
side), so every service has one code path:

- :func:`make_consumer`: a group member (cooperative-sticky by default, with a
  :class:`kafka.ConsumerRebalanceListener`) or, without a group, a reader that assigns its
  partitions; batched ``poll(timeout_ms, max_records)`` returning records per partition
  (each with ``topic``, ``partition``, ``offset``, ``timestamp``, ``key`` and ``value``),
  ``commit`` (raising :class:`kafka.errors.CommitFailedError` when a rebalance refused it),
  ``commit_async``, ``committed``, ``seek`` and its relatives, ``pause``/``resume``,
  ``end_offsets``, ``offsets_for_times``, ``group_metadata`` (for transactions),
  ``highwater`` and ``position`` (lag). Consumers read ``read_committed``.
- :func:`make_producer`: ``send`` returns a future (``add_errback``, ``get``), for the
  stages that write few records (drift events, snapshots, model updates).
- :func:`make_output_producer`: the scorer's bulk producer, ``send(topic, key, value)``
  reporting a failed delivery to the ``on_failure`` it was made with, ``flush(timeout)``,
  ``close(timeout)``, and kafka-python's transaction methods.

On librdkafka, rebalance callbacks and delivery reports run inside ``poll`` (and ``flush``)
on the caller's thread. Admin calls (topics, the broker probe) follow ``kafka.client`` in
:mod:`streaming.kafka.clients`, ACLs in :mod:`streaming.kafka.acls`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kafka import ConsumerRebalanceListener

from streaming.config import KafkaSettings
from streaming.kafka import clients
from streaming.kafka.confluent import ConfluentConsumer, ConfluentProducer
from streaming.kafka.native import NativeProducer


class NoRebalanceHooks(ConsumerRebalanceListener):
    """A listener that does nothing on a rebalance (the benchmarks' loops)."""

    def on_partitions_revoked(self, revoked: Any) -> None:
        pass

    def on_partitions_assigned(self, assigned: Any) -> None:
        pass


def make_consumer(kafka: KafkaSettings, group_id: str | None, *topics: str, **options: Any) -> Any:
    """A consumer on ``kafka.client`` (options by kafka-python's names): a group member when
    ``group_id`` is given, else a reader that assigns its partitions itself."""
    if kafka.client == "kafka-python":
        return clients.make_consumer(kafka, group_id, *topics, **options)
    return ConfluentConsumer(kafka, group_id, *topics, **options)


def make_producer(kafka: KafkaSettings, **options: Any) -> Any:
    """An idempotent producer on ``kafka.client`` whose ``send`` returns a future
    (``add_errback``, ``get``): for the stages that write few records."""
    if kafka.client == "kafka-python":
        return clients.make_producer(kafka, **options)
    return ConfluentProducer(kafka, **options)


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
        self.producer = clients.make_producer(kafka, max_block_ms=int(delivery_timeout_s * 1000), **options)

    def send(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        self.producer.send(topic, key=key, value=value).add_errback(self._on_failure)

    def flush(self, timeout: float) -> None:
        self.producer.flush(timeout=timeout)

    def close(self, timeout: float = 10.0) -> None:
        self.producer.close(timeout=timeout)

    def __getattr__(self, name: str) -> Any:  # the transaction methods, as they are
        return getattr(self.producer, name)
