"""The scorer's side of drift monitoring: summarize every batch, publish at checkpoints.

:class:`EvidencePublisher` is the :class:`~streaming.scoring.scorer.BatchObserver` that
`driftloop score` runs. For every scored batch it summarizes the champion-scored rows, per
source partition, into :class:`~streaming.events.Evidence` (:mod:`.evidence`: a few
``searchsorted`` and ``bincount`` calls per batch, no detector) and sends the records to
``drift.evidence`` (keyed by model name) without waiting, as the scores are. At each
checkpoint, before the offsets are committed, it waits until every one has landed: a
failure raises, so the offsets are not committed and a restart summarizes those rows again
(`driftloop monitor` skips what it counted already, by source offsets; so does it skip
what was sent for rows a rebalance gives to another scorer before they were committed).
With ``scoring.delivery = exactly_once`` the records go out on the scorer's transactional
producer instead (:meth:`EvidencePublisher.use_producer`), in the checkpoint's transaction.

Times are event times (the transactions' ``event_time``), the clock `driftloop monitor`
merges partitions and outcomes (labelled at their ``label_time``) on.

The bins come from the champion's reference profile, in its verified manifest. A model
without one (registered by an older build) cannot be summarized: its rows are counted in
``driftloop_evidence_rows_total{outcome="no_reference"}`` and logged once per version.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from functools import partial
from operator import attrgetter, itemgetter, methodcaller
from typing import Any

import numpy as np
from kafka.errors import KafkaError

from streaming import metrics
from streaming.checkpointing import DeliveryTracker
from streaming.config import Settings
from streaming.errors import ModelRejectedError
from streaming.events import encode_event
from streaming.kafka.clients import close_all
from streaming.kafka.native import NativeDeliveryError, NativeProducer
from streaming.logs import get_logger
from streaming.models.registry import ModelRegistry
from streaming.monitoring.evidence import BinLayout, Summarizer
from streaming.monitoring.performance import budget_score
from streaming.scoring.scorer import BatchObserver, ScoredBatch

log = get_logger("driftloop.evidence")

_event_time = attrgetter("event_time")
_timestamp = methodcaller("timestamp")  # datetime -> Unix seconds


class EvidencePublisher(BatchObserver):
    """Evidence for the partitions this scorer owns (see the module docstring)."""

    def __init__(self, settings: Settings, registry: ModelRegistry) -> None:
        self.settings = settings
        self._spec = settings.feature_spec()
        self._registry = registry
        self._topics = settings.topics
        self._producer_name = f"{settings.kafka.client_id}/{settings.scoring.group_id}"
        self._summarizers: dict[str, Summarizer | None] = {}
        self._numeric_at = [i for i, f in enumerate(self._spec.features) if f.kind == "numeric"]
        self._categorical_at = [i for i, f in enumerate(self._spec.features) if f.kind == "categorical"]
        self.published = 0
        self.busy_s = 0.0  # time spent summarizing and sending, for the throughput benchmark
        self._outputs = DeliveryTracker(
            self._flush,
            settings.scoring.delivery_timeout_s,
            lambda problem: (
                f"drift evidence was not written to {self._topics.evidence} ({problem}); offsets not "
                "committed: a restart summarizes those transactions again"
            ),
        )
        # librdkafka: a send costs a few µs where kafka-python's costs tens (the hot path).
        self._producer: NativeProducer | None = None
        self._transactional: Any = None  # exactly-once: the scorer's producer (use_producer)
        if settings.scoring.delivery != "exactly_once":
            self._producer = NativeProducer(
                settings.kafka, self._outputs.errback, settings.scoring.delivery_timeout_s, linger_ms=5
            )
        self._closed = False

    def observe(self, batch: ScoredBatch) -> None:
        started = time.perf_counter()
        try:
            self._observe(batch)
        finally:
            self.busy_s += time.perf_counter() - started

    def _observe(self, batch: ScoredBatch) -> None:
        scores = batch.scores
        champion = [i for i, s in enumerate(scores) if s.role == "champion"]
        if not champion:
            return
        version = scores[champion[0]].model_version
        summarizer = self._summarizer(version)
        if summarizer is None:
            metrics.EVIDENCE_ROWS.labels("no_reference").inc(len(champion))
            return
        where = np.asarray(champion)
        n = len(champion)
        rows = batch.rows if n == len(scores) else [batch.rows[i] for i in champion]
        numeric = np.empty((n, len(self._numeric_at)))
        for j, at in enumerate(self._numeric_at):  # column by column, iterated in C
            numeric[:, j] = np.fromiter(map(itemgetter(at), rows), np.float64, n)
        transactions = batch.transactions if n == len(scores) else [batch.transactions[i] for i in champion]
        probabilities = batch.probabilities[where]
        records = summarizer.summarize(
            partitions=batch.partitions[where],
            offsets=batch.offsets[where],
            timestamps=(
                np.fromiter(map(_timestamp, map(_event_time, transactions)), np.float64, n) * 1000
            ).astype(np.int64),
            numeric=numeric,
            categorical=[list(map(itemgetter(at), rows)) for at in self._categorical_at],
            scores=probabilities,
            decisions=probabilities >= scores[champion[0]].threshold,  # the champion's, for all its rows
        )
        key = self.settings.model_name.encode()
        topic = self._topics.evidence
        try:
            if self._transactional is not None:  # its failures go to the scorer's delivery
                send = self._transactional.send
                for record in records:
                    send(topic, key, encode_event(record))
            else:
                assert self._producer is not None
                for record in records:
                    self._producer.send(topic, key, encode_event(record))
        except (NativeDeliveryError, KafkaError) as exc:  # its queue stayed full: Kafka is not taking records
            raise self._outputs.send_failed(exc) from exc
        self._outputs.sent(len(records))
        self.published += len(records)
        metrics.EVIDENCE_RECORDS.inc(len(records))
        metrics.EVIDENCE_ROWS.labels("summarized").inc(len(champion))

    def checkpoint(self, offsets: Mapping[int, int]) -> None:
        """Wait until every evidence record sent so far has landed (raises if one did not)."""
        self._outputs.flush()

    def release(self, partitions: Sequence[int]) -> None:
        """Nothing to forget: a record sent for rows the next owner scores again is skipped by
        `driftloop monitor` (by its source offsets)."""

    def _flush(self, timeout_s: float) -> None:
        producer = self._transactional if self._transactional is not None else self._producer
        if producer is not None:
            producer.flush(timeout=timeout_s)

    def use_producer(self, producer: Any) -> None:
        """Send the evidence with the scorer's transactional producer (exactly-once)."""
        self._transactional = producer

    def close(self, timeout_s: float | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        if self._producer is not None:  # not the scorer's: the scorer closes that one
            close_all(partial(self._producer.close, timeout=30 if timeout_s is None else timeout_s))

    def _summarizer(self, version: str) -> Summarizer | None:
        if version not in self._summarizers:
            manifest = None
            try:
                manifest = self._registry.manifest(self.settings.model_name, version)
            except ModelRejectedError as exc:
                log.warning("no drift evidence for %s: %s", version, exc)
            reference = manifest.reference if manifest is not None else None
            if reference is None:
                log.warning(
                    "model %s %s carries no reference profile: its traffic is scored but not monitored",
                    self.settings.model_name,
                    version,
                )
                self._summarizers[version] = None
            else:
                assert manifest is not None
                layout = BinLayout.of(reference, self._spec, self.settings.monitoring.evidence_bins)
                self._summarizers[version] = Summarizer(
                    layout,
                    self.settings.model_name,
                    version,
                    self._topics.transactions,
                    self._producer_name,
                    self.settings.monitoring.evidence_max_rows,
                    calibration=manifest.calibration,
                    budget_threshold=budget_score(
                        np.asarray(reference.scores), self.settings.decision.alert_budget
                    ),
                )
        return self._summarizers[version]
