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

With ``scoring.delivery = exactly_once`` the producer is transactional: the outputs since
the last checkpoint are one Kafka transaction, and step 6 commits it together with the
consumed offsets (:mod:`streaming.checkpointing.transactions`); a ``read_committed`` reader
sees every output once, whatever crashes.

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
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from streaming import metrics
from streaming.checkpointing import BatchCollector, Checkpointer, DeliveryTracker, Offsets, PendingBatch
from streaming.checkpointing.transactions import TransactionalCommits
from streaming.config import Settings
from streaming.control.follower import ModelUpdateFollower
from streaming.errors import DecodeError, DeliveryError, KafkaUnavailableError
from streaming.events import DeadLetter, EventCodec, Transaction, encode_event, transaction_type
from streaming.kafka.clients import (
    BATCH_FETCH_OPTIONS,
    BATCH_PRODUCE_OPTIONS,
    close_all,
    commit_or_defer,
    not_authorized,
    wait_for_topic,
)
from streaming.kafka.dead_letters import dead_letter
from streaming.kafka.native import NativeDeliveryError
from streaming.kafka.transport import make_consumer, make_output_producer
from streaming.logs import get_logger
from streaming.models.registry import ModelRegistry
from streaming.scoring.holder import ModelHolder
from streaming.scoring.scorer import BatchObserver, ScoredBatch, Scorer
from streaming.scoring.served_models import ServedModels
from streaming.signals import stop_on_termination

log = get_logger("driftloop.score")

_LAG_EVERY_S = 5.0


