"""librdkafka (confluent-kafka) clients with the kafka-python surface driftloop is written to.

``kafka.client = "confluent-kafka"`` puts every driftloop component on these (through
:mod:`streaming.kafka.transport`). They speak kafka-python's terms (its ``TopicPartition``
keys, ``OffsetAndMetadata`` and ``OffsetAndTimestamp``, its exception types, its option
names), so the services keep one code path for both clients:

- :class:`ConfluentConsumer`: a group member (``subscribe`` with a
  :class:`kafka.ConsumerRebalanceListener`, whose callbacks librdkafka runs inside ``poll``
  on the caller's thread) or a reader of partitions it assigns itself (``assign``, no group
  joined, nothing committed); batched ``poll``, ``commit``, ``seek`` and its relatives,
  ``pause``/``resume``, watermarks and ``offsets_for_times``. It reads ``read_committed``:
  a transactional writer's aborted records are skipped, and the end offsets it reports are
  the last stable offsets, as kafka-python's are.
- :class:`ConfluentProducer`: idempotent, ``acks=all``; ``send`` returns a future with
  ``add_callback``, ``add_errback`` and ``get``, as kafka-python's does. Delivery reports are
  served inside ``send``, ``flush`` and ``get``, on the caller's thread.
- :func:`create_topics` / :func:`delete_topics` / :func:`list_topics`: the admin calls.

Options are given by their kafka-python names and translated; one librdkafka has no
equivalent for is refused with a :class:`~streaming.errors.ConfigError`, never ignored.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, NamedTuple

from kafka import TopicPartition
from kafka.errors import (
    CommitFailedError,
    GroupAuthorizationFailedError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailedError,
)
from kafka.structs import OffsetAndTimestamp

from streaming.config import KafkaSettings
from streaming.errors import ConfigError, KafkaUnavailableError, NoBroker
from streaming.kafka.native import (
    LibrdkafkaLog,
    close_dropping,
    librdkafka_config,
    librdkafka_offsets,
    produce_waiting,
    queue_full,
)

#: kafka-python consumer options and their librdkafka names.
_CONSUMER_NAMES = {
    "session_timeout_ms": "session.timeout.ms",
    "heartbeat_interval_ms": "heartbeat.interval.ms",
    "group_instance_id": "group.instance.id",
    "fetch_max_wait_ms": "fetch.wait.max.ms",
    "fetch_max_bytes": "fetch.max.bytes",
    "max_partition_fetch_bytes": "max.partition.fetch.bytes",
    "max_poll_interval_ms": "max.poll.interval.ms",
    "request_timeout_ms": "socket.timeout.ms",
    "auto_offset_reset": "auto.offset.reset",
    "isolation_level": "isolation.level",
}
#: kafka-python producer options and their librdkafka names.
_PRODUCER_NAMES = {
    "acks": "acks",
    "linger_ms": "linger.ms",
    "batch_size": "batch.size",
    "max_request_size": "message.max.bytes",
    "compression_type": "compression.type",
    "request_timeout_ms": "request.timeout.ms",
    "delivery_timeout_ms": "delivery.timeout.ms",
}
#: kafka-python assignors by class name, as librdkafka's ``partition.assignment.strategy``.
_ASSIGNORS = {
    "RangePartitionAssignor": "range",
    "RoundRobinPartitionAssignor": "roundrobin",
    "CooperativeStickyAssignor": "cooperative-sticky",
}
_METADATA_TIMEOUT_S = 10.0


def _translated(options: Mapping[str, Any], names: Mapping[str, str], what: str) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for name, value in options.items():
        if value is None:
            continue
        if name not in names:
            raise ConfigError(
                f"the {what} option {name}={value!r} has no librdkafka equivalent here "
                "(kafka.client = 'confluent-kafka'); use kafka.client = 'kafka-python' for it"
            )
        config[names[name]] = value
    return config


def kafka_error(error: Any, doing: str = "") -> KafkaError:
    """librdkafka's ``KafkaError`` as kafka-python's exception (refusals keep their types, so
    :func:`~streaming.kafka.clients.not_authorized` recognizes them)."""
    import confluent_kafka as ck

    codes: dict[int, type[KafkaError]] = {
        ck.KafkaError.TOPIC_AUTHORIZATION_FAILED: TopicAuthorizationFailedError,
        ck.KafkaError.GROUP_AUTHORIZATION_FAILED: GroupAuthorizationFailedError,
        ck.KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: TransactionalIdAuthorizationFailedError,
        ck.KafkaError.MSG_SIZE_TOO_LARGE: MessageSizeTooLargeError,
        ck.KafkaError.TOPIC_ALREADY_EXISTS: TopicAlreadyExistsError,
        ck.KafkaError._TIMED_OUT: KafkaTimeoutError,
        ck.KafkaError._MSG_TIMED_OUT: KafkaTimeoutError,
    }
    prefix = f"{doing}: " if doing else ""
    return codes.get(error.code(), KafkaError)(prefix + error.str())


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


class ConfluentConsumer:
    """A librdkafka consumer with kafka-python's surface (see the module docstring).

    ``group_id`` None makes a reader: partitions come from :meth:`assign`, and no group is
    joined (librdkafka wants a ``group.id`` all the same; a throwaway one is given, never
    used to commit). ``topics`` subscribe at once, without a listener.
    """

    def __init__(self, kafka: KafkaSettings, group_id: str | None, *topics: str, **options: Any) -> None:
        import confluent_kafka

        self._ck = confluent_kafka
        options = dict(options)
        if options.pop("enable_auto_commit", False):
            raise ConfigError("driftloop's consumers never auto-commit (enable_auto_commit=True)")
        self._max_records: int = options.pop("max_poll_records", None) or 500
        strategy = options.pop("partition_assignment_strategy", None)
        assignor = "cooperative-sticky"
        if strategy:
            name = getattr(strategy[0], "__name__", str(strategy[0]))
            if name not in _ASSIGNORS:
                raise ConfigError(f"no librdkafka assignor for {name}")
            assignor = _ASSIGNORS[name]
        config: dict[str, Any] = {
            **librdkafka_config(kafka),
            "fetch.max.bytes": 52_428_800,
            "max.partition.fetch.bytes": 10_485_760,
            "group.id": group_id or f"driftloop-reader-{uuid.uuid4().hex}",
            # A broker answers a connection's requests in order: an offsets request waits
            # behind a fetch that waits for data. Readers ask for offsets often.
            "fetch.wait.max.ms": 500 if group_id else 100,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": assignor,
            "isolation.level": "read_committed",
            "error_cb": self._client_error,
            "on_commit": self._on_commit,
            "logger": LibrdkafkaLog(),
            **_translated(options, _CONSUMER_NAMES, "consumer"),
        }
        self._group = group_id
        self._assignor = assignor
        self._assigning: dict[TopicPartition, int] | None = None  # seeks inside on_assign
        self._commit_callbacks: deque[tuple[Mapping[TopicPartition, Any], Any]] = deque()
        self.last_error: str | None = None
        try:
            self._consumer = confluent_kafka.Consumer(config)
        except confluent_kafka.KafkaException as exc:
            raise KafkaUnavailableError(
                f"cannot create a consumer for {kafka.bootstrap_servers}: {exc}"
            ) from exc
        self._listener: Any = None
        self._assignment: set[TopicPartition] = set()
        self._paused: set[TopicPartition] = set()
        self._sought: dict[TopicPartition, int] = {}  # where a seek put a partition not yet fetched
        self.config = {"sasl_plain_username": kafka.sasl_plain_username}
        if topics:
            self.subscribe(list(topics))

    # -- the group ------------------------------------------------------------------

    def subscribe(self, topics: list[str], listener: Any = None) -> None:
        if self._group is None:
            raise ConfigError("a consumer without a group_id cannot subscribe; assign its partitions")
        self._listener = listener
        self._consumer.subscribe(
            topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        """The listener's ``on_partitions_assigned``, then the assignment itself, at the
        offsets its :meth:`seek` calls chose (librdkafka cannot seek a partition before it is
        assigned; the others start at their committed offsets)."""
        assigned = [TopicPartition(p.topic, p.partition) for p in partitions]
        self._assignment.update(assigned)
        self._assigning = {}
        try:
            if self._listener is not None:
                self._listener.on_partitions_assigned(assigned)
        finally:
            chosen, self._assigning = self._assigning, None
            targets = [
                self._ck.TopicPartition(tp.topic, tp.partition, chosen.get(tp, self._ck.OFFSET_INVALID))
                for tp in assigned
            ]
            if self._assignor == "cooperative-sticky":
                consumer.incremental_assign(targets)
            else:  # an eager assignor hands over the whole assignment each time
                consumer.assign(targets)

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        revoked = [TopicPartition(p.topic, p.partition) for p in partitions]
        if self._listener is not None:
            self._listener.on_partitions_revoked(revoked)
        self._forget(revoked)

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        lost = [TopicPartition(p.topic, p.partition) for p in partitions]
        if self._listener is not None:
            self._listener.on_partitions_lost(lost)
        self._forget(lost)

    def _forget(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            self._assignment.discard(tp)
            self._paused.discard(tp)
            self._sought.pop(tp, None)

    def assign(self, partitions: Collection[TopicPartition]) -> None:
        """Read exactly ``partitions`` (no group); a new one starts at its beginning unless
        :meth:`seek` says otherwise."""
        wanted = set(partitions)
        gone = self._assignment - wanted
        new = wanted - self._assignment
        if gone:
            self._consumer.incremental_unassign(
                [self._ck.TopicPartition(tp.topic, tp.partition) for tp in gone]
            )
            self._forget(gone)
        if new:
            self._consumer.incremental_assign(
                [self._ck.TopicPartition(tp.topic, tp.partition, self._ck.OFFSET_BEGINNING) for tp in new]
            )
            self._assignment |= new

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

    def pause(self, *partitions: TopicPartition) -> None:
        self._consumer.pause([self._ck.TopicPartition(tp.topic, tp.partition) for tp in partitions])
        self._paused.update(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self._consumer.resume([self._ck.TopicPartition(tp.topic, tp.partition) for tp in partitions])
        self._paused.difference_update(partitions)

    def paused(self) -> set[TopicPartition]:
        return set(self._paused)

    # -- records ---------------------------------------------------------------------

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[TopicPartition, list[Record]]:
        """Up to ``max_records`` records (``max_poll_records`` by default), per partition in
        offset order."""
        # As kafka-python does: return at once what librdkafka has fetched, else wait up to the
        # timeout for the first record only (``consume`` alone waits for a full batch).
        wanted = max_records or self._max_records
        messages = self._consumer.consume(num_messages=wanted, timeout=0)
        if not messages and timeout_ms > 0:
            first = self._consumer.poll(timeout_ms / 1000)
            if first is not None:
                messages = [first]
                if wanted > 1:
                    messages += self._consumer.consume(num_messages=wanted - 1, timeout=0)
        return self._by_partition(messages)

    def fill(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Record]]:
        """Wait up to ``timeout_ms`` for ``max_records`` records; what came by then (a micro-
        batch being filled: one call where :meth:`poll` would return a few at a time)."""
        return self._by_partition(self._consumer.consume(num_messages=max_records, timeout=timeout_ms / 1000))

    def _by_partition(self, messages: list[Any]) -> dict[TopicPartition, list[Record]]:
        polled: dict[TopicPartition, list[Record]] = {}
        # librdkafka hands out runs of one partition: look the partition up once per run.
        topic: Any = None
        partition: Any = -1
        records: list[Record] = []
        for m in messages:
            error = m.error()
            if error is not None:
                self._raise(error)
                continue
            if m.partition() != partition or m.topic() != topic:
                topic, partition = m.topic(), m.partition()
                tp = TopicPartition(topic, partition)
                found = polled.get(tp)
                if found is None:
                    found = polled[tp] = []
                    self._sought.pop(tp, None)
                records = found
            offset: Any = m.offset()
            records.append(Record(topic, partition, offset, m.timestamp()[1], m.key(), m.value()))
        return polled

    # -- offsets ---------------------------------------------------------------------

    def commit(self, offsets: Mapping[TopicPartition, Any] | None = None) -> None:
        """Commit ``{tp: OffsetAndMetadata or offset}`` (None: the positions of what was
        polled); :class:`CommitFailedError` when the group's generation moved on (a rebalance)."""
        try:
            if offsets is None:
                self._consumer.commit(asynchronous=False)
            else:
                self._consumer.commit(offsets=librdkafka_offsets(offsets), asynchronous=False)
        except self._ck.KafkaException as exc:
            error = exc.args[0]
            if offsets is None and error.code() == self._ck.KafkaError._NO_OFFSET:
                return  # nothing polled since the last commit
            retriable = (
                self._ck.KafkaError.REBALANCE_IN_PROGRESS,
                self._ck.KafkaError.ILLEGAL_GENERATION,
                self._ck.KafkaError.UNKNOWN_MEMBER_ID,
                self._ck.KafkaError._ASSIGNMENT_LOST,
            )
            if error.code() in retriable:
                raise CommitFailedError(error.str()) from exc
            self._raise(error)

    def commit_async(
        self,
        offsets: Mapping[TopicPartition, Any],
        callback: Callable[[Mapping[TopicPartition, Any], Any], object] | None = None,
    ) -> None:
        """Commit without waiting; ``callback(offsets, response)`` (kafka-python's), with a
        :class:`KafkaError` as the response when the commit failed, once librdkafka reports
        (inside a later :meth:`poll`)."""
        self._commit_callbacks.append((offsets, callback))
        self._consumer.commit(offsets=librdkafka_offsets(offsets), asynchronous=True)

    def _on_commit(self, error: Any, _partitions: Any) -> None:
        """librdkafka's report of an asynchronous commit (in order; synchronous ones are not
        reported here)."""
        if not self._commit_callbacks:
            return
        offsets, callback = self._commit_callbacks.popleft()
        if callback is not None:
            callback(offsets, kafka_error(error, "commit") if error is not None else None)

    def committed(self, tp: TopicPartition) -> int | None:
        [found] = self._consumer.committed([self._ck.TopicPartition(tp.topic, tp.partition)], timeout=30)
        return found.offset if found.offset >= 0 else None

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Read ``tp`` from ``offset`` next. librdkafka refuses to seek a partition whose fetch
        has not started: inside ``on_partitions_assigned`` it is assigned at ``offset``;
        elsewhere it is assigned again at ``offset`` (incrementally)."""
        if self._assigning is not None:  # inside on_partitions_assigned: assigned at offset
            self._assigning[tp] = offset
            self._sought[tp] = offset
            return
        target = self._ck.TopicPartition(tp.topic, tp.partition, offset)
        try:
            self._consumer.seek(target)
        except self._ck.KafkaException as exc:
            incremental = self._group is None or self._assignor == "cooperative-sticky"
            if exc.args[0].code() != self._ck.KafkaError._STATE or not incremental:
                raise kafka_error(exc.args[0], f"seek {tp.topic}[{tp.partition}] to {offset}") from exc
            self._consumer.incremental_unassign([self._ck.TopicPartition(tp.topic, tp.partition)])
            self._consumer.incremental_assign([target])
            if tp in self._paused:
                self._consumer.pause([self._ck.TopicPartition(tp.topic, tp.partition)])
        self._sought[tp] = offset

    def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        for tp, offset in self.beginning_offsets(partitions or self._assignment).items():
            self.seek(tp, offset)

    def seek_to_end(self, *partitions: TopicPartition) -> None:
        for tp, offset in self.end_offsets(partitions or self._assignment).items():
            self.seek(tp, offset)

    def position(self, tp: TopicPartition, timeout_ms: int = 1000) -> int:
        """The offset of the next record ``poll`` returns for ``tp``; :class:`KafkaError` when
        there is none yet (nothing read from it, and no seek)."""
        sought = self._sought.get(tp)
        if sought is not None:
            return sought
        [found] = self._consumer.position([self._ck.TopicPartition(tp.topic, tp.partition)])
        if found.offset >= 0:
            return int(found.offset)
        raise KafkaError(f"no position yet for {tp.topic}[{tp.partition}]")

    def beginning_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return self._list_offsets(partitions, self._ck.OFFSET_BEGINNING)

    def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """Each partition's end: its last stable offset (``read_committed``)."""
        return self._list_offsets(partitions, self._ck.OFFSET_END)

    def offsets_for_times(
        self, timestamps: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        """The first offset at or after each timestamp (None: no record that late)."""
        if not timestamps:
            return {}
        try:
            found = self._consumer.offsets_for_times(
                [self._ck.TopicPartition(tp.topic, tp.partition, int(ts)) for tp, ts in timestamps.items()],
                timeout=_METADATA_TIMEOUT_S,
            )
        except self._ck.KafkaException as exc:
            raise kafka_error(exc.args[0], "offsets_for_times") from exc
        out: dict[TopicPartition, OffsetAndTimestamp | None] = {}
        for f in found:
            tp = TopicPartition(f.topic, f.partition)
            out[tp] = OffsetAndTimestamp(f.offset, timestamps[tp], -1) if f.offset >= 0 else None
        return out

    def highwater(self, tp: TopicPartition) -> int | None:
        _low, high = self._consumer.get_watermark_offsets(
            self._ck.TopicPartition(tp.topic, tp.partition), cached=True
        )
        return high if high >= 0 else None

    def close(self, autocommit: bool = False) -> None:
        self._consumer.close()

    # -- helpers ---------------------------------------------------------------------

    def _list_offsets(self, partitions: Iterable[TopicPartition], which: int) -> dict[TopicPartition, int]:
        """Every partition's first (``OFFSET_BEGINNING``) or end (``OFFSET_END``) offset, in one
        request per leader (``offsets_for_times`` takes those two as timestamps)."""
        wanted = list(partitions)
        if not wanted:
            return {}
        try:
            found = self._consumer.offsets_for_times(
                [self._ck.TopicPartition(tp.topic, tp.partition, which) for tp in wanted],
                timeout=_METADATA_TIMEOUT_S,
            )
        except self._ck.KafkaException as exc:
            raise kafka_error(exc.args[0], f"offsets of {wanted[0].topic}") from exc
        for f in found:
            if f.error is not None:
                raise kafka_error(f.error, f"offsets of {f.topic}[{f.partition}]")
        return {TopicPartition(f.topic, f.partition): int(f.offset) for f in found}

    def _raise(self, error: Any) -> None:
        """Raise a kafka-python error for a consumer error librdkafka reported; transient
        ones (a broker down for a moment: librdkafka reconnects) are only remembered."""
        code = error.code()
        refusals = (
            self._ck.KafkaError.TOPIC_AUTHORIZATION_FAILED,
            self._ck.KafkaError.GROUP_AUTHORIZATION_FAILED,
            self._ck.KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        )
        if (
            code in refusals
            or error.fatal()
            or (not error.retriable() and code != self._ck.KafkaError._PARTITION_EOF)
        ):
            raise kafka_error(error)
        self.last_error = error.str()

    def _client_error(self, error: Any) -> None:
        self.last_error = error.str()


class Delivered(NamedTuple):
    """Where a record was written (the fields of kafka-python's ``RecordMetadata`` that
    driftloop reads)."""

    topic: str
    partition: int
    offset: int
    timestamp: int


class Delivery:
    """A sent record's future, with kafka-python's ``FutureRecordMetadata`` surface."""

    __slots__ = ("_callbacks", "_errbacks", "_producer", "exception", "metadata")

    def __init__(self, producer: ConfluentProducer) -> None:
        self._producer = producer
        self._callbacks: list[Callable[[Delivered], object]] = []
        self._errbacks: list[Callable[[BaseException], object]] = []
        self.metadata: Delivered | None = None
        self.exception: BaseException | None = None

    def is_done(self) -> bool:
        return self.metadata is not None or self.exception is not None

    def add_callback(self, callback: Callable[[Delivered], object]) -> Delivery:
        if self.metadata is not None:
            callback(self.metadata)
        elif self.exception is None:
            self._callbacks.append(callback)
        return self

    def add_errback(self, errback: Callable[[BaseException], object]) -> Delivery:
        if self.exception is not None:
            errback(self.exception)
        elif self.metadata is None:
            self._errbacks.append(errback)
        return self

    def get(self, timeout: float | None = None) -> Delivered:
        """Wait for the broker's acknowledgement; raise the failure (kafka-python's errors)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_done():
            if deadline is not None and time.monotonic() > deadline:
                raise KafkaTimeoutError(
                    f"no acknowledgement within {timeout:g}s ({self._producer.last_error})"
                )
            self._producer.poll(0.05)
        if self.exception is not None:
            raise self.exception
        assert self.metadata is not None
        return self.metadata

    def _report(self, error: Any, message: Any) -> None:
        if error is not None:
            self.exception = kafka_error(error, f"{message.topic()}[{message.partition()}]")
            for errback in self._errbacks:
                errback(self.exception)
        else:
            self.metadata = Delivered(
                message.topic(), message.partition(), message.offset(), message.timestamp()[1]
            )
            for callback in self._callbacks:
                callback(self.metadata)
        self._callbacks.clear()
        self._errbacks.clear()


class ConfluentProducer:
    """An idempotent librdkafka producer (``acks=all``) with kafka-python's surface: ``send``
    returns a :class:`Delivery`; ``flush`` raises :class:`KafkaTimeoutError` when records are
    still out after its timeout. Keys are partitioned as the Java client and kafka-python do
    (murmur2)."""

    def __init__(self, kafka: KafkaSettings, **options: Any) -> None:
        import confluent_kafka

        self._ck = confluent_kafka
        options = dict(options)
        self._block_s = options.pop("max_block_ms", 60_000) / 1000
        options.pop("max_in_flight_requests_per_connection", None)  # idempotence keeps it ≤ 5
        self._log = LibrdkafkaLog()
        self._last_error: str | None = None
        config = {
            **librdkafka_config(kafka),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "partitioner": "murmur2_random",
            "error_cb": self._client_error,
            "logger": self._log,
            **_translated(options, _PRODUCER_NAMES, "producer"),
        }
        if config["acks"] in ("all", -1):
            config["acks"] = "all"
        else:  # fewer acknowledgements than all: idempotence needs all
            config["enable.idempotence"] = False
        self._kafka = kafka
        try:
            self._producer = confluent_kafka.Producer(config)
        except confluent_kafka.KafkaException as exc:
            raise KafkaUnavailableError(
                f"cannot create a producer for {kafka.bootstrap_servers}: {exc}"
            ) from exc

    def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: Any = None,
    ) -> Delivery:
        future = Delivery(self)
        try:
            produce_waiting(
                self._producer,
                self._block_s,
                lambda: KafkaTimeoutError(queue_full(self._kafka, self._block_s, self.last_error)),
                topic,
                value,
                key,
                -1 if partition is None else partition,
                on_delivery=future._report,
                timestamp=timestamp_ms or 0,
                headers=headers,
            )
        except self._ck.KafkaException as exc:
            raise kafka_error(exc.args[0], topic) from exc
        self._producer.poll(0)
        return future

    def poll(self, timeout_s: float = 0.0) -> None:
        self._producer.poll(timeout_s)

    def flush(self, timeout: float | None = None) -> None:
        remaining = self._producer.flush(60.0 if timeout is None else timeout)
        if remaining:
            cause = f": {self.last_error}" if self.last_error else ""
            raise KafkaTimeoutError(
                f"{remaining} records not acknowledged by {self._kafka.bootstrap_servers} within {timeout}s{cause}"
            )

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is queued within ``timeout``; then drop what is left."""
        close_dropping(self._producer, 10.0 if timeout is None else timeout)

    @property
    def last_error(self) -> str | None:
        return self._log.last_fatal or self._last_error

    def _client_error(self, error: Any) -> None:
        self._last_error = error.str()


# -- admin ---------------------------------------------------------------------------------


def _admin(kafka: KafkaSettings) -> Any:
    from confluent_kafka.admin import AdminClient

    config: dict[str, Any] = {**librdkafka_config(kafka), "logger": LibrdkafkaLog()}
    return AdminClient(config)


def list_topics(kafka: KafkaSettings, timeout_s: float = _METADATA_TIMEOUT_S) -> set[str]:
    import confluent_kafka as ck

    try:
        metadata = _admin(kafka).list_topics(timeout=timeout_s)
    except ck.KafkaException as exc:
        raise kafka_error(exc.args[0], "list topics") from exc
    return {name for name, topic in metadata.topics.items() if topic.error is None}


def create_topics(kafka: KafkaSettings, request: Mapping[str, Mapping[str, Any]], timeout_s: float) -> None:
    """Create ``{name: {"num_partitions", "replication_factor", "configs"}}`` (kafka-python's
    ``NewTopic`` fields) and wait until each has a leader; kafka-python's errors."""
    import confluent_kafka as ck
    from confluent_kafka.admin import NewTopic

    admin = _admin(kafka)
    futures = admin.create_topics(
        [
            NewTopic(
                name,
                num_partitions=spec["num_partitions"],
                replication_factor=spec["replication_factor"],
                config={k: str(v) for k, v in spec.get("configs", {}).items()},
            )
            for name, spec in request.items()
        ],
        operation_timeout=timeout_s,
        request_timeout=timeout_s,
    )
    for future in futures.values():
        try:
            future.result(timeout=timeout_s)
        except ck.KafkaException as exc:
            raise kafka_error(exc.args[0], "create topics") from exc
    deadline = time.monotonic() + timeout_s
    pending = set(request)
    while pending:
        metadata = admin.list_topics(timeout=timeout_s)
        pending = {
            name
            for name in pending
            if (t := metadata.topics.get(name)) is None
            or t.error is not None
            or not t.partitions
            or any(p.leader < 0 for p in t.partitions.values())
        }
        if pending and time.monotonic() > deadline:
            raise KafkaTimeoutError(f"topics {sorted(pending)} have no leader after {timeout_s:g}s")
        if pending:
            time.sleep(0.1)


def delete_topics(kafka: KafkaSettings, names: Collection[str], timeout_s: float) -> None:
    import confluent_kafka as ck

    admin = _admin(kafka)  # kept until the results are in: freeing it cancels them
    futures = admin.delete_topics(list(names), operation_timeout=timeout_s, request_timeout=timeout_s)
    for future in futures.values():
        try:
            future.result(timeout=timeout_s)
        except ck.KafkaException as exc:
            raise kafka_error(exc.args[0], "delete topics") from exc


def probe(kafka: KafkaSettings, timeout_s: float) -> NoBroker | None:
    """None once a broker answers a metadata request within ``timeout_s``; else why not, in
    librdkafka's words (a refused SASL login or a failed TLS handshake ends the wait at once:
    retrying them cannot help)."""
    import confluent_kafka as ck
    from confluent_kafka.admin import AdminClient

    errors: list[Any] = []
    lines = _LogLines()
    config: dict[str, Any] = {**librdkafka_config(kafka), "logger": lines, "error_cb": errors.append}
    try:
        admin = AdminClient(config)
    except ck.KafkaException as exc:  # a setting librdkafka refuses (e.g. an unreadable CA file)
        return NoBroker([exc.args[0].str()])
    hopeless = (ck.KafkaError._AUTHENTICATION, ck.KafkaError._SSL)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin.list_topics(timeout=max(0.1, min(1.0, deadline - time.monotonic())))
            return None
        except ck.KafkaException as exc:
            last = exc.args[0].str()
        admin.poll(0)  # serves error_cb
        if time.monotonic() >= deadline or any(e.code() in hopeless for e in errors):
            break
    told = [e for e in errors if e.code() != ck.KafkaError._ALL_BROKERS_DOWN]
    told.sort(key=lambda e: e.code() not in hopeless)
    causes = list(dict.fromkeys(_without_state(e.str()) for e in told)) or [last]
    auth = next((_without_state(e.str()) for e in told if e.code() == ck.KafkaError._AUTHENTICATION), None)
    # A listener that expects TLS or SASL closes a plaintext client's first request.
    closed = any("connection closed by peer" in line and "APIVERSION" in line for line in lines.lines)
    if closed and causes == [last]:
        causes = ["the broker closed the connection before it answered"]
    return NoBroker(causes, refused_credentials=auth, closed_by_broker=closed)


class _LogLines:
    """librdkafka's log lines, kept (a probe's own; nothing is printed)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, _level: int, message: str, *args: Any) -> None:
        self.lines.append(message % args if args else message)


def _without_state(text: str) -> str:
    """librdkafka's error text without its trailing ``(after 5ms in state SSL_HANDSHAKE)``."""
    head, _, tail = text.rpartition(" (after ")
    return head if head and "in state" in tail else text


def create_acls(kafka: KafkaSettings, bindings: Collection[Any], timeout_s: float = 30.0) -> list[str]:
    """Create ALLOW ``bindings`` (:class:`~streaming.kafka.acls.AclBinding`\\ s, any host);
    return a line for each one the cluster refused."""
    import confluent_kafka as ck
    from confluent_kafka import admin as ka

    resource_types = {"CLUSTER": ka.ResourceType.BROKER}  # librdkafka's name for it
    acls = {
        ka.AclBinding(
            resource_types.get(b.resource) or ka.ResourceType[b.resource],
            b.name,
            ka.ResourcePatternType[b.pattern],
            b.principal,
            "*",
            ka.AclOperation[b.operation],
            ka.AclPermissionType.ALLOW,
        ): b
        for b in bindings
    }
    if not acls:
        return []
    admin = _admin(kafka)  # kept until the results are in: freeing it cancels them
    refused: list[str] = []
    for acl, future in admin.create_acls(list(acls), request_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
        except ck.KafkaException as exc:
            refused.append(f"{acls[acl].describe()} ({exc.args[0].name()})")
    return refused
