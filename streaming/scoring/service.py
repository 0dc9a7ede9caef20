"""`driftloop score`: the Kafka side of the scorer.

One loop, one thread:

1. apply pending model updates (only here, between batches, so a batch is scored by the
   models that were serving when it started; read at most every 50 ms);
2. collect a micro-batch: up to ``max_batch`` records, or what is waiting once the first
   record is ``max_wait_ms`` old (counted from its Kafka timestamp, so records that queued
   while the previous batch was scored do not wait again);
3. decode and validate; bad records become DeadLetters on ``transactions.dlq``;
4. score (one matrix, one ``predict_proba`` per model) and hand the batch to the observers
   (the drift monitors);
5. produce the Scores (keyed by transaction_id), without waiting: the next batch is
   scored while the producer's I/O thread ships this one;
6. checkpoint, at most every ``checkpoint_interval_s`` (0: after every batch): flush the
   outputs and check every one was acknowledged, then the observers write their state (the
   drift monitors' snapshots), then the offsets are committed. The order is outputs, state,
   offsets, so a crash repeats at most the records since the last checkpoint
   (at-least-once), and restored monitor state matches the committed offsets. Outputs are
   also flushed whenever the input runs dry.

SIGTERM and SIGINT finish the batch in hand, commit it and leave the group cleanly. When
partitions are revoked in a rebalance, the batch in hand is finished and committed first.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.errors import CommitFailedError, KafkaError, RebalanceInProgressError
from kafka.structs import OffsetAndMetadata

from streaming import metrics
from streaming.config import Settings
from streaming.errors import DecodeError, DeliveryError, KafkaUnavailableError
from streaming.events import DeadLetter, EventCodec, ModelUpdate, Transaction, encode_event, transaction_type
from streaming.kafka.clients import (
    BATCH_FETCH_OPTIONS,
    BATCH_PRODUCE_OPTIONS,
    close_all,
    make_consumer,
    make_producer,
    wait_for_topic,
)
from streaming.kafka.dead_letters import dead_letter
from streaming.logs import get_logger
from streaming.registry import ModelRegistry
from streaming.scoring.scorer import BatchObserver, ScoredBatch, Scorer
from streaming.scoring.served_models import Located, ServedModels
from streaming.scoring.serving import ModelHolder, ServingPlan
from streaming.signals import stop_on_termination

log = get_logger("driftloop.score")

_LAG_EVERY_S = 5.0
#: Model updates are read between batches, at most this often: each read is a consumer
#: poll, and a swap 50 ms later than possible costs nothing.
_UPDATES_EVERY_S = 0.05
_IDLE_POLL_MS = 500


@dataclass
class ScoringStats:
    """Counts of one service run (also exported as Prometheus metrics)."""

    batches: int = 0
    scored: int = 0
    dead_letters: int = 0
    first_record_at: float | None = None  # time.monotonic() when the first record arrived
    last_commit_at: float | None = None  # time.monotonic() after the latest commit
    last_flush_at: float | None = None  # time.monotonic() after the latest flush of outputs


class ModelUpdateFollower:
    """Reads ``model.updates`` from the beginning, outside any consumer group.

    Every scorer sees every update for its model; the service folds them into a serving
    plan over what it actually has loaded. Undecodable updates become dead letters.
    """

    def __init__(self, settings: Settings) -> None:
        self._topic = settings.topics.model_updates
        self._model_name = settings.model_name
        self._codec = EventCodec(ModelUpdate, settings.messages.max_bytes)
        self._keep_bytes = settings.messages.dead_letter_value_bytes
        self._consumer = make_consumer(settings.kafka, None, enable_auto_commit=False)
        partitions = wait_for_topic(self._consumer, self._topic)
        self._partitions = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        self._consumer.assign(self._partitions)
        self._consumer.seek_to_beginning(*self._partitions)

    def poll(self, timeout_ms: int = 0) -> tuple[list[ModelUpdate], list[DeadLetter]]:
        """New updates for this model, and dead letters."""
        located, dead = self.poll_located(timeout_ms)
        return [update for update, _, _ in located], dead

    def poll_located(self, timeout_ms: int = 0) -> tuple[list[Located], list[DeadLetter]]:
        """New updates for this model with the partition and offset each was read at."""
        updates: list[Located] = []
        dead: list[DeadLetter] = []
        for records in self._consumer.poll(timeout_ms=timeout_ms).values():
            for record in records:
                try:
                    update = self._codec.decode(record.value)
                except DecodeError as exc:
                    dead.append(dead_letter(record, exc, "driftloop-score/model-updates", self._keep_bytes))
                    continue
                if update.model_name == self._model_name:
                    updates.append((update, record.partition, record.offset))
        return updates, dead

    def catch_up(self, timeout_s: float = 30.0) -> tuple[list[ModelUpdate], list[DeadLetter]]:
        """Read up to the current end of the topic."""
        located, dead = self.catch_up_located(timeout_s)
        return [update for update, _, _ in located], dead

    def catch_up_located(self, timeout_s: float = 30.0) -> tuple[list[Located], list[DeadLetter]]:
        """:meth:`catch_up`, with the partition and offset of each update."""
        end = self._consumer.end_offsets(self._partitions)
        updates: list[Located] = []
        dead: list[DeadLetter] = []
        deadline = time.monotonic() + timeout_s
        while any(self._consumer.position(tp) < end[tp] for tp in self._partitions):
            if time.monotonic() > deadline:
                raise KafkaUnavailableError(
                    f"could not read {self._topic} to its end within {timeout_s:.0f}s"
                )
            more, bad = self.poll_located(timeout_ms=200)
            updates += more
            dead += bad
        return updates, dead

    def close(self) -> None:
        self._consumer.close(autocommit=False)


def current_plan(settings: Settings) -> ServingPlan:
    """The serving plan that ``model.updates`` describes right now."""
    follower = ModelUpdateFollower(settings)
    try:
        updates, _ = follower.catch_up()
    finally:
        follower.close()
    plan = ServingPlan()
    for update in updates:
        plan = plan.apply(update)
    return plan


def batch_deadline(polled: dict[TopicPartition, list[Any]], received: float, max_wait_ms: int) -> float:
    """When a micro-batch whose first poll is ``polled`` (received at wall time ``received``)
    stops waiting for more records: ``max_wait_ms`` after its oldest record was produced,
    by the records' Kafka timestamps, and never later than ``max_wait_ms`` from now.

    Returned on the ``time.monotonic()`` clock. A producer clock behind ours only brings
    the deadline closer (smaller batches); one ahead of ours is capped.
    """
    produced = min(records[0].timestamp for records in polled.values() if records) / 1000
    waited = min(max(0.0, received - produced), max_wait_ms / 1000)
    return time.monotonic() + max_wait_ms / 1000 - waited


class PendingBatch:
    """The micro-batch in hand: records, when each arrived, and the offsets they complete."""

    def __init__(self) -> None:
        self.records: list[Any] = []
        self.received_at: list[float] = []
        self.next_offsets: dict[TopicPartition, int] = {}

    def add(self, polled: dict[TopicPartition, list[Any]], at: float) -> None:
        """Add one poll's records (per partition, in offset order) received at ``at``."""
        for tp, records in polled.items():
            if not records:
                continue
            self.records.extend(records)
            self.received_at.extend([at] * len(records))
            end = records[-1].offset + 1
            if end > self.next_offsets.get(tp, -1):
                self.next_offsets[tp] = end

    def __len__(self) -> int:
        return len(self.records)

    def take(self) -> tuple[list[Any], list[float], dict[TopicPartition, OffsetAndMetadata]]:
        """The records, their arrival times, and the offsets to commit once they are done."""
        records, received = self.records, self.received_at
        offsets = {tp: OffsetAndMetadata(end, "", -1) for tp, end in self.next_offsets.items()}
        self.records, self.received_at, self.next_offsets = [], [], {}
        return records, received, offsets