@dataclass
class ScoringStats:
    """Counts of one service run (also exported as Prometheus metrics). When the first record
    came and when outputs were last flushed are the service's ``collector.first_record_at``
    and ``delivery.last_flush_at``."""

    batches: int = 0
    scored: int = 0
    dead_letters: int = 0


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
        scoring = settings.scoring
        self._pending = PendingBatch()
        self.collector = BatchCollector(scoring.max_batch, scoring.max_wait_ms, scoring.idle_poll_ms)
        self.delivery = DeliveryTracker(self._flush_producer, scoring.delivery_timeout_s, self._undelivered)
        self.checkpoints = Checkpointer(
            self.delivery,
            write_state=self._checkpoint_observers,
            commit=self._commit,
            owned=lambda: self._consumer.assignment(),
            interval_s=scoring.checkpoint_interval_s,
        )
        self._producer: Any = None
        self._consumer: Any = None
        self._transactions: TransactionalCommits | None = None  # with delivery exactly_once
        self._rewind_due = False
        self._last_lag = 0.0

    # -- lifecycle -------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish the batch in hand, commit and return."""
        self._stop.set()

    def run(self, install_signal_handlers: bool = True) -> ScoringStats:
        if install_signal_handlers:
            stop_on_termination(self.stop)
        scoring = self.settings.scoring
        # On either client, a send blocks (for metadata, or a full buffer) at most
        # delivery_timeout_s, as long as a flush waits.
        transactional = self._transactional_options()
        self._producer = make_output_producer(
            self.settings.kafka,
            self.delivery.errback,
            scoring.delivery_timeout_s,
            **BATCH_PRODUCE_OPTIONS,
            **transactional,
        )
        follower = ModelUpdateFollower(self.settings)
        try:
            if transactional:
                self._start_transactions()
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
                heartbeat_interval_ms=scoring.heartbeat_interval_ms,
                group_instance_id=scoring.group_instance_id,
                **BATCH_FETCH_OPTIONS,
            )
            gc.freeze()  # the clients are long-lived too (see ServedModels.apply)
            self._consumer.subscribe([self._topics.transactions], listener=_FinishBatchOnRevoke(self))
            wait_for_topic(self._consumer, self._topics.transactions)
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
            updates_read = 0.0
            while not self._stop.is_set():
                self._rewind_if_due()
                if time.monotonic() - updates_read >= scoring.updates_poll_interval_s:
                    self.models.apply(*follower.poll_located())
                    updates_read = time.monotonic()
                for observer in self.observers:
                    observer.poll()
                self._collect()
                self._process_pending()
                if self.checkpoints.due:
                    self.checkpoints.checkpoint()
                self._report_lag()
            self._process_pending()
            self.checkpoints.checkpoint()
        except (KafkaError, DeliveryError) as exc:  # from a client, here or in an observer: one clear line
            self.delivery.failing = True
            refused = not_authorized(self.settings.kafka, exc, "do what the scorer does") or self._fenced(exc)
            if refused is not None:
                raise refused from exc
            if isinstance(exc, DeliveryError):
                raise
            raise KafkaUnavailableError(
                f"Kafka at {self.settings.kafka.bootstrap_servers} failed under the scorer ({exc!r}); "
                "offsets not committed: once Kafka is back, a restart scores the transactions since "
                "the last checkpoint again"
            ) from exc
        except BaseException:
            self.delivery.failing = True  # the listener and the closes below need not wait on Kafka again
            raise
        finally:
            consumer, wait_s = self._consumer, 0.0 if self.delivery.failing else None
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
        """Fill the batch in hand by the micro-batching rule (see :class:`BatchCollector`)."""
        self.collector.collect(
            self._pending,
            self._consumer.poll,
            stopped=self._stop.is_set,
            outputs_in_flight=lambda: self.delivery.unflushed > 0,
            flush_outputs=self.delivery.flush,
            fill=getattr(self._consumer, "fill", None),
        )

    def _process_pending(self) -> None:
        """Score the batch in hand and send its outputs; its offsets are committed once they
        are flushed (at the next checkpoint)."""
        if self._rewind_if_due() or not len(self._pending):
            return
        records, received_at, offsets = self._pending.take()
        decode = self._codec.decode
        try:  # the common case: every record decodes
            transactions: list[Transaction] = [decode(record.value) for record in records]
            good, arrivals, dead = records, received_at, list[DeadLetter]()
        except DecodeError:
            transactions, good, arrivals, dead = self._decode_each(records, received_at)

        if self._transactions is not None:  # the outputs below (and the observers') go into it
            self._transactions.begin()
        rows = self.scorer.rows(transactions)
        scores, probabilities = self.scorer.score(transactions, arrivals, rows)
        if self.observers and transactions:
            where = np.array([(r.partition, r.offset, r.timestamp) for r in good], dtype=np.int64)
            batch = ScoredBatch(
                transactions, scores, probabilities, where[:, 0], where[:, 1], where[:, 2], rows
            )
            for observer in self.observers:
                observer.observe(batch)

        # The send futures are not kept (see DeliveryTracker): the errback records a failure.
        send = self._producer.send  # a failed delivery is reported to self.delivery
        encode = encode_event
        scores_topic = self._topics.scores
        try:
            for s in scores:
                send(scores_topic, s.transaction_id.encode(), encode(s))
            for d in dead:
                send(self._topics.transactions_dlq, d.key, encode(d))
        except (KafkaError, NativeDeliveryError) as exc:  # the buffer stayed full: Kafka is gone
            raise self.delivery.send_failed(exc) from exc
        self.delivery.sent(len(scores) + len(dead))
        self.checkpoints.done(offsets)

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

    def _flush_producer(self, timeout_s: float) -> None:
        self._producer.flush(timeout=timeout_s)

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
        transactions = self._transactions
        # Exactly-once: inside the open transaction (the next checkpoint commits it), or in
        # one of its own when none is open (no records done: no checkpoint is due).
        alone = transactions is not None and not transactions.open
        if transactions is not None:
            transactions.begin()
        self._producer.send(self._topics.model_updates_dlq, letter.key, encode_event(letter))
        self._producer.flush(timeout=30)
        if alone:
            assert transactions is not None
            transactions.commit_outputs()

    # -- exactly-once ----------------------------------------------------------------

    def _fenced(self, exc: BaseException) -> KafkaUnavailableError | None:
        """The one line for a transactional producer another scorer fenced, else None."""
        # librdkafka says it in its client error, and only purges the queued records
        said = f"{type(exc).__name__} {exc} {getattr(self._producer, 'last_error', '')}"
        if self._transactions is None or "fenced" not in said.lower():
            return None
        return KafkaUnavailableError(
            "another scorer took over transactional id "
            f"{self.settings.scoring.transactional_id_or_default()!r} (this one was fenced); give each "
            "scorer process its own scoring.group_instance_id or scoring.transactional_id. Nothing it "
            "scored since its last checkpoint is visible to read_committed readers"
        )

    def _transactional_options(self) -> dict[str, Any]:
        """The producer's transactional options with ``scoring.delivery`` exactly_once."""
        scoring = self.settings.scoring
        if scoring.delivery != "exactly_once":
            return {}
        return {
            "transactional_id": scoring.transactional_id_or_default(),
            "transaction_timeout_ms": scoring.transaction_timeout_ms,
        }

    def _start_transactions(self) -> None:
        """Initialize the transactional producer (fencing a crashed predecessor with the same
        transactional id and aborting its open transaction) and hand it to the observers."""
        self._producer.init_transactions()
        self._transactions = TransactionalCommits(
            self._producer,
            lambda: self._consumer.group_metadata(),
            lambda offsets: {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in offsets.items()},
            self._request_rewind,
        )
        for observer in self.observers:
            observer.use_producer(self._producer)
        log.info(
            "exactly-once: one transaction per checkpoint",
            extra={"transactional_id": self.settings.scoring.transactional_id_or_default()},
        )

    def _commit(self, offsets: Offsets) -> bool | None:
        """The checkpoint's commit: the transaction with the offsets, or the offsets alone."""
        if self._transactions is not None:
            return self._transactions.commit(offsets)
        return commit_or_defer(self._consumer, offsets)

    def _request_rewind(self, cause: BaseException) -> None:
        # Also called from a rebalance listener, where the consumer may not block: the main
        # loop rewinds before it scores anything else.
        log.warning("transaction aborted; the records since the last checkpoint are read again: %r", cause)
        self._rewind_due = True

    def _rewind_if_due(self) -> bool:
        """After an aborted transaction: drop what was polled and seek every owned partition
        back to its committed offset. True when it rewound."""
        if not self._rewind_due:
            return False
        self._rewind_due = False
        self._pending.drop()
        self.checkpoints.on_lost()  # the offsets done since the last commit were aborted with it
        for tp in self._consumer.assignment():
            committed = self._consumer.committed(tp)
            if committed is None:
                self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, committed)
        log.warning("rewound to the committed offsets after an aborted transaction")
        return True

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
        partitions = sorted(tp.partition for tp in revoked)
        if self.delivery.failing:  # the outputs did not get through: the next owner re-reads
            log.warning(
                "partitions revoked after a delivery failure: nothing committed",
                extra={"partitions": partitions},
            )
            return
        log.info("partitions revoked: finishing the batch in hand", extra={"partitions": partitions})
        self._process_pending()
        if self._transactions is not None:  # commits on the producer, not the consumer: it may block
            self.checkpoints.on_revoked(revoked, self._transactions.commit)
        else:
            self.checkpoints.on_revoked(
                revoked,
                lambda offsets: self._consumer.commit_async(
                    {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in offsets.items()},
                    callback=_log_async_commit,
                ),
            )
        for observer in self.observers:
            observer.release(partitions)

    def _on_lost(self, lost: Sequence[TopicPartition]) -> None:
        """Evicted: our commits would fail; drop the batch, the new owner re-reads it."""
        partitions = sorted(tp.partition for tp in lost)
        log.warning("partitions lost: dropping the uncommitted batch", extra={"partitions": partitions})
        self._pending.drop()
        self.checkpoints.on_lost()
        if self._transactions is not None and self._transactions.open:
            self._transactions.abort(RuntimeError(f"partitions {partitions} lost"))
        for observer in self.observers:
            observer.release(partitions)

    def _checkpoint_observers(self, offsets: Offsets) -> None:
        if self.observers:
            by_topic_partition: dict[Any, int] = offsets
            positions = {tp.partition: offset for tp, offset in by_topic_partition.items()}
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
    """The scorer's rebalance listener; also keeps ``driftloop_partitions_owned`` true (the
    readiness signal: a scorer that owns partitions is consuming them)."""

    def __init__(self, service: ScoringService) -> None:
        self._service = service
        self._owned: set[int] = set()

    def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        if revoked:
            self._service._on_revoked(revoked)
        self._disown(revoked)

    def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        self._owned |= {tp.partition for tp in assigned}
        metrics.PARTITIONS_OWNED.set(len(self._owned))
        log.info(
            "partitions assigned",
            extra={"partitions": sorted(tp.partition for tp in assigned), "owned": sorted(self._owned)},
        )

    def on_partitions_lost(self, lost: Sequence[TopicPartition]) -> None:
        self._service._on_lost(lost)
        self._disown(lost)

    def _disown(self, partitions: Sequence[TopicPartition]) -> None:
        self._owned -= {tp.partition for tp in partitions}
        metrics.PARTITIONS_OWNED.set(len(self._owned))


def _count_scores(scores: Sequence[Any]) -> None:
    counts: dict[tuple[str, str], int] = {}
    for score in scores:
        key = (score.model_version, score.role)
        counts[key] = counts.get(key, 0) + 1
    for (version, role), n in counts.items():
        metrics.SCORED.labels(version, role).inc(n)
