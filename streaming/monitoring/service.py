"""`driftloop monitor`: the Kafka side of :class:`~.model_monitor.ModelMonitor`, one per model.

- Reads ``drift.evidence`` in the consumer group ``monitoring.group_id``. The topic has one
  partition and every record is keyed by model name, so one member of the group is active
  for the model; the others stand by (``driftloop_monitor_active`` 0) and the group hands
  the partition to one of them when the active one leaves or dies (within
  ``monitoring.session_timeout_ms``).
- While active, reads every partition of ``outcomes`` (the labelled predictions of
  `driftloop join`) for the label and error signals.
- Merges both in event time (:class:`~.merging.EventTimeMerger`), skips evidence it counted
  already (by source offsets), and publishes one DriftEvent per model per drift episode on
  ``drift.events`` (keyed by model name), and to Prefect's event feed when PREFECT_API_URL
  is set (:mod:`.prefect_events`).
- A checkpoint (every ``monitoring.checkpoint_interval_s``, and when the partition is
  revoked) flushes the drift events, then writes a signed snapshot of the monitor, with the
  evidence and outcomes offsets it covers, to the compacted ``driftloop.state`` topic, then
  commits. The snapshot is what a restart (or a standby taking over) resumes from: its
  offsets, not the committed ones, say where to read. A drift event published after the last
  snapshot is published again after a crash, with the same event_id.

Undecodable evidence goes to ``drift.evidence.dlq`` (with its bytes and position) and is
counted; nothing a producer writes stops the monitor.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.errors import KafkaError

from streaming import metrics
from streaming.checkpointing import DeliveryTracker
from streaming.config import Settings
from streaming.errors import DecodeError, KafkaUnavailableError, ModelRejectedError, StateRejectedError
from streaming.events import DriftEvent, EventCodec, Evidence, Outcome, encode_event
from streaming.kafka.clients import close_all, commit_or_defer, wait_for_topic
from streaming.kafka.dead_letters import dead_letter
from streaming.kafka.reading import TopicReader
from streaming.kafka.transport import make_consumer, make_producer
from streaming.logs import get_logger
from streaming.models.registry import ModelRegistry
from streaming.monitoring.evidence import BinLayout
from streaming.monitoring.model_monitor import ModelAlarm, ModelMonitor, OutcomeChunk
from streaming.monitoring.performance import PerformanceModel
from streaming.monitoring.prefect_events import PrefectEvents
from streaming.monitoring.state import read_envelope, seal, unseal
from streaming.signals import stop_on_termination

log = get_logger("driftloop.monitor")

#: A new champion's outcomes are read from this long before its first evidence was written
#: (the join writes an outcome once the score and its label are both in: never before the
#: scorer sent that batch's evidence, give or take the clocks of two hosts).
_OUTCOMES_LEAD_MS = 60_000


@dataclass
class MonitorStats:
    """Counts of one run (also Prometheus metrics)."""

    evidence: int = 0
    outcomes: int = 0
    drift_events: int = 0
    checkpoints: int = 0
    restored: bool = False
    published: list[DriftEvent] = field(default_factory=list)
    alarms: list[ModelAlarm] = field(default_factory=list)  # what each published event came from


class MonitorService:
    """One model's monitor as a consumer-group member (see the module docstring)."""

    def __init__(
        self, settings: Settings, registry: ModelRegistry, prefect: PrefectEvents | None = None
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.stats = MonitorStats()
        self.monitor: ModelMonitor | None = None  # None while standing by
        self._spec = settings.feature_spec()
        self._topics = settings.topics
        self._group = settings.monitoring.group_id
        self._name = f"{settings.kafka.client_id}/{self._group}"
        self._stop = threading.Event()
        self._evidence_codec = EventCodec(Evidence, settings.messages.max_bytes)
        self._outcome_codec = EventCodec(Outcome, settings.messages.max_bytes)
        self._prefect = (
            prefect
            if prefect is not None
            else (PrefectEvents.from_environment() if settings.monitoring.prefect_events else None)
        )
        self._layouts: dict[str, tuple[BinLayout, PerformanceModel | None] | None] = {}
        self._outcome_offsets: dict[int, int] = {}  # next outcomes offset per partition
        self._outcome_partitions = 0
        self._owned: list[TopicPartition] = []
        self._last_checkpoint_at = time.monotonic()
        self._producer: Any = None
        self._evidence: Any = None
        self._outcomes: Any = None
        self._outputs: DeliveryTracker | None = None
        self._late_counted = 0

    def stop(self) -> None:
        self._stop.set()

    @property
    def active(self) -> bool:
        return self.monitor is not None

    # -- lifecycle ---------------------------------------------------------------------

    def run(
        self, install_signal_handlers: bool = True, on_ready: Callable[[], object] | None = None
    ) -> MonitorStats:
        """Monitor until :meth:`stop` (or SIGTERM/SIGINT); ``on_ready`` once it is subscribed."""
        if install_signal_handlers:
            stop_on_termination(self.stop)
        monitoring, kafka = self.settings.monitoring, self.settings.kafka
        self._producer = make_producer(kafka, max_request_size=monitoring.state_max_bytes)
        self._outputs = DeliveryTracker(
            lambda timeout_s: self._producer.flush(timeout=timeout_s),
            self.settings.scoring.delivery_timeout_s,
            lambda problem: (
                f"drift events or the monitor's snapshot were not written ({problem}); nothing committed: "
                "a restart resumes from the previous snapshot and publishes those drift events again "
                "(same event ids)"
            ),
        )
        self._outcomes = make_consumer(kafka, None, enable_auto_commit=False)
        self._evidence = make_consumer(
            kafka,
            self._group,
            max_poll_records=2000,
            session_timeout_ms=monitoring.session_timeout_ms,
            heartbeat_interval_ms=max(1000, monitoring.session_timeout_ms // 5),
        )
        metrics.MONITOR_ACTIVE.set(0)
        try:
            self._outcome_partitions = len(wait_for_topic(self._outcomes, self._topics.outcomes))
            self._evidence.subscribe([self._topics.evidence], listener=_Handover(self))
            wait_for_topic(self._evidence, self._topics.evidence)
            log.info(
                "monitoring model %r from %s and %s",
                self.settings.model_name,
                self._topics.evidence,
                self._topics.outcomes,
                extra={"group_id": self._group},
            )
            if on_ready is not None:
                on_ready()
            while not self._stop.is_set():
                self.step()
            if self.monitor is not None:
                self._publish(self.monitor.advance(flush=True))
                self.checkpoint()
        except KafkaError as exc:
            assert self._outputs is not None
            self._outputs.failing = True
            raise KafkaUnavailableError(
                f"Kafka at {kafka.bootstrap_servers} failed under the monitor ({exc!r}); a restart resumes "
                "from the last snapshot"
            ) from exc
        finally:
            failing = self._outputs.failing
            close_all(
                partial(self._evidence.close, autocommit=False),
                partial(self._outcomes.close, autocommit=False),
                partial(self._producer.close, timeout=0 if failing else 10),
                *([self._prefect.close] if self._prefect is not None else []),
            )
            metrics.MONITOR_ACTIVE.set(0)
        log.info(
            "monitor stopped",
            extra={"evidence": self.stats.evidence, "drift_events": self.stats.drift_events},
        )
        return self.stats

    def step(self, timeout_ms: int = 200) -> None:
        """One round: read evidence (and outcomes while active), merge, publish, checkpoint."""
        polled = self._evidence.poll(timeout_ms=timeout_ms, max_records=2000)
        monitor = self.monitor
        if monitor is None:
            return
        alarms: list[ModelAlarm] = []
        for tp, records in polled.items():
            for record in records:
                alarms += self._take_evidence(monitor, tp.partition, record)
        self._read_outcomes(monitor)
        alarms += monitor.advance(now=time.monotonic())
        self._publish(alarms)
        self._gauges(monitor)
        if time.monotonic() - self._last_checkpoint_at >= self.settings.monitoring.checkpoint_interval_s:
            self.checkpoint()

    # -- evidence and outcomes -----------------------------------------------------------

    def _take_evidence(self, monitor: ModelMonitor, partition: int, record: Any) -> list[ModelAlarm]:
        try:
            evidence = self._evidence_codec.decode(record.value)
        except DecodeError as exc:
            metrics.MONITOR_EVIDENCE.labels("undecodable").inc()
            letter = dead_letter(record, exc, self._name, self.settings.messages.dead_letter_value_bytes)
            assert self._outputs is not None
            self._producer.send(
                self._topics.evidence_dlq, key=letter.key, value=encode_event(letter)
            ).add_errback(self._outputs.errback)
            self._outputs.sent(1)
            log.warning("dead letter: %s", exc, extra={"topic": record.topic, "offset": record.offset})
            monitor.evidence_offsets[partition] = record.offset + 1
            return []
        self.stats.evidence += 1
        alarms: list[ModelAlarm] = []
        if evidence.model_name == monitor.model_name and monitor.wants(evidence.model_version):
            known = self._layout(evidence.model_version)
            if known is not None:
                if monitor.version is not None:
                    log.info(
                        "champion changed: the monitor restarts",
                        extra={"model_version": evidence.model_version},
                    )
                alarms = monitor.start(evidence.model_version, *known)
                self._seek_outcomes_to(int(record.timestamp) - _OUTCOMES_LEAD_MS)
        outcome = monitor.add_evidence(evidence, (partition, record.offset), time.monotonic())
        metrics.MONITOR_EVIDENCE.labels(outcome).inc()
        if outcome == "new":
            metrics.MONITOR_ROWS.inc(evidence.rows)
        return alarms

    def _read_outcomes(self, monitor: ModelMonitor) -> None:
        if monitor.version is None:
            return
        for _ in range(10):  # a backlog drains in a few rounds, not one poll per step
            polled = self._outcomes.poll(timeout_ms=0, max_records=5000)
            if not polled:
                return
            for tp, records in polled.items():
                chunk = self._chunk(tp.partition, records, monitor.version)
                self._outcome_offsets[tp.partition] = records[-1].offset + 1
                if chunk is not None:
                    monitor.add_outcomes(chunk, time.monotonic())

    def _chunk(self, partition: int, records: Sequence[Any], version: str) -> OutcomeChunk | None:
        times: list[int] = []
        event_times: list[int] = []
        scores: list[float] = []
        decisions: list[bool] = []
        labels: list[int] = []
        for record in records:
            try:
                outcome = self._outcome_codec.decode(record.value)
            except DecodeError as exc:  # `driftloop join` wrote it: worth a warning, not a stop
                metrics.MONITOR_OUTCOMES.labels("undecodable").inc()
                log.warning("undecodable outcome skipped: %s", exc, extra={"offset": record.offset})
                continue
            if outcome.role != "champion" or outcome.model_version != version:
                metrics.MONITOR_OUTCOMES.labels("other_model").inc()
                continue
            times.append(int(outcome.label_time.timestamp() * 1000))
            event_times.append(int(outcome.event_time.timestamp() * 1000))
            scores.append(outcome.score)
            decisions.append(outcome.decision)
            labels.append(outcome.label)
        if not labels:
            return None
        metrics.MONITOR_OUTCOMES.labels("monitored").inc(len(labels))
        self.stats.outcomes += len(labels)
        order = np.argsort(np.asarray(times), kind="stable")
        return OutcomeChunk(
            partition=partition,
            label_times_ms=np.asarray(times, dtype=np.int64)[order],
            scores=np.asarray(scores)[order],
            decisions=np.asarray(decisions, dtype=bool)[order],
            labels=np.asarray(labels, dtype=np.int64)[order],
            model_version=version,
            event_times_ms=np.asarray(event_times, dtype=np.int64)[order],
        )

    def _seek_outcomes_to(self, timestamp_ms: int) -> None:
        """A new champion: its outcomes were written after its first evidence (``timestamp_ms``,
        the wall clock of that record, less a margin); earlier ones are another model's.
        Where the broker names no offset for that time although the partition holds records
        (seen with kafka-python 3.0 right after the first writes), read it from its beginning:
        the outcomes are filtered by model version anyway."""
        partitions = [TopicPartition(self._topics.outcomes, p) for p in range(self._outcome_partitions)]
        self._outcomes.assign(partitions)
        found = self._outcomes.offsets_for_times({tp: max(0, timestamp_ms) for tp in partitions})
        starts = self._outcomes.beginning_offsets(partitions)
        for tp in partitions:
            at = found.get(tp)
            offset = int(at.offset) if at is not None else int(starts[tp])
            self._outcomes.seek(tp, offset)
            self._outcome_offsets[tp.partition] = offset

    def _layout(self, version: str) -> tuple[BinLayout, PerformanceModel | None] | None:
        """The bins of ``version``'s reference, and what estimating its performance needs
        (None without a calibration); None when it cannot be monitored."""
        if version not in self._layouts:
            try:
                manifest = self.registry.manifest(self.settings.model_name, version)
            except ModelRejectedError as exc:
                log.error("cannot monitor %s: %s", version, exc)
                self._layouts[version] = None
                return None
            reference = manifest.reference
            performance = None
            if reference is not None and manifest.calibration is not None:
                performance = PerformanceModel.of(
                    manifest.calibration,
                    manifest.threshold,
                    np.asarray(reference.scores),
                    self.settings.decision.alert_budget,
                )
            self._layouts[version] = (
                (BinLayout.of(reference, self._spec, self.settings.monitoring.evidence_bins), performance)
                if reference is not None
                else None
            )
        return self._layouts[version]

    # -- output --------------------------------------------------------------------------

    def _publish(self, alarms: Sequence[ModelAlarm]) -> None:
        assert self._outputs is not None
        for alarm in alarms:
            event = alarm.to_event(self.settings.model_name)
            self._producer.send(
                self._topics.drift_events, key=self.settings.model_name.encode(), value=encode_event(event)
            ).add_errback(self._outputs.errback)
            self._outputs.sent(1)
            self.stats.drift_events += 1
            self.stats.published.append(event)
            self.stats.alarms.append(alarm)
            context = {
                "event_id": event.event_id,
                "episode_id": event.episode_id,
                "signal": event.signal,
                "feature": event.feature,
                "detector": event.detector,
                "severity": event.severity,
                "scope": event.scope,
                "partition": event.partition,
                "moved": [s.column for s in event.explanation if s.moved],
            }
            if event.status == "opened":
                metrics.DRIFT_EVENTS.labels(event.signal, event.detector, event.severity).inc()
                log.warning("drift detected: %s", event.signal, extra=context)
            else:
                metrics.DRIFT_REPORTS.labels(event.status).inc()
                log.warning("drift %s: %s", event.status, event.resolution or event.signal, extra=context)
            if self._prefect is not None:
                self._prefect.send(event)

    def _gauges(self, monitor: ModelMonitor) -> None:
        merger = monitor.evidence
        if merger.newest:
            newest = max(merger.newest.values())
            mark = merger.watermark(time.monotonic())
            metrics.MONITOR_EVENT_TIME.set(newest / 1000)
            metrics.MONITOR_WATERMARK_LAG.set(max(0, newest - (mark if mark is not None else newest)) / 1000)
        metrics.MONITOR_PARTITIONS.set(len(monitor.partitions_seen))
        metrics.DRIFT_EPISODE_OPEN.set(1 if monitor.episode is not None else 0)

    def _performance_gauges(self, monitor: ModelMonitor) -> None:
        """The estimated and realized performance (at checkpoints: the realized figures rank
        the newest outcomes)."""
        estimated, real = monitor.performance()
        for gauge, figures in (
            (metrics.PERFORMANCE_ESTIMATED, estimated),
            (metrics.PERFORMANCE_REALIZED, real),
        ):
            if figures is not None:
                for metric, value in figures.as_dict().items():
                    if metric != "rows" and math.isfinite(value):
                        gauge.labels(metric).set(value)

    # -- checkpoints and handover ------------------------------------------------------------

    def checkpoint(self) -> None:
        """Drift events, then the snapshot (with the offsets it covers), then the commit."""
        self._last_checkpoint_at = time.monotonic()
        monitor = self.monitor
        assert self._outputs is not None
        if monitor is None:
            return
        self._outputs.flush()  # drift events and dead letters first
        self._performance_gauges(monitor)
        metrics.MONITOR_EVIDENCE_LATE.inc(monitor.evidence.late - self._late_counted)
        self._late_counted = monitor.evidence.late
        for tp in self._owned:
            raw = seal(
                {"monitor": monitor, "outcomes": dict(self._outcome_offsets)},
                self.registry.signing_key,
                group=self._group,
                topic=tp.topic,
                partition=tp.partition,
                offset=monitor.evidence_offsets.get(tp.partition, 0),
                labels_offset=0,
                model_version=monitor.version or "",
            )
            self._producer.send(self._topics.state, key=self._state_key(tp), value=raw).add_errback(
                self._outputs.errback
            )
            self._outputs.sent(1)
        self._outputs.flush()
        metrics.STATE_SNAPSHOTS.labels("written").inc(len(self._owned))
        commit_or_defer(
            self._evidence,
            {
                tp: monitor.evidence_offsets[tp.partition]
                for tp in self._owned
                if tp.partition in monitor.evidence_offsets
            },
        )
        self.stats.checkpoints += 1

    def _state_key(self, tp: TopicPartition) -> bytes:
        return f"{self._group}/{tp.topic}/{tp.partition}/{self.settings.model_name}".encode()

    def _take_over(self, assigned: Sequence[TopicPartition]) -> None:
        """Partitions assigned: resume from the newest snapshot, or start fresh."""
        self._owned = sorted({*self._owned, *assigned}, key=lambda tp: tp.partition)
        monitor = self.monitor
        if monitor is None:
            monitor, outcomes, offsets = self._restore()
            self.monitor = monitor
            self._outcome_offsets = outcomes
            if monitor.version is not None and self._outcome_partitions:
                partitions = [
                    TopicPartition(self._topics.outcomes, p) for p in range(self._outcome_partitions)
                ]
                self._outcomes.assign(partitions)
                for tp in partitions:
                    if tp.partition in outcomes:
                        self._outcomes.seek(tp, outcomes[tp.partition])
            for tp in assigned:
                if tp.partition in offsets:
                    self._evidence.seek(tp, offsets[tp.partition])
        metrics.MONITOR_ACTIVE.set(1)
        log.info(
            "active monitor of model %r",
            self.settings.model_name,
            extra={"partitions": [tp.partition for tp in assigned]},
        )

    def _hand_over(self, revoked: Sequence[TopicPartition]) -> None:
        """Partitions revoked: stand by. kafka-python runs this on its network thread, where
        nothing may block on Kafka, so there is no last checkpoint here: the next owner
        resumes from the latest snapshot (at most ``checkpoint_interval_s`` old) and replays
        the evidence after it. (A stop checkpoints before it leaves the group.)"""
        self._drop(revoked)

    def _drop(self, partitions: Sequence[TopicPartition]) -> None:
        gone = {tp.partition for tp in partitions}
        self._owned = [tp for tp in self._owned if tp.partition not in gone]
        if not self._owned:
            self.monitor = None
            self._outcomes.assign([])
            metrics.MONITOR_ACTIVE.set(0)
            log.info("standing by", extra={"model": self.settings.model_name})

    def _restore(self) -> tuple[ModelMonitor, dict[int, int], dict[int, int]]:
        """The newest snapshot of this model's monitor, or a fresh monitor."""
        prefix = f"{self._group}/{self._topics.evidence}/".encode()
        suffix = f"/{self.settings.model_name}".encode()
        newest: dict[int, bytes] = {}
        with TopicReader(self.settings.kafka, self._topics.state, topic_timeout_s=30.0) as reader:
            for record in reader.read_to_end(30.0):
                if (
                    record.key
                    and record.key.startswith(prefix)
                    and record.key.endswith(suffix)
                    and record.value
                ):
                    try:
                        envelope = read_envelope(record.value)
                    except StateRejectedError:
                        continue
                    newest[envelope.partition] = record.value
        for raw in newest.values():
            try:
                snapshot, payload = unseal(raw, self.registry.signing_key)
            except StateRejectedError as exc:
                log.error("monitor snapshot refused: %s", exc)
                metrics.STATE_RESTORES.labels(exc.reason).inc()
                continue
            monitor = payload["monitor"]
            if not isinstance(monitor, ModelMonitor) or monitor.model_name != self.settings.model_name:
                continue
            metrics.STATE_RESTORES.labels("snapshot").inc()
            self.stats.restored = True
            log.info(
                "monitor restored",
                extra={
                    "evidence_offsets": monitor.evidence_offsets,
                    "rows": monitor.rows,
                    "model_version": snapshot.model_version,
                },
            )
            return monitor, dict(payload["outcomes"]), dict(monitor.evidence_offsets)
        metrics.STATE_RESTORES.labels("fresh").inc()
        monitor = ModelMonitor(
            self.settings.monitoring,
            self.settings.model_name,
            partitions=self._transaction_partitions(),
            evidence_topic=self._topics.evidence,
        )
        return monitor, {}, {}

    def _transaction_partitions(self) -> int | None:
        """How many source partitions the watermark waits for; None (those seen) when the
        transactions topic is not there to say."""
        try:
            return len(wait_for_topic(self._outcomes, self._topics.transactions, timeout_s=5.0))
        except KafkaUnavailableError:
            log.warning("no %s topic: the watermark waits for the partitions seen", self._topics.transactions)
            return None


class _Handover(ConsumerRebalanceListener):
    def __init__(self, service: MonitorService) -> None:
        self._service = service

    def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        if revoked:
            self._service._hand_over(revoked)

    def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        if assigned:
            self._service._take_over(assigned)

    def on_partitions_lost(self, lost: Sequence[TopicPartition]) -> None:
        self._service._drop(lost)
