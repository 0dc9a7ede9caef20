"""The join's Prometheus metrics: counts per join result, gauges per owned partition."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kafka.errors import KafkaError

from streaming import metrics
from streaming.outcomes.join import JoinResult, OutcomeJoin


def count(result: JoinResult) -> None:
    """Outcomes written, labels matched, predictions expired, duplicate scores."""
    metrics.JOIN_OUTCOMES.inc(len(result.outcomes))
    if result.outcomes:
        metrics.JOIN_INPUTS.labels("labels", "matched").inc(len({o.transaction_id for o in result.outcomes}))
    if result.expired:
        metrics.JOIN_EXPIRED.inc(result.expired)
    if result.duplicate_scores:
        metrics.JOIN_INPUTS.labels("scores", "duplicate").inc(result.duplicate_scores)


def report(consumer: Any, joins: Mapping[int, OutcomeJoin]) -> None:
    """Lag per input partition; held predictions and labels, the oldest pending prediction's
    event-time age and the store's size per partition."""
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        if highwater is None:
            continue
        try:
            position = consumer.position(tp, timeout_ms=1000)
        except KafkaError:
            continue
        metrics.JOIN_LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - position))
    for partition, join in joins.items():
        label = str(partition)
        metrics.JOIN_STORE_BYTES.labels(label).set(join.store.bytes_on_disk())
        metrics.JOIN_PENDING.labels(label).set(join.counters.pending)
        metrics.JOIN_WAITING_LABELS.labels(label).set(join.counters.waiting)
        oldest, now = join.oldest_pending(), join.event_time
        age = (now - oldest).total_seconds() if oldest is not None and now is not None else 0.0
        metrics.JOIN_OLDEST_PENDING_SECONDS.labels(label).set(age)
