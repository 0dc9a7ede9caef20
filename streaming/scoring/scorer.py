"""The scoring core: a micro-batch of transactions in, one Score per transaction out.

Pure Python over plain values (no Kafka): the service feeds it decoded transactions and
publishes what it returns. One feature matrix and one ``predict_proba`` call per model per
batch; the decision comes from exactly one model per transaction.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from streaming.events import ModelRole, Score, Transaction
from streaming.features import FeatureSpec
from streaming.models.registry import LoadedModel
from streaming.scoring.holder import ModelHolder


@dataclass(frozen=True)
class ScoredBatch:
    """What the drift monitors receive after each micro-batch is scored.

    ``partitions`` and ``offsets`` give each transaction's source position, so monitors can
    report the offset range a drift was seen in and snapshot their state per partition.
    """

    transactions: Sequence[Transaction]
    scores: Sequence[Score]
    probabilities: np.ndarray
    partitions: np.ndarray
    offsets: np.ndarray
    timestamps: np.ndarray  # each record's Kafka timestamp, ms
    rows: Sequence[tuple[Any, ...]] = ()  # each transaction's feature values, in spec order


class BatchObserver:
    """The drift-monitor interface of the scoring loop.

    ``observe`` sees every scored batch; the other hooks default to doing nothing. The loop
    calls ``poll`` between batches, ``checkpoint`` after a batch's outputs are flushed and
    before its offsets are committed (flush outputs, write state, commit offsets), and
    ``release`` when partitions are revoked or lost.
    """

    def observe(self, batch: ScoredBatch) -> None:
        raise NotImplementedError

    def poll(self) -> None:
        """Read side inputs (delayed labels) without blocking."""

    def checkpoint(self, offsets: Mapping[int, int]) -> None:
        """Persist state covering everything before ``offsets`` (partition -> next offset)."""

    def release(self, partitions: Sequence[int]) -> None:
        """Forget the state of partitions this scorer no longer owns."""

    def use_producer(self, producer: Any) -> None:
        """Exactly-once (``scoring.delivery``): send every output with ``producer``, the
        scorer's transactional producer (``send(topic, key, value)``, see
        :mod:`streaming.kafka.transport`), from now on; its failures reach the scorer, and the
        scorer's checkpoint commits the outputs in one transaction with the consumed offsets.
        An observer that sends nothing ignores it."""

    def close(self, timeout_s: float | None = None) -> None:
        """Flush and release resources, waiting at most ``timeout_s`` for Kafka (None: the
        observer's own default; 0 after a delivery failure, when Kafka is not answering)."""


class Scorer:
    """Scores batches with the models in a :class:`ModelHolder`.

    Parameters
    ----------
    holder
        The serving models (champion, optional challenger).
    model_name
        Written into every Score.
    threshold
        Decision threshold; ``None`` uses the deciding model's manifest threshold.
    """

    def __init__(
        self, holder: ModelHolder, model_name: str, spec: FeatureSpec, threshold: float | None = None
    ) -> None:
        self.holder = holder
        self.model_name = model_name
        self.spec = spec
        self.threshold = threshold

    def _matrix(self, model: LoadedModel, rows: list[tuple[Any, ...]]) -> np.ndarray:
        """The model's matrix from rows in the stream's spec order (reordered if it differs)."""
        names = model.encoder.spec.names
        if names != self.spec.names:
            where = [self.spec.names.index(name) for name in names]
            rows = [tuple(row[i] for i in where) for row in rows]
        return model.encoder.matrix(rows)

    def rows(self, transactions: Sequence[Transaction]) -> list[tuple[Any, ...]]:
        """Each transaction's feature values in the stream's spec order."""
        values = self.spec.values
        return [values(t.features) for t in transactions]

    def score(
        self,
        transactions: Sequence[Transaction],
        received_at: Sequence[float],
        rows: list[tuple[Any, ...]] | None = None,
    ) -> tuple[list[Score], np.ndarray]:
        """Scores (in input order) and the probabilities as an array; ``rows`` are
        :meth:`rows` of the transactions, when the caller has them already."""
        champion = self.holder.champion
        if champion is None:
            raise RuntimeError("no champion is loaded; the service must not score yet")
        n = len(transactions)
        if n == 0:
            return [], np.empty(0)
        if rows is None:
            rows = self.rows(transactions)
        mask = self.holder.challenger_mask([t.account_id for t in transactions])
        probabilities = np.empty(n)
        roles: list[ModelRole] = ["champion"] * n
        versions = [champion.version] * n
        thresholds = [self._threshold_of(champion)] * n
        if mask is None or not mask.any():
            probabilities[:] = champion.predict_proba(self._matrix(champion, rows))
        else:
            challenger = self.holder.challenger
            assert challenger is not None
            to_challenger = np.flatnonzero(mask)
            to_champion = np.flatnonzero(~mask)
            if len(to_champion):
                probabilities[to_champion] = champion.predict_proba(
                    self._matrix(champion, [rows[i] for i in to_champion])
                )
            probabilities[to_challenger] = challenger.predict_proba(
                self._matrix(challenger, [rows[i] for i in to_challenger])
            )
            challenger_threshold = self._threshold_of(challenger)
            for i in to_challenger:
                roles[i] = "challenger"
                versions[i] = challenger.version
                thresholds[i] = challenger_threshold
        now = time.time()
        scored_at = datetime.fromtimestamp(now, UTC)
        scores = [
            Score(
                transaction_id=t.transaction_id,
                account_id=t.account_id,
                model_name=self.model_name,
                model_version=version,
                role=role,
                score=p,
                threshold=threshold,
                decision=p >= threshold,
                event_time=t.event_time,
                scored_at=scored_at,
                latency_ms=max(0.0, (now - received) * 1000.0),
            )
            for t, p, role, version, threshold, received in zip(
                transactions, probabilities.tolist(), roles, versions, thresholds, received_at, strict=True
            )
        ]
        return scores, probabilities

    def _threshold_of(self, model: LoadedModel) -> float:
        if self.threshold is not None:
            return self.threshold
        return float(model.manifest.threshold)
