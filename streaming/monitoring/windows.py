"""The windows a model's monitor tests: merged evidence counts, the recent rows, each
partition's own view, and the tests and explanations made of them.

A window is a sum of evidence records on the reference's bins (:class:`Counts`): its
chi-square tests against the reference (or a partition's own baseline) say whether a column
moved (:func:`rejections`, :func:`explain`), with the PSI as the effect size; the newest
records behind a window (:class:`Recent`) are what a drift event's evidence offsets name.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from streaming.config import MonitoringSettings
from streaming.events import Evidence, FeatureShift, OffsetRange, WindowStats
from streaming.monitoring.evidence import SCORE, BinLayout, stats_of
from streaming.monitoring.monitors import Detection
from streaming.monitoring.window_tests import chi_square_counts, holm

#: Columns an explanation lists at least (those that moved, then others for context).
EXPLAIN_TOP = 5

Location = tuple[int, int] | None  # (evidence partition, evidence offset), where known


class Counts:
    """Merged histograms of a run of evidence records (a window)."""

    def __init__(self, layout: BinLayout) -> None:
        self.numeric = [np.zeros(len(r), dtype=np.int64) for r in layout.numeric_reference]
        self.scores = np.zeros(len(layout.score_reference), dtype=np.int64)
        self.categorical = [np.zeros(len(r), dtype=np.int64) for r in layout.categorical_reference]
        self.numeric_sum = np.zeros(len(layout.numeric_reference))
        self.numeric_squares = np.zeros(len(layout.numeric_reference))
        self.score_sum = 0.0
        self.score_squares = 0.0
        self.rows = 0

    def add(self, evidence: Evidence, sign: int = 1) -> None:
        for total, counts in zip(self.numeric, evidence.numeric, strict=True):
            total += sign * np.asarray(counts, dtype=np.int64)
        for total, counts in zip(self.categorical, evidence.categorical, strict=True):
            total += sign * np.asarray(counts, dtype=np.int64)
        self.scores += sign * np.asarray(evidence.scores, dtype=np.int64)
        self.numeric_sum += sign * np.asarray(evidence.numeric_sum)
        self.numeric_squares += sign * np.asarray(evidence.numeric_sum_squares)
        self.score_sum += sign * evidence.score_sum
        self.score_squares += sign * evidence.score_sum_squares
        self.rows += sign * evidence.rows


@dataclass(frozen=True)
class ColumnTest:
    column: str
    signal: str
    detector: str
    statistic: float
    p_value: float
    psi: float


def column_tests(
    layout: BinLayout, counts: Counts, against: Counts | None = None
) -> tuple[list[ColumnTest], ColumnTest]:
    """Chi-square of every feature column and of the scores against the reference (or
    against the counts of ``against``, a baseline on the same bins)."""
    numeric_reference = against.numeric if against is not None else layout.numeric_reference
    categorical_reference = against.categorical if against is not None else layout.categorical_reference
    score_reference = against.scores if against is not None else layout.score_reference
    features = []
    for name, reference, window in zip(layout.names, numeric_reference, counts.numeric, strict=True):
        features.append(ColumnTest(name, "feature", "chi_square", *chi_square_counts(reference, window)))
    for name, reference, window in zip(
        layout.categorical_names, categorical_reference, counts.categorical, strict=True
    ):
        features.append(ColumnTest(name, "feature", "chi_square", *chi_square_counts(reference, window)))
    score = ColumnTest(SCORE, "prediction", "chi_square", *chi_square_counts(score_reference, counts.scores))
    return features, score


def rejections(
    layout: BinLayout, counts: Counts, alpha: float, min_psi: float, against: Counts | None = None
) -> list[ColumnTest]:
    """The strongest rejected feature column (Holm at ``alpha``) and the scores (at ``alpha``),
    each only with an effect of at least ``min_psi``: significant *and* material."""
    features, score = column_tests(layout, counts, against)
    found = []
    if features:
        rejected = holm([t.p_value for t in features], alpha)
        material = [t for t, r in zip(features, rejected, strict=True) if r and t.psi >= min_psi]
        if material:
            found.append(min(material, key=lambda t: t.p_value))
    if score.p_value <= alpha and score.psi >= min_psi:
        found.append(score)
    return found


class Recent:
    """The newest evidence records covering at least ``rows`` rows, with their merged counts."""

    def __init__(self, layout: BinLayout, rows: int) -> None:
        self.rows = rows
        self.records: deque[tuple[Evidence, Location]] = deque()
        self.counts = Counts(layout)

    def push(self, evidence: Evidence, location: Location) -> None:
        self.records.append((evidence, location))
        self.counts.add(evidence)
        while self.records and self.counts.rows - self.records[0][0].rows >= self.rows:
            old, _ = self.records.popleft()
            self.counts.add(old, -1)


@dataclass
class PartitionWindow:
    """One partition's own view. Its traffic is not a sample of the whole stream (records
    are keyed by account: each partition has its own customers), so it is compared with its
    own first ``reference_rows`` rows, ``baseline``, not with the model's reference."""

    baseline: Counts
    counts: Counts
    recent: Recent
    rows: int = 0
    baseline_rows: int = 0
    tested_at: int = 0  # pooled rows when its window was last tested (or its baseline completed)

    @property
    def ready(self) -> bool:
        return self.baseline.rows >= self.baseline_rows