class ScoringService:
    """A consumer-group member that scores ``transactions`` into ``scores``.

    Parameters
    ----------
    settings
        The driftloop settings (topics, Kafka, scoring, registry).
    registry
        Where verified model versions are loaded from.
    observers
        Receivers of every scored batch (the drift monitors).
    """

    def __init__(
        self, settings: Settings, registry: ModelRegistry, observers: Sequence[BatchObserver] = ()
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.observers = list(observers)
        self.holder = ModelHolder()
        self.models = ServedModels(settings, registry, self.holder, self._send_refusal)
        self._spec = settings.feature_spec()
        self.scorer = Scorer(self.holder, settings.model_name, self._spec, settings.scoring.threshold)
        self.stats = ScoringStats()
        self._stop = threading.Event()
        messages = settings.messages
        self._codec = EventCodec(transaction_type(self._spec, messages.limits()), messages.max_bytes)
        self._topics = settings.topics
        self._consumer_name = f"{settings.kafka.client_id}/{settings.scoring.group_id}"
        self._pending = PendingBatch()
        self._producer: Any = None
        self._consumer: Any = None
        self._last_lag = 0.0
        self._deferred: dict[TopicPartition, OffsetAndMetadata] = {}
        self._unchecked: dict[TopicPartition, OffsetAndMetadata] = {}  # scored, not yet committed
        self._unflushed = 0  # outputs sent since the last flush
        self._send_failures: list[BaseException] = []  # appended by the producer's I/O thread
        self._last_checkpoint = 0.0
        self._failing = False  # a delivery failed: nothing more is flushed or committed

    # -- lifecycle -------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish the batch in hand, commit and return."""
        self._stop.set()

    def run(self, install_signal_handlers: bool = True) -> ScoringStats:
        if install_signal_handlers:
            stop_on_termination(self.stop)
        scoring = self.settings.scoring
        # A send blocks (for metadata, or a full buffer) at most as long as a flush waits.
        block_ms = int(scoring.delivery_timeout_s * 1000)
        self._producer = make_producer(self.settings.kafka, max_block_ms=block_ms, **BATCH_PRODUCE_OPTIONS)
        follower = ModelUpdateFollower(self.settings)
        try:
            self.models.dead_lettered |= self._refusals_on_record()
            self.models.apply(*follower.catch_up_located())
            while not self.holder.ready and not self._stop.is_set():
                log.info(
                    "waiting for a champion of model %r on %s",
                    self.settings.model_name,
                    self._topics.model_updates,
                )
                self.models.apply(*follower.poll_located(timeout_ms=int(scoring.model_wait_s * 1000)))
            if self._stop.is_set():
                return self.stats
            self._consumer = make_consumer(
                self.settings.kafka,
                scoring.group_id,
                max_poll_records=scoring.max_batch,
                session_timeout_ms=scoring.session_timeout_ms,
                heartbeat_interval_ms=3000,
                group_instance_id=scoring.group_instance_id,
                **BATCH_FETCH_OPTIONS,
            )
            wait_for_topic(self._consumer, self._topics.transactions)
            gc.freeze()  # the clients are long-lived too (see ServedModels.apply)
            self._consumer.subscribe([self._topics.transactions], listener=_FinishBatchOnRevoke(self))
            log.info(
                "scoring %s into %s",
                self._topics.transactions,
                self._topics.scores,
                extra={
                    "group_id": scoring.group_id,
                    "max_batch": scoring.max_batch,
                    "max_wait_ms": scoring.max_wait_ms,
                },
            )
            interval = scoring.checkpoint_interval_s
            updates_read = 0.0
            while not self._stop.is_set():
                if time.monotonic() - updates_read >= _UPDATES_EVERY_S:
                    self.models.apply(*follower.poll_located())
                    updates_read = time.monotonic()
                for observer in self.observers:
                    observer.poll()
                self._collect()
                if len(self._pending):
                    self._unchecked = _highest(self._unchecked, self._process_pending())
                if self._unchecked and time.monotonic() - self._last_checkpoint >= interval:
                    self._commit(self._take_unchecked())
                self._report_lag()
            self._commit(_highest(self._take_unchecked(), self._process_pending()))
        except KafkaError as exc:  # from kafka-python itself, here or in an observer: one clear line
            self._failing = True
            raise KafkaUnavailableError(
                f"Kafka at {self.settings.kafka.bootstrap_servers} failed under the scorer ({exc!r}); "
                "offsets not committed: once Kafka is back, a restart scores the transactions since "
                "the last checkpoint again"
            ) from exc
        except BaseException:
            self._failing = True  # the listener and the closes below need not wait on Kafka again
            raise
        finally:
            consumer, wait_s = self._consumer, 0.0 if self._failing else None
            close_all(
                follower.close,
                # The consumer's close may still call the revocation listener.
                *([partial(consumer.close, autocommit=False)] if consumer is not None else []),
                *(partial(observer.close, wait_s) for observer in self.observers),
                partial(self._producer.close, timeout=10 if wait_s is None else wait_s),
            )
        log.info(
            "scorer stopped", extra={"scored": self.stats.scored, "dead_letters": self.stats.dead_letters}
        )
        return self.stats

    # -- the batch -------------------------------------------------------------------

    def _collect(self) -> None:
        """Poll until ``max_batch`` records, or until ``max_wait_ms`` after the first record
        of the batch was produced and nothing more is waiting.

        The wait is counted from the first record's Kafka timestamp, not from when this
        loop got to it: records that queued up while the previous batch was scored have
        waited already, so they are taken with whatever else is waiting, without a further
        wait (see :func:`batch_deadline`).
        """
        scoring = self.settings.scoring
        deadline: float | None = None
        while len(self._pending) < scoring.max_batch and not self._stop.is_set():
            if deadline is None:
                # Idle: a longer poll costs no latency (it returns as soon as records come)
                # and gives a group rejoin time to complete; short idle polls kept a busy
                # 2-core box's scorer rejoining until the coordinator evicted it. Outputs
                # still in flight are flushed first, if nothing is waiting right now.
                wait_ms = 0 if self._unflushed else _IDLE_POLL_MS
            else:
                wait_ms = max(0, int((deadline - time.monotonic()) * 1000))
            polled = self._consumer.poll(
                timeout_ms=wait_ms, max_records=scoring.max_batch - len(self._pending)
            )
            if not polled:
                if deadline is not None:
                    if wait_ms == 0:
                        return  # the batch is due and nothing more is waiting
                    continue
                if not self._unflushed:
                    return  # idle: give model updates and stop requests a turn
                self._flush_outputs()
                continue
            received = time.time()
            if self.stats.first_record_at is None:
                self.stats.first_record_at = time.monotonic()
            self._pending.add(polled, received)
            if deadline is None:
                deadline = batch_deadline(polled, received, scoring.max_wait_ms)

    def _process_pending(self) -> dict[TopicPartition, OffsetAndMetadata]:
        """Score the batch in hand and send its outputs; return the offsets to commit once
        they are flushed (at the next checkpoint)."""
        if not len(self._pending):
            return {}
        records, received_at, offsets = self._pending.take()
        decode = self._codec.decode
        try:  # the common case: every record decodes
            transactions: list[Transaction] = [decode(record.value) for record in records]
            good, arrivals, dead = records, received_at, list[DeadLetter]()
        except DecodeError:
            transactions, good, arrivals, dead = self._decode_each(records, received_at)

        scores, probabilities = self.scorer.score(transactions, arrivals)
        if self.observers and transactions:
            where = np.array([(r.partition, r.offset, r.timestamp) for r in good], dtype=np.int64)
            batch = ScoredBatch(transactions, scores, probabilities, where[:, 0], where[:, 1], where[:, 2])
            for observer in self.observers:
                observer.observe(batch)

        # The send futures are not kept: an errback records a failure, so an acknowledged
        # output is freed at once. (Holding a checkpoint's worth of futures, ~20k a second,
        # had the garbage collector scan them again and again: twice the GC time per event.)
        send = self._producer.send
        encode = encode_event
        failed = self._send_failures.append
        scores_topic = self._topics.scores
        try:
            for s in scores:
                send(scores_topic, key=s.transaction_id.encode(), value=encode(s)).add_errback(failed)
            for d in dead:
                send(self._topics.transactions_dlq, key=d.key, value=encode(d)).add_errback(failed)
        except KafkaError as exc:  # the producer's buffer stayed full for max_block_ms: Kafka is gone
            self._failing = True
            raise DeliveryError(self._undelivered(f"send: {exc!r}")) from exc
        self._unflushed += len(scores) + len(dead)

        self.stats.batches += 1
        self.stats.scored += len(scores)
        self.stats.dead_letters += len(dead)
        metrics.BATCH_SIZE.observe(len(records))
        metrics.PROCESSING_LATENCY.observe(time.time() - min(received_at))
        oldest_ms = min(r.timestamp for r in records)
        metrics.END_TO_END_LATENCY.observe(max(0.0, time.time() - oldest_ms / 1000))
        _count_scores(scores)
        for d in dead:
            metrics.DEAD_LETTERS.labels(d.source_topic, d.reason).inc()
        return offsets

    def _flush_outputs(self) -> None:
        """Wait until every output sent so far is acknowledged; raise if one failed."""
        if not self._unflushed:
            return
        self._unflushed = 0
        problems: list[str] = []
        try:
            # The errbacks of failed sends have run when it returns.
            self._producer.flush(timeout=self.settings.scoring.delivery_timeout_s)
        except KafkaError as exc:  # a timeout, or the producer gave up on a batch
            problems.append(f"flush: {exc!r}")
        if self._send_failures:
            problems.append(f"{len(self._send_failures)} refused, the first: {self._send_failures[0]!r}")
        if problems:
            self._failing = True
            raise DeliveryError(self._undelivered("; ".join(problems)))
        self.stats.last_flush_at = time.monotonic()

    def _undelivered(self, problem: str) -> str:
        return (
            f"Kafka at {self.settings.kafka.bootstrap_servers} did not take the scores or dead letters "
            f"({problem}); offsets not committed: once Kafka is back, a restart scores the transactions "
            "since the last checkpoint again"
        )

    def _decode_each(
        self, records: list[Any], received_at: list[float]
    ) -> tuple[list[Transaction], list[Any], list[float], list[DeadLetter]]:
        """Decode one by one: the good records, their arrival times, and dead letters."""
        transactions: list[Transaction] = []
        good: list[Any] = []
        arrivals: list[float] = []
        dead: list[DeadLetter] = []
        decode = self._codec.decode
        for record, received in zip(records, received_at, strict=True):
            try:
                transactions.append(decode(record.value))
            except DecodeError as exc:
                dead.append(
                    dead_letter(
                        record, exc, self._consumer_name, self.settings.messages.dead_letter_value_bytes
                    )
                )
                log.warning(
                    "dead letter: %s",
                    exc,
                    extra={
                        "topic": record.topic,
                        "partition": record.partition,
                        "offset": record.offset,
                        "reason": exc.reason,
                    },
                )
                continue
            good.append(record)
            arrivals.append(received)
        return transactions, good, arrivals, dead

    def _take_unchecked(self) -> dict[TopicPartition, OffsetAndMetadata]:
        offsets, self._unchecked = self._unchecked, {}
        return offsets

    def _commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        """Checkpoint: flush the outputs, then the observers' state, then ``offsets`` plus
        any deferred earlier, for the partitions still owned.

        A commit that collides with a rebalance is deferred, not fatal: the outputs are
        already flushed, so the offsets are retried with the next commit (or on revocation);
        a partition that moved meanwhile is re-read by its new owner (at-least-once).
        """
        self._flush_outputs()
        merged = self._with_deferred(offsets)
        self._last_checkpoint = time.monotonic()
        if not merged:
            return
        self._checkpoint_observers(merged)
        try:
            self._consumer.commit(merged)
        except (RebalanceInProgressError, CommitFailedError) as exc:
            log.warning(
                "commit deferred by a rebalance: %s",
                exc,
                extra={"partitions": sorted(tp.partition for tp in merged)},
            )
            self._deferred = merged
            return
        self.stats.last_commit_at = time.monotonic()

    def _with_deferred(
        self, offsets: dict[TopicPartition, OffsetAndMetadata], revoked: Sequence[TopicPartition] = ()
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        """``offsets`` merged with the deferred ones (highest wins), for partitions still ours."""
        merged = self._deferred
        self._deferred = {}
        for tp, offset in offsets.items():
            if tp not in merged or offset.offset > merged[tp].offset:
                merged[tp] = offset
        owned = set(self._consumer.assignment()) | set(revoked)
        return {tp: offset for tp, offset in merged.items() if tp in owned}

    # -- models ----------------------------------------------------------------------

    def _refusals_on_record(self) -> set[tuple[int, int]]:
        """``(partition, offset)`` of the model updates already refused on the DLQ."""
        from streaming.kafka.reading import TopicReader

        topic, codec = self._topics.model_updates, EventCodec(DeadLetter)
        seen: set[tuple[int, int]] = set()
        try:
            reader = TopicReader(self.settings.kafka, self._topics.model_updates_dlq)
        except KafkaUnavailableError:  # no such topic yet: nothing refused before
            return seen
        with reader:
            for record in reader.records(follow=False, stop_after_s=30):
                try:
                    letter = codec.decode(record.value)
                except DecodeError:
                    continue
                if letter.source_topic == topic:
                    seen.add((letter.partition, letter.offset))
        return seen

    def _send_refusal(self, letter: DeadLetter) -> None:
        self._producer.send(self._topics.model_updates_dlq, key=letter.key, value=encode_event(letter))
        self._producer.flush(timeout=30)

    def _report_lag(self) -> None:
        now = time.monotonic()
        if now - self._last_lag < _LAG_EVERY_S or self._consumer is None:
            return
        self._last_lag = now
        for tp in self._consumer.assignment():
            highwater = self._consumer.highwater(tp)
            if highwater is None:
                continue
            try:
                position = self._consumer.position(tp, timeout_ms=1000)
            except KafkaError:
                continue
            metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - position))

    def _on_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        """Finish the batch in hand and hand its offsets back before the partitions go.

        kafka-python runs rebalance listeners on its network thread, where a blocking
        commit is refused; the commit is sent asynchronously instead, ahead of the rejoin.
        """
        if self._failing:  # the outputs did not get through: commit nothing, the next owner re-reads
            log.warning(
                "partitions revoked after a delivery failure: nothing committed",
                extra={"partitions": sorted(tp.partition for tp in revoked)},
            )
            return
        log.info(
            "partitions revoked: finishing the batch in hand",
            extra={"partitions": sorted(tp.partition for tp in revoked)},
        )
        offsets = self._with_deferred(_highest(self._take_unchecked(), self._process_pending()), revoked)
        self._flush_outputs()
        if offsets:
            self._checkpoint_observers(offsets)
            self._consumer.commit_async(offsets, callback=_log_async_commit)
        for observer in self.observers:
            observer.release(sorted(tp.partition for tp in revoked))

    def _checkpoint_observers(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        if self.observers:
            positions = {tp.partition: offset.offset for tp, offset in offsets.items()}
            for observer in self.observers:
                observer.checkpoint(positions)


def _log_async_commit(offsets: dict[TopicPartition, OffsetAndMetadata], response: Any) -> None:
    if isinstance(response, Exception):
        log.warning(
            "commit on revocation failed; the new owner re-reads those records: %s",
            response,
            extra={"partitions": sorted(tp.partition for tp in offsets)},
        )


class _FinishBatchOnRevoke(ConsumerRebalanceListener):
    def __init__(self, service: ScoringService) -> None:
        self._service = service

    def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        if revoked:
            self._service._on_revoked(revoked)

    def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        log.info("partitions assigned", extra={"partitions": sorted(tp.partition for tp in assigned)})

    def on_partitions_lost(self, lost: Sequence[TopicPartition]) -> None:
        # Evicted: our commits would fail; drop the batch, the new owner re-reads it.
        log.warning(
            "partitions lost: dropping the uncommitted batch",
            extra={"partitions": sorted(tp.partition for tp in lost)},
        )
        self._service._pending.take()
        self._service._deferred = {}
        self._service._unchecked = {}
        for observer in self._service.observers:
            observer.release(sorted(tp.partition for tp in lost))


def _highest(
    a: dict[TopicPartition, OffsetAndMetadata], b: dict[TopicPartition, OffsetAndMetadata]
) -> dict[TopicPartition, OffsetAndMetadata]:
    """Per partition, the later of two offsets to commit."""
    merged = dict(a)
    for tp, offset in b.items():
        if tp not in merged or offset.offset > merged[tp].offset:
            merged[tp] = offset
    return merged


def _count_scores(scores: Sequence[Any]) -> None:
    counts: dict[tuple[str, str], int] = {}
    for score in scores:
        key = (score.model_version, score.role)
        counts[key] = counts.get(key, 0) + 1
    for (version, role), n in counts.items():
        metrics.SCORED.labels(version, role).inc(n)
