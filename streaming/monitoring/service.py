"""The drift monitors inside `driftloop score`: the Kafka side of :class:`MonitorSuite`.

One :class:`DriftMonitor` per scorer process, one suite per owned partition:

- every scored batch (champion-scored rows) feeds its partition's suite; alarms become
  DriftEvents on ``drift.events`` (keyed by model name);
- delayed labels come joined to their predictions: the ``outcomes`` of `driftloop join`,
  keyed by account_id like the transactions (same partition count), so outcome partition
  p is read by whoever owns transaction partition p. An outcome of the partition's current
  champion is handed to the suite once the partition's transactions have been scored past
  the outcome's timestamp (so a backlog replays in order), or once the partition has had
  no new transactions for ``monitoring.label_idle_release_s`` (2 s; it is caught up);
- at each checkpoint (after the scores are flushed, before the offsets are committed) each
  suite is pickled, signed and written to the compacted ``driftloop.state`` topic with the
  transaction offset and the outcomes offset (``labels_offset``) it covers;
- on a partition's first batch the newest snapshot at or below that batch's first offset
  is verified and restored (a newer one, written just before a crash cut the commit off,
  is ignored); without one the suite starts fresh.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
from kafka import TopicPartition

from streaming import metrics
from streaming.checkpointing import DeliveryTracker
from streaming.config import Settings
from streaming.errors import (
    DecodeError,
    ModelRejectedError,
    StateRejectedError,
)
from streaming.events import EventCodec, Outcome, encode_event
from streaming.kafka.clients import close_all, make_consumer, make_producer, require_co_partitioned
from streaming.kafka.reading import TopicReader
from streaming.logs import get_logger
from streaming.models.reference import ReferenceProfile
from streaming.models.registry import ModelRegistry
from streaming.monitoring.label_gate import LabelGate
from streaming.monitoring.state import read_envelope, seal, state_key, unseal
from streaming.monitoring.suite import Alarm, MonitorSuite
from streaming.scoring.scorer import BatchObserver, ScoredBatch

log = get_logger("driftloop.monitor")

_MAX_POLLS = 10  # outcome polls per call of poll(), 2,000 records each at most


class DriftMonitor(BatchObserver):
    """Drift monitoring for the partitions this scorer owns (see the module docstring)."""

    def __init__(self, settings: Settings, registry: ModelRegistry) -> None:
        self.settings = settings
        self._spec = settings.feature_spec()
        self._registry = registry
        self._key = registry.signing_key
        topics = settings.topics
        self._topics = topics
        self._group = settings.scoring.group_id
        self._consumer_name = f"{settings.kafka.client_id}/{self._group}/monitor"
        self._producer = make_producer(
            settings.kafka,
            max_request_size=settings.monitoring.state_max_bytes,
            max_block_ms=int(settings.scoring.delivery_timeout_s * 1000),  # as the scorer's own sends
        )
        self._outcomes = make_consumer(settings.kafka, None, enable_auto_commit=False)
        require_co_partitioned(
            self._outcomes,
            [topics.outcomes, topics.transactions],
            "outcomes must be co-partitioned with transactions (keyed by account_id, same partition count)",
        )
        self._states = TopicReader(settings.kafka, topics.state, topic_timeout_s=30.0)
        self._outcome_codec = EventCodec(Outcome, settings.messages.max_bytes)
        self._suites: dict[int, MonitorSuite] = {}
        self._versions: dict[int, str] = {}
        self._gate = LabelGate(settings.monitoring.label_idle_release_s, settings.monitoring.max_held_labels)
        self._snapshots: dict[int, list[tuple[int, bytes]]] = {}
        self._references: dict[str, ReferenceProfile | None] = {}
        # Positions of the numeric and categorical values in a feature row (spec order).
        self._numeric_at = [i for i, f in enumerate(self._spec.features) if f.kind == "numeric"]
        self._categorical_at = [i for i, f in enumerate(self._spec.features) if f.kind == "categorical"]
        self.events_published = 0
        #: The newest alarms published (a debugging and test aid; at most 1,000).
        self.published: deque[Alarm] = deque(maxlen=1000)
        # Drift events must land before the offsets are committed.
        self._outputs = DeliveryTracker(
            lambda timeout_s: self._producer.flush(timeout=timeout_s),
            settings.scoring.delivery_timeout_s,
            lambda problem: (
                f"drift events were not written ({problem}); offsets not committed: a restart "
                "re-detects those drifts (with the same event ids)"
            ),
        )
        self._closed = False

    def suite(self, partition: int) -> MonitorSuite | None:
        """The monitors of ``partition`` while this scorer owns it and has scored on it (its
        counters, e.g. ``suite.scored`` and ``suite.labelled``, are what a test or a debugger
        reads)."""
        return self._suites.get(partition)

    # -- scored batches ----------------------------------------------------------------

    def observe(self, batch: ScoredBatch) -> None:
        champion = np.fromiter(
            (s.role == "champion" for s in batch.scores), dtype=bool, count=len(batch.scores)
        )
        spec = self._spec
        k = len(spec.numeric)
        numeric_at, categorical_at = self._numeric_at, self._categorical_at
        for partition in np.unique(batch.partitions).tolist():
            where = np.flatnonzero((batch.partitions == partition) & champion).tolist()
            if not len(where):
                continue
            version = batch.scores[where[0]].model_version
            suite = self._suite_for(
                partition, int(batch.offsets[where[0]]), int(batch.timestamps[where[0]]), version
            )
            transactions = [batch.transactions[i] for i in where]
            columns = list(zip(*(spec.values(t.features) for t in transactions), strict=True))
            numeric = (
                np.array([columns[i] for i in numeric_at], dtype=np.float64).T
                if k
                else np.empty((len(where), 0))
            )
            timestamps = batch.timestamps[where]
            alarms = suite.observe_scored(
                numeric,
                [columns[i] for i in categorical_at],
                batch.probabilities[where],
                batch.offsets[where],
            )
            self._gate.scored(partition, int(timestamps.max()))
            self._publish(alarms, partition, version)
            self._release_outcomes(partition)

    # -- outcomes (labels joined to their predictions) -------------------------------------

    def poll(self) -> None:
        if not self._suites:
            return
        for _ in range(_MAX_POLLS):  # a backlog drains in one call, not 500 records per batch
            polled = self._outcomes.poll(timeout_ms=0, max_records=2000)
            if not polled:
                break
            for tp, records in polled.items():
                self._gate.fetched(tp.partition, records)
        for partition in self._gate.holding():
            self._release_outcomes(partition, caught_up=self._gate.idle(partition))

    def _release_outcomes(self, partition: int, caught_up: bool = False) -> None:
        """Hand the partition's released outcomes of its current champion to its monitors."""
        suite = self._suites.get(partition)
        if suite is None:
            return
        version = self._versions[partition]
        scores: list[float] = []
        decisions: list[bool] = []
        labels: list[int] = []
        for record in self._gate.release(partition, caught_up):
            try:
                outcome = self._outcome_codec.decode(record.value)
            except DecodeError as exc:  # `driftloop join` wrote it: worth a warning, not a stop
                metrics.LABELS.labels("undecodable").inc()
                log.warning("undecodable outcome skipped: %s", exc, extra={"offset": record.offset})
                continue
            if outcome.role != "champion" or outcome.model_version != version:
                metrics.LABELS.labels("other_model").inc()
                continue
            scores.append(outcome.score)
            decisions.append(outcome.decision)
            labels.append(outcome.label)
        if not labels:
            return
        metrics.LABELS.labels("monitored").inc(len(labels))
        alarms = suite.observe_outcomes(np.array(scores), np.array(decisions), np.array(labels))
        self._publish(alarms, partition, version)

    # -- checkpoints and ownership -------------------------------------------------------

    def checkpoint(self, offsets: Mapping[int, int]) -> None:
        """Write a snapshot per partition, then make sure it and every drift event landed.

        A drift event that failed to land raises: the offsets are then
        not committed, and a restart re-detects it (with the same event_id). A snapshot that failed is logged and
        counted; the partition would restart from its previous snapshot.
        """
        snapshots = []
        for partition, offset in offsets.items():
            suite = self._suites.get(partition)
            if suite is None:
                continue
            raw = seal(
                suite,
                self._key,
                group=self._group,
                topic=self._topics.transactions,
                partition=partition,
                offset=offset,
                labels_offset=self._gate.handed_offset(partition),
                model_version=self._versions[partition],
            )
            future = self._producer.send(
                self._topics.state,
                key=state_key(self._group, self._topics.transactions, partition),
                value=raw,
            )
            snapshots.append((partition, len(raw), future))
        self._outputs.sent(len(snapshots))  # a flush also waits for the snapshots
        self._outputs.flush()
        for partition, size, future in snapshots:
            if future.failed():
                metrics.STATE_SNAPSHOTS.labels("failed").inc()
                log.error(
                    "state snapshot not written: %s",
                    future.exception,
                    extra={"partition": partition, "bytes": size, "topic": self._topics.state},
                )
            else:
                metrics.STATE_SNAPSHOTS.labels("written").inc()

    def release(self, partitions: Sequence[int]) -> None:
        if self._closed:
            return
        for partition in partitions:
            self._suites.pop(partition, None)
            self._versions.pop(partition, None)
            self._gate.forget(partition)
        self._assign_outcomes()

    def close(self, timeout_s: float | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        close_all(
            partial(self._producer.close, timeout=30 if timeout_s is None else timeout_s),  # flushes first
            partial(self._outcomes.close, autocommit=False),
            self._states.close,
        )

    # -- internals -----------------------------------------------------------------------

    def _suite_for(
        self, partition: int, first_offset: int, first_timestamp: int, version: str
    ) -> MonitorSuite:
        suite = self._suites.get(partition)
        if suite is not None and self._versions[partition] == version:
            return suite
        if suite is not None:  # a new champion: its own reference, fresh monitors
            log.info(
                "champion changed: monitors restart", extra={"partition": partition, "model_version": version}
            )
            self._suites[partition] = self._fresh_suite(version)
            self._versions[partition] = version
            return self._suites[partition]
        restored = self._restore(partition, first_offset, version)
        if restored is not None:
            suite, labels_offset = restored
        else:
            suite, labels_offset = (
                self._fresh_suite(version),
                self._outcomes_offset_at(partition, first_timestamp),
            )
        self._suites[partition] = suite
        self._versions[partition] = version
        self._gate.own(partition, labels_offset)
        self._assign_outcomes()
        return suite

    def _fresh_suite(self, version: str) -> MonitorSuite:
        return MonitorSuite(self.settings.monitoring, self._spec, self._reference(version))

    def _reference(self, version: str) -> ReferenceProfile | None:
        """The model's reference profile from its verified manifest (cached per version)."""
        if version not in self._references:
            try:
                manifest = self._registry.manifest(self.settings.model_name, version)
                self._references[version] = manifest.reference
            except ModelRejectedError as exc:
                log.warning("no reference for %s (%s): the first live rows become it", version, exc)
                self._references[version] = None
        return self._references[version]

    def _restore(self, partition: int, first_offset: int, version: str) -> tuple[MonitorSuite, int] | None:
        self._read_states()
        for offset, raw in reversed(self._snapshots.get(partition, [])):
            if offset > first_offset:
                log.warning(
                    "ignoring a state snapshot newer than the committed offset",
                    extra={"partition": partition, "snapshot_offset": offset, "offset": first_offset},
                )
                metrics.STATE_RESTORES.labels("newer_than_commit").inc()
                continue
            try:
                snapshot, suite = unseal(raw, self._key)
            except StateRejectedError as exc:
                log.error("state snapshot refused: %s", exc, extra={"partition": partition})
                metrics.STATE_RESTORES.labels(exc.reason).inc()
                return None
            if snapshot.model_version != version or not isinstance(suite, MonitorSuite):
                metrics.STATE_RESTORES.labels("other_model").inc()
                return None
            suite.attach_reference(self._reference(version))
            log.info(
                "monitors restored",
                extra={
                    "partition": partition,
                    "snapshot_offset": offset,
                    "labels_offset": snapshot.labels_offset,
                },
            )
            metrics.STATE_RESTORES.labels("snapshot").inc()
            return suite, snapshot.labels_offset
        metrics.STATE_RESTORES.labels("fresh").inc()
        return None

    def _read_states(self, timeout_s: float = 30.0) -> None:
        """Read the state topic to its current end, keeping this group's newest snapshots."""
        prefix = f"{self._group}/{self._topics.transactions}/".encode()
        for record in self._states.read_to_end(timeout_s):
            if not record.key or not record.key.startswith(prefix) or not record.value:
                continue
            try:
                envelope = read_envelope(record.value)
            except StateRejectedError:
                continue
            kept = self._snapshots.setdefault(envelope.partition, [])
            kept.append((envelope.offset, record.value))
            kept.sort(key=lambda item: item[0])
            del kept[:-3]

    def _outcomes_offset_at(self, partition: int, timestamp_ms: int) -> int:
        """Where a fresh suite starts reading outcomes: the first at or after its first transaction."""
        tp = TopicPartition(self._topics.outcomes, partition)
        found = self._outcomes.offsets_for_times({tp: max(0, timestamp_ms)})
        if found.get(tp) is not None:
            return int(found[tp].offset)
        return int(self._outcomes.end_offsets([tp])[tp])

    def _assign_outcomes(self) -> None:
        partitions = [TopicPartition(self._topics.outcomes, p) for p in sorted(self._suites)]
        self._outcomes.assign(partitions)
        for tp in partitions:
            self._outcomes.seek(tp, self._gate.fetch_offset(tp.partition))

    def _publish(self, alarms: Sequence[Any], partition: int, version: str) -> None:
        for alarm in alarms:
            self.published.append(alarm)
            event = alarm.to_event(self.settings.model_name, version, partition=partition)
            self._producer.send(
                self._topics.drift_events, key=self.settings.model_name.encode(), value=encode_event(event)
            ).add_errback(self._outputs.errback)
            self._outputs.sent(1)
            self.events_published += 1
            metrics.DRIFT_EVENTS.labels(event.signal, event.detector, event.severity).inc()
            log.warning(
                "drift detected: %s",
                event.signal,
                extra={
                    "event_id": event.event_id,
                    "feature": event.feature,
                    "detector": event.detector,
                    "severity": event.severity,
                    "partition": partition,
                    "offset": event.offset_end,
                },
            )