def window_detection(test: ColumnTest, index: int, rows: int) -> Detection:
    return Detection(
        test.signal,
        test.detector,
        index,
        feature=test.column if test.signal == "feature" else None,
        statistic=test.statistic,
        p_value=test.p_value,
        effect=test.psi,
        window_rows=rows,
    )


def explain(layout: BinLayout, counts: Counts, settings: MonitoringSettings) -> list[FeatureShift]:
    """Every column of ``counts`` (a recent pooled window) against the reference: ``moved``
    where its test rejects (Holm across the features at ``window_alpha``; the scores at
    ``window_alpha``) with a PSI of at least ``window_min_psi``; see :func:`ranked`."""
    if counts.rows == 0:
        return []
    features, score = column_tests(layout, counts)
    rejected = (
        holm([t.p_value for t in features], settings.window_alpha) if features else np.zeros(0, dtype=bool)
    )
    significant = [*(bool(r) for r in rejected), score.p_value <= settings.window_alpha]
    shifts = []
    for test, sure in zip([*features, score], significant, strict=True):
        before, after = before_after(layout, counts, test.column)
        shifts.append(
            FeatureShift(
                column=test.column,
                psi=test.psi,
                p_value=test.p_value,
                statistic=test.statistic if math.isfinite(test.statistic) else None,
                moved=sure and test.psi >= settings.window_min_psi,
                before=before,
                after=after,
            )
        )
    return ranked(shifts)


def ranked(shifts: list[FeatureShift]) -> list[FeatureShift]:
    """The columns that moved, largest effect first, then the largest of the others, for
    context, up to :data:`EXPLAIN_TOP` lines in all (every column that moved is listed)."""
    moved = sorted((s for s in shifts if s.moved), key=lambda s: -s.psi)
    others = sorted((s for s in shifts if not s.moved), key=lambda s: -s.psi)
    return [*moved, *others[: max(0, EXPLAIN_TOP - len(moved))]]


def column_stats(layout: BinLayout, counts: Counts, column: str | None) -> WindowStats:
    """The mean and spread of ``column`` in ``counts`` (a count only for a category)."""
    return before_after(layout, counts, column)[1]


def before_after(layout: BinLayout, counts: Counts, column: str | None) -> tuple[WindowStats, WindowStats]:
    if column == SCORE or column is None:
        return layout.score_stats, stats_of(counts.rows, counts.score_sum, counts.score_squares)
    if column in layout.names:
        j = layout.names.index(column)
        return layout.numeric_stats[j], stats_of(
            counts.rows, float(counts.numeric_sum[j]), float(counts.numeric_squares[j])
        )
    return WindowStats(count=layout.reference.rows), WindowStats(count=counts.rows)  # a category: counts only


def offsets_of(records: Iterable[tuple[Evidence, Location]], evidence_topic: str) -> list[OffsetRange]:
    """The evidence records of a window and the source offsets they summarize."""
    sources: dict[tuple[str, int], list[int]] = {}
    located: dict[int, list[int]] = {}
    for evidence, location in records:
        span = sources.setdefault(
            (evidence.topic, evidence.partition), [evidence.offset_start, evidence.offset_end]
        )
        span[0], span[1] = min(span[0], evidence.offset_start), max(span[1], evidence.offset_end)
        if location is not None:
            at = located.setdefault(location[0], [location[1], location[1]])
            at[0], at[1] = min(at[0], location[1]), max(at[1], location[1])
    return [
        *(
            OffsetRange(topic=evidence_topic, partition=p, start=s, end=e)
            for p, (s, e) in sorted(located.items())
        ),
        *(OffsetRange(topic=t, partition=p, start=s, end=e) for (t, p), (s, e) in sorted(sources.items())),
    ]
