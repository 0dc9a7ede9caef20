"""Mergeable evidence: what the drift monitors need from a micro-batch, as counts and sums.

The scorer's hot path does not run detectors. It summarizes each micro-batch, per source
partition, into an :class:`~streaming.events.Evidence` record: a histogram of every numeric
feature and of the champion's scores on the *reference's quantile bins*, category counts
in the reference's categories, and sums for the before/after statistics. Histograms on
fixed bins add up, so `driftloop monitor` pools any number of partitions and scorer
processes into one stream and detects there (:mod:`.model_monitor`).

Quantile bins make every numeric column scale-free: while nothing moves, each bin holds
about the same share of rows, so one chi-square test and one detector setting fit every
feature. A bin's *probability integral transform* (its mid-rank in the reference) stands in
for a row's value where a per-event River detector needs a value.

>>> import pandas as pd
>>> from streaming.features import FeatureSpec
>>> from streaming.models.reference import build_reference
>>> spec = FeatureSpec.from_mapping({"amount": "numeric", "channel": "categorical"})
>>> rng = np.random.default_rng(0)
>>> frame = pd.DataFrame({"amount": rng.normal(size=400), "channel": rng.choice(["atm", "pos"], 400)})
>>> layout = BinLayout.of(build_reference(frame, spec, rng.random(400), np.zeros(400)), spec, bins=4)
>>> layout.numeric_reference[0].tolist(), layout.categories
([100, 100, 100, 100], [['atm', 'pos']])
>>> batch = Summarizer(layout, "fraud", "v1", "transactions", "scorer-1").summarize(
...     partitions=np.array([0, 0, 1]), offsets=np.array([10, 11, 7]), timestamps=np.array([5, 6, 5]),
...     numeric=np.array([[-3.0], [3.0], [0.1]]), categorical=[["atm", "atm", "cash"]],
...     scores=np.array([0.1, 0.9, 0.5]), decisions=np.array([False, True, False]))
>>> [(e.partition, e.offset_start, e.offset_end, e.rows, e.numeric, e.categorical) for e in batch]
[(0, 10, 11, 2, [[1, 0, 0, 1]], [[2, 0, 0]]), (1, 7, 7, 1, [[0, 0, 1, 0]], [[0, 0, 1]])]
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np

from streaming.events import Evidence, WindowStats
from streaming.features import FeatureSpec
from streaming.models.calibration import Calibration
from streaming.models.reference import ReferenceProfile
from streaming.monitoring.performance import BINS, PROBABILITY_EDGES

#: The column name scores go by in explanations and window tests.
SCORE = "__score__"


@dataclass(frozen=True)
class BinLayout:
    """The bins evidence is counted on, derived from a model's reference profile.

    ``numeric_edges[j]`` are the interior edges of numeric feature ``j`` (spec order); a value
    falls in bin ``searchsorted(edges, value, side="right")``. ``categories[j]`` are the
    reference's categories of categorical feature ``j``; any other value counts in one extra
    bin. ``*_reference`` hold the reference sample's own counts on the same bins, ``*_pit``
    each bin's mid-rank in the reference, and ``fingerprint`` names the layout in evidence.
    """

    names: tuple[str, ...]  # numeric features
    numeric_edges: tuple[np.ndarray, ...]
    numeric_reference: tuple[np.ndarray, ...]
    numeric_pit: tuple[np.ndarray, ...]
    numeric_stats: tuple[WindowStats, ...]
    score_edges: np.ndarray
    score_reference: np.ndarray
    score_pit: np.ndarray
    score_stats: WindowStats
    categorical_names: tuple[str, ...]
    categories: list[list[str]]
    categorical_reference: tuple[np.ndarray, ...]  # len(categories[j]) + 1 counts each
    reference: ReferenceProfile
    fingerprint: str

    @classmethod
    def of(cls, reference: ReferenceProfile, spec: FeatureSpec, bins: int = 16) -> BinLayout:
        """The layout of ``reference``: ``bins`` quantile bins per numeric column (fewer where
        the reference has ties), its categories per categorical column."""
        numeric = [
            _quantile_bins(np.asarray(reference.numeric[name], dtype=np.float64), bins)
            for name in spec.numeric
        ]
        scores = _quantile_bins(np.asarray(reference.scores, dtype=np.float64), bins)
        categories = [sorted(reference.categorical.get(name, {})) for name in spec.categorical]
        categorical_reference = tuple(
            np.array([reference.categorical.get(name, {}).get(c, 0) for c in values] + [0], dtype=np.int64)
            for name, values in zip(spec.categorical, categories, strict=True)
        )
        digest = hashlib.sha256()
        for edges, _, _, _ in (*numeric, scores):
            digest.update(edges.tobytes())
            digest.update(b"|")
        for values in categories:
            digest.update("\x1f".join(values).encode())
            digest.update(b"|")
        return cls(
            names=tuple(spec.numeric),
            numeric_edges=tuple(n[0] for n in numeric),
            numeric_reference=tuple(n[1] for n in numeric),
            numeric_pit=tuple(n[2] for n in numeric),
            numeric_stats=tuple(n[3] for n in numeric),
            score_edges=scores[0],
            score_reference=scores[1],
            score_pit=scores[2],
            score_stats=scores[3],
            categorical_names=tuple(spec.categorical),
            categories=categories,
            categorical_reference=categorical_reference,
            reference=reference,
            fingerprint=digest.hexdigest()[:16],
        )


def _quantile_bins(sample: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, WindowStats]:
    """Interior edges, the sample's counts, each bin's mid-rank, and the sample's stats."""
    if len(sample) == 0:
        return np.empty(0), np.zeros(1, dtype=np.int64), np.array([0.5]), WindowStats(count=0)
    edges = np.unique(np.quantile(sample, np.linspace(0, 1, bins + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, sample, side="right"), minlength=len(edges) + 1)
    below = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pit = (below + counts / 2.0) / len(sample)
    stats = WindowStats(count=len(sample), mean=float(sample.mean()), std=float(sample.std()))
    return edges, counts.astype(np.int64), pit, stats


class Summarizer:
    """Turns a scored micro-batch into :class:`Evidence` records: one per source partition and
    run of at most ``max_rows`` of its rows (in batch order).

    Vectorized over the batch: one ``searchsorted`` and one ``bincount`` per column for all
    partitions at once (the partition index times the bin count, plus the bin).
    """

    def __init__(
        self,
        layout: BinLayout,
        model_name: str,
        model_version: str,
        topic: str,
        producer: str,
        max_rows: int = 100,
        calibration: Calibration | None = None,
        budget_threshold: float | None = None,
    ) -> None:
        self.layout = layout
        self.calibration = calibration  # with it, the sums of the performance estimate too
        self.budget_threshold = budget_threshold if budget_threshold is not None else np.inf
        self.max_rows = max_rows
        self.model_name = model_name
        self.model_version = model_version
        self.topic = topic
        self.producer = producer
        self._lookups = [{c: i for i, c in enumerate(values)} for values in layout.categories]

    def summarize(
        self,
        *,
        partitions: np.ndarray,
        offsets: np.ndarray,
        timestamps: np.ndarray,
        numeric: np.ndarray,
        categorical: Sequence[Sequence[str]],
        scores: np.ndarray,
        decisions: np.ndarray,
    ) -> list[Evidence]:
        """Evidence for rows from any partitions; ``numeric`` is n×d in spec order."""
        n = len(scores)
        if n == 0:
            return []
        layout = self.layout
        # One record per run of at most max_rows rows of a partition: a backlog fetched in
        # long per-partition runs is cut into pieces the monitor can interleave in event time
        # (one partition's customers are not a sample of all; a long run of them would look
        # like a shift).
        order = np.argsort(partitions, kind="stable")
        ranked = partitions[order]
        starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
        pieces, slot = np.unique(
            partitions.astype(np.int64) * (n + 1) + rank // self.max_rows, return_inverse=True
        )
        owners = pieces // (n + 1)
        p = len(pieces)
        numeric_counts = [
            _counts(slot, np.searchsorted(edges, numeric[:, j], side="right"), p, len(edges) + 1)
            for j, edges in enumerate(layout.numeric_edges)
        ]
        score_counts = _counts(
            slot, np.searchsorted(layout.score_edges, scores, side="right"), p, len(layout.score_edges) + 1
        )
        category_counts = []
        for lookup, column in zip(self._lookups, categorical, strict=True):
            other = len(lookup)
            codes = np.fromiter(map(lookup.get, column, repeat(other)), dtype=np.int64, count=n)
            category_counts.append(_counts(slot, codes, p, other + 1))
        sums, squares = _sums(slot, p, numeric), _sums(slot, p, numeric**2)
        performance = self._performance(slot, p, scores, decisions)
        score_sum = np.bincount(slot, weights=scores, minlength=p)
        score_squares = np.bincount(slot, weights=scores**2, minlength=p)
        rows = np.bincount(slot, minlength=p)
        positive = np.bincount(slot, weights=decisions.astype(np.float64), minlength=p)
        first_offset, last_offset = _span(slot, p, offsets)
        first_time, last_time = _span(slot, p, timestamps)
        sums_t, squares_t = sums.T.tolist(), squares.T.tolist()
        return [
            Evidence(
                model_name=self.model_name,
                model_version=self.model_version,
                bins=layout.fingerprint,
                topic=self.topic,
                partition=int(owners[i]),
                offset_start=int(first_offset[i]),
                offset_end=int(last_offset[i]),
                rows=int(rows[i]),
                event_time_start_ms=int(first_time[i]),
                event_time_end_ms=int(last_time[i]),
                numeric=[c[i].tolist() for c in numeric_counts],
                numeric_sum=sums_t[i],
                numeric_sum_squares=squares_t[i],
                scores=score_counts[i].tolist(),
                score_sum=float(score_sum[i]),
                score_sum_squares=float(score_squares[i]),
                decisions=int(positive[i]),
                categorical=[c[i].tolist() for c in category_counts],
                producer=self.producer,
                **{name: values[i] for name, values in performance.items()},
            )
            for i in range(p)
        ]

    def _performance(
        self, slot: np.ndarray, pieces: int, scores: np.ndarray, decisions: np.ndarray
    ) -> dict[str, list[Any]]:
        """Per record, the sums of the calibrated probabilities (:mod:`.performance`)."""
        if self.calibration is None:
            return {}
        probability = self.calibration.apply(scores)
        flagged = decisions.astype(bool)
        top = scores >= self.budget_threshold
        bins = np.searchsorted(PROBABILITY_EDGES, probability, side="right")
        return {
            "probability_sum": np.bincount(slot, weights=probability, minlength=pieces).tolist(),
            "flagged_probability_sum": np.bincount(
                slot, weights=probability * flagged, minlength=pieces
            ).tolist(),
            "budget_flagged": np.bincount(slot, weights=top, minlength=pieces).astype(np.int64).tolist(),
            "budget_probability_sum": np.bincount(slot, weights=probability * top, minlength=pieces).tolist(),
            "probability_counts": _counts(slot, bins, pieces, BINS).tolist(),
            "probability_sums": np.bincount(slot * BINS + bins, weights=probability, minlength=pieces * BINS)
            .reshape(pieces, BINS)
            .tolist(),
        }


def _sums(slot: np.ndarray, pieces: int, values: np.ndarray) -> np.ndarray:
    """columns × pieces sums of an n × columns matrix."""
    if not values.shape[1]:
        return np.zeros((0, pieces))
    return np.stack(
        [np.bincount(slot, weights=values[:, j], minlength=pieces) for j in range(values.shape[1])]
    )


def _span(slot: np.ndarray, pieces: int, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The smallest and the largest of ``values`` in each piece."""
    low = np.full(pieces, np.iinfo(np.int64).max)
    np.minimum.at(low, slot, values)
    high = np.full(pieces, np.iinfo(np.int64).min)
    np.maximum.at(high, slot, values)
    return low, high


def _counts(slot: np.ndarray, codes: np.ndarray, partitions: int, bins: int) -> np.ndarray:
    """partitions × bins counts of ``codes`` per row's partition slot."""
    return np.bincount(slot * bins + codes, minlength=partitions * bins).reshape(partitions, bins)


def stats_of(rows: int, total: float, squares: float) -> WindowStats:
    """Mean and standard deviation from a count and two sums (a window of merged evidence)."""
    if rows <= 0:
        return WindowStats(count=0)
    mean = total / rows
    return WindowStats(count=rows, mean=mean, std=float(np.sqrt(max(squares / rows - mean * mean, 0.0))))
