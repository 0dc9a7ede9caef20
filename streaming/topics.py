"""The topic catalogue: every topic driftloop reads or writes, with its message and key.

One place describes the topics; ``driftloop topics create``, the AsyncAPI document in
``schemas/`` and the README's topic table follow it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from streaming.config import MonitoringSettings, TopicNames
from streaming.events import DeadLetter, DriftEvent, Evidence, Label, ModelUpdate, Outcome, Score, Transaction


@dataclass(frozen=True)
class TopicSpec:
    """One topic: its name, the event it carries, how it is keyed and kept."""

    name: str
    message: type[msgspec.Struct] | None  # None: internal bytes, not a public event
    key: str
    description: str
    partitions: int = 1
    replication_factor: int = 1
    configs: dict[str, str] = field(default_factory=dict)

    @property
    def compacted(self) -> bool:
        return self.configs.get("cleanup.policy") == "compact"


_COMPACT = {"cleanup.policy": "compact"}


#: The default largest drift-monitor snapshot (``monitoring.state_max_bytes``).
STATE_MAX_BYTES: int = MonitoringSettings.model_fields["state_max_bytes"].default


def topic_catalogue(
    names: TopicNames,
    partitions: int = 4,
    replication_factor: int = 1,
    state_max_bytes: int = STATE_MAX_BYTES,
) -> list[TopicSpec]:
    """The topics for the given names; data topics get ``partitions`` partitions. A
    declarative table: one entry per topic."""
    rf = replication_factor
    return [
        TopicSpec(
            names.transactions,
            Transaction,
            "account_id",
            "Card transactions to score (produced by your systems or `driftloop simulate`).",
            partitions,
            rf,
        ),
        TopicSpec(
            names.labels,
            Label,
            "transaction_id",
            "Delayed ground truth (chargebacks), joined to the predictions by `driftloop join`. "
            "Keyed by transaction_id on as many partitions as scores, so label partition p holds "
            "the labels of score partition p (co-partitioned).",
            partitions,
            rf,
        ),
        TopicSpec(
            names.scores,
            Score,
            "transaction_id",
            "One score per transaction and model role; consumers deduplicate by key.",
            partitions,
            rf,
        ),
        TopicSpec(
            names.outcomes,
            Outcome,
            "account_id",
            "A prediction and the label that closed it, one per score (`driftloop join`); keyed like "
            "the transactions, on as many partitions.",
            partitions,
            rf,
        ),
        TopicSpec(
            names.outcomes_changelog,
            None,
            "store key",
            "Internal: the join's state stores, one partition per scores partition (compacted); a "
            "partition that moves to an empty disk is rebuilt from it.",
            partitions,
            rf,
            _COMPACT,
        ),
        TopicSpec(
            names.evidence,
            Evidence,
            "model_name",
            "Drift evidence: per micro-batch and source partition, histograms on the reference's "
            "bins, written by `driftloop score` at checkpoints and merged by `driftloop monitor` "
            "(one partition: one active monitor per model, standbys in its consumer group).",
            1,
            rf,
            {"retention.ms": str(7 * 24 * 3600 * 1000)},
        ),
        TopicSpec(
            names.drift_events,
            DriftEvent,
            "model_name",
            "Drift episodes of each model, one event as each opens, ongoing reports while it persists (at a bounded cadence), one as it is resolved (signals back within their reference band, or a new model took over); the retrain trigger and alert consumers subscribe.",
            1,
            rf,
        ),
        TopicSpec(
            names.model_updates,
            ModelUpdate,
            "model_name",
            "Champion/challenger changes and retraining outcomes (compacted: the last per model wins).",
            1,
            rf,
            _COMPACT,
        ),
        TopicSpec(
            names.state,
            None,
            "group/topic/partition",
            "Internal: signed snapshots of each model's `driftloop monitor` (compacted).",
            1,
            rf,
            {**_COMPACT, "max.message.bytes": str(state_max_bytes)},
        ),
        TopicSpec(
            names.transactions_dlq,
            DeadLetter,
            "original key",
            "Transactions that could not be decoded or validated, with the reason.",
            1,
            rf,
        ),
        TopicSpec(
            names.labels_dlq,
            DeadLetter,
            "original key",
            "Labels that could not be decoded or validated, with the reason.",
            1,
            rf,
        ),
        TopicSpec(
            names.drift_events_dlq,
            DeadLetter,
            "original key",
            "Drift events the retrain trigger could not decode, with the reason.",
            1,
            rf,
        ),
        TopicSpec(
            names.evidence_dlq,
            DeadLetter,
            "original key",
            "Evidence records `driftloop monitor` could not decode, with the reason.",
            1,
            rf,
        ),
        TopicSpec(
            names.model_updates_dlq,
            DeadLetter,
            "model_name",
            "Model updates a scorer refused (bad signature, hash mismatch, load error).",
            1,
            rf,
        ),
    ]
