"""`driftloop join`: the Kafka side of :class:`~streaming.outcomes.join.OutcomeJoin`.

A consumer-group member reads ``scores`` and ``labels`` (co-partitioned: both keyed by
transaction_id, on as many partitions) and writes ``outcomes`` (keyed by account_id, like
the transactions). Score partition p and label partition p share one RocksDB store on
local disk, ``<join.state_dir>/<group>/<scores topic>-<p>``.

A checkpoint (every ``join.checkpoint_interval_s``) runs in this order:

1. expire what the partition's event time has passed (late, unknown labels → dead letters);
2. flush the outcomes and dead letters and check every one was acknowledged;
3. produce each store's changes and input offsets to the changelog, and flush them
   (:mod:`~streaming.outcomes.changelog`);
4. commit each store's changes and offsets to disk in one atomic batch;
5. commit the consumer offsets.

A store never runs ahead of what is durable in Kafka; on restart it skips the records its
offsets cover, and on a disk that lacks it (or has an older copy) it first replays the
changelog. Outcomes are at-least-once: a crash between steps 2 and 5 sends some again,
with the same transaction_id, role and model version (deduplicate on those).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from streaming import metrics
from streaming.checkpointing import Checkpointer, DeliveryTracker, Offsets
from streaming.config import Settings
from streaming.errors import DecodeError, DeliveryError, KafkaUnavailableError
from streaming.events import DeadLetter, EventCodec, Score, encode_event, label_type
from streaming.kafka.clients import (
    close_all,
    commit_or_defer,
    require_co_partitioned,
    resume,
)
from streaming.kafka.dead_letters import bounded_dead_letter, dead_letter
from streaming.kafka.native import NativeDeliveryError, NativeProducer
from streaming.kafka.transport import make_consumer
from streaming.logs import get_logger
from streaming.outcomes.changelog import catch_up, produce_changes
from streaming.outcomes.gauges import count, report
from streaming.outcomes.join import Arrival, JoinResult, OutcomeJoin, Refusal
from streaming.outcomes.store import PartitionStore
from streaming.signals import stop_on_termination

log = get_logger("driftloop.join")


@dataclass
class JoinStats:
    """Counts of one run (also Prometheus metrics)."""

    scores: int = 0
    labels: int = 0
    outcomes: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    restored_records: int = 0
    checkpoints: int = 0


@dataclass
class _Partition:
    join: OutcomeJoin
    offsets: dict[str, int]  # the next scores / labels offset the store has not seen
    dirty: bool = False


class JoinService:
    """A consumer-group member joining ``scores`` with ``labels`` into ``outcomes``."""

    def __init__(self, settings: Settings, on_checkpoint: Callable[[float], None] | None = None) -> None:
        """``on_checkpoint`` is called after each checkpoint with its duration in seconds
        (what ``driftloop_join_checkpoint_seconds`` observes)."""
        self.settings = settings
        self._on_checkpoint = on_checkpoint
        self.stats = JoinStats()
        self._topics = settings.topics
        self._join = settings.join
        self._stop = threading.Event()
        self._name = f"{settings.kafka.client_id}/{settings.join.group_id}"
        self._score_codec = EventCodec(Score, settings.messages.max_bytes)
        self._label_codec = EventCodec(label_type(settings.messages.limits()), settings.messages.max_bytes)
        self._partitions: dict[int, _Partition] = {}
        self._state_dir = settings.join_state_dir / settings.join.group_id
        self.delivery = DeliveryTracker(
            lambda timeout_s: self._sending().flush(timeout_s),
            settings.join.delivery_timeout_s,
            lambda problem: (
                f"outcomes or dead letters were not written ({problem}); offsets not committed: "
                "a restart joins those records again"
            ),
        )
        self.checkpoints = Checkpointer(
            self.delivery,
            write_state=self._write_stores,
            commit=lambda offsets: commit_or_defer(self._consumer, offsets),
            owned=lambda: self._consumer.assignment(),
            interval_s=settings.join.checkpoint_interval_s,
        )
        self._producer: NativeProducer | None = None
        self._consumer: Any = None

    # -- lifecycle ------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    def run(
        self, install_signal_handlers: bool = True, on_ready: Callable[[], None] | None = None
    ) -> JoinStats:
        if install_signal_handlers:
            stop_on_termination(self.stop)
        join = self._join
        # librdkafka: an outcome and up to six changelog records per transaction cost ~32 µs
        # each through kafka-python's send, three quarters of the join's time.
        producer = self._producer = NativeProducer(
            self.settings.kafka, self.delivery.errback, join.delivery_timeout_s, linger_ms=20
        )
        # Range assignment gives score partition p and label partition p to the same member
        # (the cooperative-sticky default of the other groups does not).
        self._consumer = make_consumer(
            self.settings.kafka,
            join.group_id,
            max_poll_records=join.max_batch,
            fetch_max_wait_ms=100,
            session_timeout_ms=join.session_timeout_ms,
            heartbeat_interval_ms=max(100, join.session_timeout_ms // 10),
            partition_assignment_strategy=[RangePartitionAssignor],
        )
        try:
            # Subscribe, then wait for the metadata, then poll (see wait_for_topic).
            self._consumer.subscribe([self._topics.scores, self._topics.labels], listener=_Rebalance(self))
            require_co_partitioned(
                self._consumer,
                [self._topics.scores, self._topics.labels, self._topics.outcomes_changelog],
                "the join needs co-partitioned inputs: labels keyed by transaction_id on as many "
                "partitions as scores, and the changelog created with them (`driftloop topics create`)",
            )
            topics, where = self._topics, {"group_id": join.group_id, "state_dir": str(self._state_dir)}
            log.info("joining %s with %s into %s", topics.scores, topics.labels, topics.outcomes, extra=where)
            if on_ready is not None:
                on_ready()
            while not self._stop.is_set():
                polled = self._consumer.poll(timeout_ms=200, max_records=join.max_batch)
                for tp, records in polled.items():
                    self._process(tp, records)
                self._pace_labels()
                if self.checkpoints.due or (not polled and self.delivery.unflushed):
                    self._checkpoint()
            self._checkpoint()
        except KafkaError as exc:
            self.delivery.failing = True
            raise KafkaUnavailableError(
                f"Kafka at {self.settings.kafka.bootstrap_servers} failed under the join ({exc!r}); "
                "offsets not committed: a restart joins the records since the last checkpoint again"
            ) from exc
        except BaseException:
            self.delivery.failing = True
            raise
        finally:
            wait_s = 0.0 if self.delivery.failing else None
            close_all(
                partial(self._consumer.close, autocommit=False),
                partial(producer.close, timeout=10 if wait_s is None else wait_s),
                self._close_stores,
            )
        log.info("join stopped", extra={"outcomes": self.stats.outcomes, "refused": self.stats.refused})
        return self.stats

    # -- records --------------------------------------------------------------------------

    def _process(self, tp: TopicPartition, records: Sequence[Any]) -> None:
        part = self._partition(tp.partition)
        kind = "scores" if tp.topic == self._topics.scores else "labels"
        seen = part.offsets.get(kind, 0)
        result = JoinResult()
        room = self._join.max_waiting_labels
        done = None
        for record in records:
            if record.offset < seen:  # the store already holds it (its commit outran ours)
                done = record.offset + 1
                continue
            if kind == "scores":
                self._score(part, record, result)
            elif part.join.counters.waiting >= room:
                # The waiting room is full (the scores are behind): this label stays in Kafka,
                # read again once half the room is free, instead of being refused as unknown.
                log.info("labels paused: the waiting room is full", extra={"partition": tp.partition})
                self._consumer.seek(tp, record.offset)
                self._consumer.pause(tp)
                break
            else:
                self._label(part, record, result)
            done = record.offset + 1
        if done is not None:
            part.offsets[kind] = max(seen, done)
            part.dirty = True
            self._send(result, tp.partition)
            self.checkpoints.done({tp: done})

    def _score(self, part: _Partition, record: Any, result: JoinResult) -> None:
        self.stats.scores += 1
        try:
            score = self._score_codec.decode(record.value)
        except DecodeError as exc:  # the scorer wrote it: worth a warning, not a stop
            metrics.JOIN_INPUTS.labels("scores", "undecodable").inc()
            log.warning(
                "undecodable score skipped: %s",
                exc,
                extra={"partition": record.partition, "offset": record.offset},
            )
            return
        result.extend(part.join.score(score))

    def _label(self, part: _Partition, record: Any, result: JoinResult) -> None:
        self.stats.labels += 1
        try:
            label = self._label_codec.decode(record.value)
        except DecodeError as exc:
            keep = self.settings.messages.dead_letter_value_bytes
            self._dead_letter(dead_letter(record, exc, self._name, keep))
            return
        if record.key != label.transaction_id.encode():
            detail = (
                f"label for {label.transaction_id!r} has key {record.key!r}: labels are keyed by "
                "transaction_id, so each lands on its score's partition"
            )
            arrival = Arrival(label=label, offset=record.offset, key=record.key, value=record.value)
            self._refuse(Refusal(arrival, "not_keyed_by_transaction_id", detail), record.partition)
            return
        result.extend(
            part.join.label(Arrival(label=label, offset=record.offset, key=record.key, value=record.value))
        )

    def _send(self, result: JoinResult, partition: int) -> None:
        send, topic = self._sending().send, self._topics.outcomes
        try:
            for outcome in result.outcomes:
                send(topic, outcome.account_id.encode(), encode_event(outcome))
            self.delivery.sent(len(result.outcomes))
            for refusal in result.refused:
                self._refuse(refusal, partition)
        except NativeDeliveryError as exc:
            raise self.delivery.send_failed(exc) from exc
        self.stats.outcomes += len(result.outcomes)
        count(result)

    def _sending(self) -> NativeProducer:
        if self._producer is None:
            raise RuntimeError("the join's producer is created by run()")
        return self._producer

    def _refuse(self, refusal: Refusal, partition: int) -> None:
        arrival, keep = refusal.arrival, self.settings.messages.dead_letter_value_bytes
        self._dead_letter(
            bounded_dead_letter(
                reason=refusal.reason,
                error=refusal.detail,
                source_topic=self._topics.labels,
                partition=partition,
                offset=arrival.offset,
                key=arrival.key,
                value=arrival.value,
                consumer=self._name,
                max_value_bytes=keep,
            )
        )

    def _dead_letter(self, letter: DeadLetter) -> None:
        """Send a refused label to ``labels.dlq`` and count it by its reason."""
        try:
            self._sending().send(self._topics.labels_dlq, letter.key, encode_event(letter))
        except NativeDeliveryError as exc:
            raise self.delivery.send_failed(exc) from exc
        self.delivery.sent(1)
        self.stats.refused[letter.reason] = self.stats.refused.get(letter.reason, 0) + 1
        metrics.JOIN_INPUTS.labels("labels", letter.reason).inc()
        metrics.DEAD_LETTERS.labels(self._topics.labels, letter.reason).inc()

    def _pace_labels(self) -> None:
        """Resume a partition's labels (paused while its waiting room was full) once half the
        room is free: their scores came, or the scores' event time passed them."""
        room = self._join.max_waiting_labels
        for tp in list(self._consumer.paused()):
            part = self._partitions.get(tp.partition)
            if part is None or part.join.counters.waiting < room // 2:
                resume(self._consumer, [tp])

    # -- checkpoints ----------------------------------------------------------------------

    def _checkpoint(self) -> None:
        started = time.monotonic()
        for partition, part in self._partitions.items():
            expired = part.join.expire()
            if expired.refused or expired.expired:
                part.dirty = True
                self._send(expired, partition)
        self.checkpoints.checkpoint()
        self._report()
        seconds = time.monotonic() - started
        metrics.JOIN_CHECKPOINT_SECONDS.observe(seconds)
        if self._on_checkpoint is not None:
            self._on_checkpoint(seconds)

    def _write_stores(self, offsets: Offsets) -> None:
        """Changelog first (flushed), then each store's atomic commit: steps 3 and 4."""
        changed = {p: part for p, part in self._partitions.items() if part.dirty}
        for part in changed.values():
            part.join.sync()
        try:
            positions = produce_changes(
                self._sending(),
                self._topics.outcomes_changelog,
                {p: part.join.store.changes(part.offsets) for p, part in changed.items()},
                self._join.delivery_timeout_s,
            )
        except DeliveryError:
            self.delivery.failing = True
            raise
        for partition, part in changed.items():
            part.join.store.commit(part.offsets, changelog_position=positions[partition])
            part.dirty = False
        self.stats.checkpoints += 1

    def _report(self) -> None:
        report(self._consumer, {p: part.join for p, part in self._partitions.items()})

    # -- partitions -----------------------------------------------------------------------

    def _partition(self, partition: int) -> _Partition:
        part = self._partitions.get(partition)
        if part is None:
            part = self._partitions[partition] = self._open(partition)
        return part

    def _open(self, partition: int) -> _Partition:
        """Open the partition's store, catch it up from the changelog, and wrap it."""
        store = PartitionStore(self._state_dir / f"{self._topics.scores}-{partition}")
        started = time.monotonic()
        applied = catch_up(store, self.settings.kafka, self._topics.outcomes_changelog, partition)
        self.stats.restored_records += applied
        join = self._join
        part = _Partition(
            OutcomeJoin(store, join.ttl_s, join.label_wait_s, join.max_waiting_labels), store.offsets
        )
        log.info(
            "join store ready",
            extra={
                "partition": partition,
                "restored_records": applied,
                "seconds": round(time.monotonic() - started, 2),
                "pending": part.join.counters.pending,
                "offsets": part.offsets,
            },
        )
        return part

    def _release(self, partitions: Sequence[int]) -> None:
        for partition in partitions:
            part = self._partitions.pop(partition, None)
            if part is not None:
                part.join.store.discard()
                part.join.store.close()

    def _close_stores(self) -> None:
        self._release(list(self._partitions))

    def _on_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        if not self.delivery.failing:
            self.checkpoints.on_revoked(
                revoked,
                lambda offsets: self._consumer.commit_async(
                    {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in offsets.items()}
                ),
            )
        gone = {tp.partition for tp in revoked}
        still = {tp.partition for tp in self._consumer.assignment() if tp not in revoked}
        self._release(sorted(gone - still))

    def _on_lost(self, lost: Sequence[TopicPartition]) -> None:
        self.checkpoints.on_lost()
        self._release(sorted({tp.partition for tp in lost}))


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, service: JoinService) -> None:
        self._service = service

    def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        if revoked:
            self._service._on_revoked(revoked)

    def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        log.info(
            "partitions assigned",
            extra={"partitions": sorted({f"{tp.topic}-{tp.partition}" for tp in assigned})},
        )

    def on_partitions_lost(self, lost: Sequence[TopicPartition]) -> None:
        self._service._on_lost(lost)
