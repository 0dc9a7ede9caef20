"""One monitor per model, on pooled evidence from every partition: one alarm per drift.

:class:`ModelMonitor` is what `driftloop monitor` (and the backtest, and the detection
benchmark) runs. It takes :class:`~streaming.events.Evidence` records from any number of
partitions and scorer processes, skips what it counted already (:class:`.OffsetLedger`),
puts them back in event-time order (:class:`.EventTimeMerger`), and watches the pooled
stream of the current champion:

- *feature* and *prediction*: a River detector per numeric feature and on the scores, fed
  each row's reference rank (its bin's mid-rank, rows of one record in a seeded random
  order); tumbling window tests of ``window`` pooled rows, chi-square of every column's
  histogram against the reference's on the same bins, Holm across columns, a rejection
  counting only with an effect (PSI) of at least ``window_min_psi`` (on a thousand rows a
  chi-square test also rejects shifts too small to act on);
- *per partition*: the same window tests on each partition's own rows against the
  partition's own first ``reference_rows`` rows (keyed by account, a partition has its own
  customers: it is not a sample of the reference), at ``window_alpha`` divided by the
  number of partitions (one false-alarm budget for all), so a drift confined to one
  partition's traffic, diluted in the pool, is still found;
- *label* and *error*: a River detector on the labels and on the model's loss of each
  outcome (from the ``outcomes`` topic), merged across partitions in label-time order.

Every detection goes through one model-level :class:`~.episodes.Episodes` (a signal's own
warm-up first; positions are pooled scored rows): the first opens an episode and becomes
one :class:`ModelAlarm`, with its
scope (the partitions whose recent rows moved away from their own baseline; all of them
when the drift is spread too thin for any one to show it), an explanation (the columns that moved most, by PSI,
with before/after statistics) and the evidence offsets of the window that fired; later
detections of any signal extend the episode.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
import numpy as np

from streaming.config import MonitoringSettings
from streaming.events import (
    DriftEvent,
    DriftStatus,
    Evidence,
    FeatureShift,
    OffsetRange,
    Severity,
    WindowStats,
)
from streaming.monitoring.episode import Episode
from streaming.monitoring.evidence import SCORE, BinLayout
from streaming.monitoring.merging import EventTimeMerger, OffsetLedger
from streaming.monitoring.monitors import Detection, DetectorMonitor
from streaming.monitoring.performance import PerformanceFigures, PerformanceModel, PerformanceSums, realized
from streaming.monitoring.severity import rate_severity, shift_severity
from streaming.monitoring.window_tests import holm
from streaming.monitoring.windows import (
    EXPLAIN_TOP,
    ColumnTest,
    Counts,
    Location,
    PartitionWindow,
    Recent,
    column_stats,
    column_tests,
    explain,
    offsets_of,
    ranked,
    rejections,
    window_detection,
)

_SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2}
#: The backtest's event time: one second per row.
ROW_MS = 1000
#: Labelled outcomes a rate must be measured on to say whether it is back in its band.
BAND_OUTCOMES = 2000
MIN_RATE_OUTCOMES = 500


@dataclass(frozen=True)
class OutcomeChunk:
    """Outcomes of one source partition, in label-time order: what the label and error
    monitors read."""

    partition: int
    label_times_ms: np.ndarray
    scores: np.ndarray
    decisions: np.ndarray
    labels: np.ndarray
    model_version: str
    event_times_ms: np.ndarray | None = None  # the transactions' own event times (None: the label times)


@dataclass(frozen=True)
class Seen:
    """A detection past its signal's warm-up, whether it opened an episode or extended one."""

    signal: str
    detector: str
    feature: str | None
    seen: int  # events the signal's detector had seen, the firing one included
    opened: bool


@dataclass(frozen=True)
class ModelAlarm:
    """A detection that opened a model-level episode, with what the drift event carries."""

    detection: Detection
    rows_seen: int  # pooled scored rows when it fired
    event_time_ms: int  # event time of the evidence (or label) it fired on
    partition: int | None  # the partition it was found in alone, if so
    scope: list[int]
    partitions_seen: int
    explanation: list[FeatureShift]
    evidence: list[OffsetRange]
    before: WindowStats
    after: WindowStats
    severity: Severity
    model_version: str
    source: OffsetRange | None = None  # the source offsets of ``partition``'s window
    window_start_ms: int | None = None  # event time of the first transaction of the window that fired
    #: Events the signal's detector had seen when it fired, the firing one included: scored
    #: rows for the feature and prediction signals, outcomes for label and error.
    seen: int = 0
    scope_found: bool = True  # False: no partition moved on its own, ``scope`` is every one seen
    status: DriftStatus = "opened"
    episode_id: str | None = None
    episode_started_ms: int | None = None
    resolution: Literal["back_in_band", "new_model"] | None = None

    @property
    def signal(self) -> str:
        return self.detection.signal

    def event_id(self, model_name: str) -> str:
        """Deterministic: a replay publishes the same alarm under the same id."""
        d = self.detection
        parts: tuple[object, ...] = (
            (model_name, self.model_version, d.signal, d.detector, d.feature, self.partition, self.rows_seen)
            if self.status == "opened"
            else (self.episode_id, self.status, self.rows_seen, self.event_time_ms)
        )
        identity = "|".join(map(str, parts))
        return str(uuid.UUID(bytes=hashlib.sha256(identity.encode()).digest()[:16], version=5))

    def to_event(self, model_name: str, row: bool = False) -> DriftEvent:
        """The DriftEvent; the same alarm always gets the same ``event_id``. With ``row``
        (the backtest, where row ``i``'s event time is ``i`` seconds), ``row`` is the row the
        alarm fired at."""
        d = self.detection
        event_id = self.event_id(model_name)
        source = self.source if not row else None
        started = self.episode_started_ms
        return DriftEvent(
            status=self.status,
            episode_id=self.episode_id or event_id,
            episode_started_at=None
            if row or started is None
            else datetime.fromtimestamp(started / 1000, UTC),
            resolution=self.resolution,
            event_id=event_id,
            model_name=model_name,
            model_version=self.model_version,
            signal=d.signal,  # type: ignore[arg-type]
            detector=d.detector,
            feature=d.feature,
            partition=self.partition,
            offset_start=source.start if source is not None else None,
            offset_end=source.end if source is not None else None,
            row=self.event_time_ms // ROW_MS if row else None,
            before=self.before,
            after=self.after,
            statistic=d.statistic if d.statistic is None or math.isfinite(d.statistic) else None,
            p_value=d.p_value if d.p_value is None or math.isfinite(d.p_value) else None,
            severity=self.severity,
            detected_at=datetime.now(UTC),
            scope=self.scope,
            partitions_seen=self.partitions_seen,
            explanation=self.explanation,
            evidence=[] if row else self.evidence,
            event_time=None if row else datetime.fromtimestamp(self.event_time_ms / 1000, UTC),
            window_start=None
            if row or self.window_start_ms is None
            else datetime.fromtimestamp(self.window_start_ms / 1000, UTC),
        )


@dataclass
class _Champion:
    """The detectors of one champion version (fresh ones when the champion changes)."""

    version: str
    layout: BinLayout
    settings: MonitoringSettings
    feature_detectors: list[DetectorMonitor] = field(default_factory=list)
    prediction_detector: DetectorMonitor | None = None
    label_detector: DetectorMonitor | None = None
    error_detector: DetectorMonitor | None = None
    window: Counts | None = None
    recent: Recent | None = None
    partitions: dict[int, PartitionWindow] = field(default_factory=dict)
    outcomes: deque[tuple[float, float, float]] = field(default_factory=deque)  # (label, loss, event ms)
    rows: int = 0
    labelled: int = 0
    performance: PerformanceModel | None = None  # None: the model carries no calibration
    estimate_sums: PerformanceSums = field(default_factory=PerformanceSums)
    estimate: PerformanceFigures | None = None  # of the latest full window
    #: (event time ms, estimate) of the recent windows, newest last.
    estimates: deque[tuple[int, PerformanceFigures]] = field(default_factory=lambda: deque(maxlen=500))
    labelled_recent: deque[tuple[float, bool, int]] = field(default_factory=deque)  # (score, decision, label)

    def __post_init__(self) -> None:
        settings, params = self.settings, self.settings.detector_params
        feature_params = dict(params.get("feature", {}))
        if "delta" in feature_params and self.layout.names:  # the features share one budget (Bonferroni)
            feature_params["delta"] = feature_params["delta"] / len(self.layout.names)
        self.feature_detectors = [
            DetectorMonitor("feature", settings.feature_detector, feature_params, feature=name)
            for name in self.layout.names
        ]
        self.prediction_detector = DetectorMonitor(
            "prediction", settings.prediction_detector, params.get("prediction", {})
        )
        self.label_detector = DetectorMonitor("label", settings.label_detector, params.get("label", {}))
        self.error_detector = DetectorMonitor("error", settings.error_detector, params.get("error", {}))
        self.window = Counts(self.layout)
        self.recent = Recent(self.layout, settings.window)


class ModelMonitor:
    """The drift monitor of one model over all its partitions (see the module docstring).

    Parameters
    ----------
    settings
        Detectors, window, warm-up, cooldown, lateness.
    model_name
        The model whose evidence this monitor reads (other models' records are skipped).
    partitions
        How many source partitions to expect (the watermark waits for each, within the
        lateness bound); ``None``: those seen so far.
    seed
        Seeds the order in which a record's rows are fed to the per-event detectors.
    evidence_topic
        Named in the evidence offsets of drift events.
    """

    #: Snapshots of monitors from before episodes had a lifecycle have no open episode.
    episode: Episode | None = None

    def __init__(
        self,
        settings: MonitoringSettings,
        model_name: str,
        partitions: int | None = None,
        seed: int = 0,
        evidence_topic: str = "drift.evidence",
    ) -> None:
        self.settings = settings
        self.evidence_topic = evidence_topic
        self.model_name = model_name
        self.partitions = partitions
        self.seed = seed
        lateness_ms = int(settings.lateness_s * 1000)
        self.ledger = OffsetLedger()
        idle_s, held = settings.partition_idle_s, settings.max_held_evidence
        self.evidence: EventTimeMerger[tuple[Evidence, Location]] = EventTimeMerger(
            lateness_ms, partitions, idle_s, held
        )
        self.outcomes: EventTimeMerger[OutcomeChunk] = EventTimeMerger(lateness_ms, partitions, idle_s, held)
        self.episode: Episode | None = None  # the model's open drift episode
        self.champion: _Champion | None = None
        self.retired: set[str] = set()
        self.skipped: dict[str, int] = {}  # reason -> records (other_model, other_bins, duplicate, overlap)
        self.rows = 0  # pooled scored rows seen (all champions)
        self.labelled = 0
        self.partitions_seen: set[int] = set()
        self.evidence_offsets: dict[int, int] = {}  # evidence partition -> next offset to read
        self.merged_to = 0  # the newest event time (ms) of the evidence merged so far
        #: The newest detections, those inside an episode too (a debugging and test aid).
        self.detections: deque[Seen] = deque(maxlen=1000)

    # -- champion ----------------------------------------------------------------------

    @property
    def version(self) -> str | None:
        return self.champion.version if self.champion is not None else None

    def wants(self, version: str) -> bool:
        """True for a model version this monitor should switch to (a new champion)."""
        return version != self.version and version not in self.retired

    def start(
        self, version: str, layout: BinLayout, performance: PerformanceModel | None = None
    ) -> list[ModelAlarm]:
        """Watch ``version`` from now on, against ``layout`` (its reference's bins), and with
        ``performance`` (its calibration) estimate how it does. What is pending for the
        previous champion is processed first; its late records are skipped."""
        alarms = self.advance(flush=True) if self.champion is not None else []
        if self.champion is not None:
            self.retired.add(self.champion.version)
            if self.episode is not None:  # a new model took over: the old one's drift is closed
                alarms.append(
                    self._episode_alarm(self.champion, self.episode, "resolved", self.merged_to, "new_model")
                )
        self.episode = None
        self.champion = _Champion(version, layout, self.settings, performance=performance)
        return alarms

    # -- input -------------------------------------------------------------------------

    def add_evidence(self, evidence: Evidence, location: Location = None, now: float | None = None) -> str:
        """Take one record; returns ``"new"`` or why it was skipped. ``now`` (a monotonic
        clock, in seconds) tells idle partitions apart; None: none is idle (the backtest)."""
        if location is not None:
            self.evidence_offsets[location[0]] = location[1] + 1
        champion = self.champion
        if (
            evidence.model_name != self.model_name
            or champion is None
            or evidence.model_version != champion.version
        ):
            return self._skip("other_model")
        if evidence.bins != champion.layout.fingerprint:
            return self._skip("other_bins")
        admitted = self.ledger.admit(evidence.partition, evidence.offset_start, evidence.offset_end)
        if admitted != "new":
            return self._skip(admitted)
        self.evidence.add(evidence.partition, evidence.event_time_end_ms, (evidence, location), now)
        return "new"

    def add_outcomes(self, chunk: OutcomeChunk, now: float | None = None) -> None:
        if not len(chunk.labels):
            return
        self.outcomes.add(chunk.partition, int(chunk.label_times_ms[-1]), chunk, now)

    def _skip(self, reason: str) -> str:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        return reason

    # -- detection ---------------------------------------------------------------------

    def advance(self, flush: bool = False, now: float | None = None) -> list[ModelAlarm]:
        """Process everything the watermarks release (everything with ``flush``), in time order."""
        released: list[tuple[int, int, Any]] = [
            (ev.event_time_end_ms, 0, (ev, location)) for ev, location in self.evidence.release(flush, now)
        ]
        released += [(int(c.label_times_ms[-1]), 1, c) for c in self.outcomes.release(flush, now)]
        released.sort(key=lambda item: (item[0], item[1]))
        alarms: list[ModelAlarm] = []
        for time_ms, kind, item in released:
            if kind == 0:
                self.merged_to = max(self.merged_to, time_ms)
                alarms += self._observe_evidence(*item)
            else:
                alarms += self._observe_outcomes(item, time_ms)
        return alarms

    def _observe_evidence(self, evidence: Evidence, location: Location) -> list[ModelAlarm]:
        champion = self.champion
        if champion is None or evidence.model_version != champion.version:
            self._skip("other_model")
            return []
        layout, settings = champion.layout, self.settings
        first = champion.rows
        self.partitions_seen.add(evidence.partition)
        # (detection, the partition it was found in alone, pooled rows until its test can fire again)
        detections: list[tuple[Detection, int | None, int]] = []
        rng = np.random.default_rng((self.seed, evidence.partition, evidence.offset_start))
        order = rng.permutation(evidence.rows)
        for detector, pit, counts in zip(
            champion.feature_detectors, layout.numeric_pit, evidence.numeric, strict=True
        ):
            detections += [(d, None, 1) for d in detector.update_many(np.repeat(pit, counts)[order])]
        assert champion.prediction_detector is not None and champion.window is not None
        detections += [
            (d, None, 1)
            for d in champion.prediction_detector.update_many(
                np.repeat(layout.score_pit, evidence.scores)[order]
            )
        ]
        champion.rows += evidence.rows
        self.rows += evidence.rows
        assert champion.recent is not None
        champion.recent.push(evidence, location)
        last = evidence.rows - 1
        # Pooled tumbling window.
        champion.window.add(evidence)
        if champion.window.rows >= settings.window:
            detections += [
                (window_detection(t, last, champion.window.rows), None, settings.window)
                for t in rejections(layout, champion.window, settings.window_alpha, settings.window_min_psi)
            ]
            champion.window = Counts(layout)
        detections += self._partition_window(champion, evidence, location, last)
        detections += [
            (d, None, settings.performance_window) for d in self._estimate(champion, evidence, last)
        ]
        alarms = []
        # The pooled stream's event time: a late record's own is older than what it joined.
        at = max(evidence.event_time_end_ms, self.merged_to)
        for detection, partition, spacing in sorted(detections, key=lambda d: d[0].index):
            seen = first + detection.index + 1
            if seen < settings.warmup:
                continue
            # The quiet period counts from the slowest test's next chance to fire: each
            # partition's window test fires once per `window` of its own rows, many more
            # pooled rows, and would otherwise reopen an episode its persisting drift keeps.
            quiet_rows = max(spacing, self._partition_cycle()) + settings.cooldown
            alarm = dataclasses.replace(
                self._performance_alarm(champion, detection, at)
                if detection.signal == "performance"
                else self._input_alarm(champion, detection, partition, at),
                seen=seen,
            )
            opening = self._on_detection(alarm, self.rows - evidence.rows + detection.index + 1, quiet_rows)
            alarms += [opening] if opening is not None else []
        return alarms + self._episode_step(champion, self.rows, at)

    def _partition_window(
        self, champion: _Champion, evidence: Evidence, location: Location, last: int
    ) -> list[tuple[Detection, int | None, int]]:
        """The evidence's partition's own tumbling window, on one share of the false-alarm
        budget, against the partition's own first rows."""
        layout, settings = champion.layout, self.settings
        own = champion.partitions.get(evidence.partition)
        if own is None:
            own = champion.partitions[evidence.partition] = PartitionWindow(
                Counts(layout),
                Counts(layout),
                Recent(layout, settings.window),
                baseline_rows=settings.reference_rows,
            )
        own.rows += evidence.rows
        if not own.ready:
            own.baseline.add(evidence)
        else:
            own.counts.add(evidence)
            own.recent.push(evidence, location)
        if not own.ready:
            return []
        if own.counts.rows < settings.window:
            if own.tested_at == 0:
                own.tested_at = self.rows
            return []
        alpha = settings.window_alpha / max(len(self.partitions_seen), self.partitions or 1)
        # A partition's window fills once per `window` of its own rows: many more pooled rows.
        spacing = self.rows - own.tested_at
        own.tested_at = self.rows
        found: list[tuple[Detection, int | None, int]] = [
            (window_detection(t, last, own.counts.rows), evidence.partition, spacing)
            for t in rejections(layout, own.counts, alpha, settings.window_min_psi, against=own.baseline)
        ]
        own.counts = Counts(layout)
        return found

    def _partition_cycle(self) -> int:
        """Pooled rows in which every partition's own window test comes round once (traffic
        spread evenly); 1 with one partition (its own test is the pooled one)."""
        partitions = max(len(self.partitions_seen), self.partitions or 1)
        return self.settings.window * partitions if partitions > 1 else 1

    def _observe_outcomes(self, chunk: OutcomeChunk, time_ms: int) -> list[ModelAlarm]:
        champion = self.champion
        if champion is None or chunk.model_version != champion.version:
            self._skip("other_model_outcomes")
            return []
        y = np.asarray(chunk.labels, dtype=np.float64)
        if self.settings.error_input == "brier":
            loss = (np.asarray(chunk.scores, dtype=np.float64) - y) ** 2
        else:
            loss = (np.asarray(chunk.decisions, dtype=bool) != y.astype(bool)).astype(np.float64)
        assert champion.label_detector is not None and champion.error_detector is not None
        detections = champion.label_detector.update_many(y) + champion.error_detector.update_many(loss)
        first = champion.labelled
        champion.labelled += len(y)
        self.labelled += len(y)
        recent = champion.outcomes
        times = chunk.event_times_ms if chunk.event_times_ms is not None else chunk.label_times_ms
        event_ms = np.asarray(times, dtype=np.float64)
        alarms = []
        for detection in sorted(detections, key=lambda d: d.index):
            seen = first + detection.index + 1
            if seen < self.settings.warmup:
                continue
            upto = list(
                zip(
                    y[: detection.index + 1].tolist(),
                    loss[: detection.index + 1].tolist(),
                    event_ms[: detection.index + 1].tolist(),
                    strict=True,
                )
            )
            window = [*list(recent)[-self.settings.window :], *upto][-self.settings.window :]
            at = int(chunk.label_times_ms[detection.index])
            alarm = dataclasses.replace(
                self._outcome_alarm(champion, detection, np.array(window), at), seen=seen
            )
            opening = self._on_detection(alarm, self.rows, self._partition_cycle() + self.settings.cooldown)
            alarms += [opening] if opening is not None else []
        recent.extend(zip(y.tolist(), loss.tolist(), event_ms.tolist(), strict=True))
        while len(recent) > self.settings.window:
            recent.popleft()
        labelled = champion.labelled_recent
        labelled.extend(
            zip(
                np.asarray(chunk.scores, dtype=np.float64).tolist(),
                np.asarray(chunk.decisions, dtype=bool).tolist(),
                np.asarray(chunk.labels, dtype=np.int64).tolist(),
                strict=True,
            )
        )
        while len(labelled) > self.settings.performance_window:
            labelled.popleft()
        return alarms + self._episode_step(champion, self.rows, time_ms)

    # -- performance -------------------------------------------------------------------

    def _estimate(self, champion: _Champion, evidence: Evidence, last: int) -> list[Detection]:
        """Add the record's probability sums to the estimate; at the end of each
        ``performance_window`` rows, the window's estimate, and a ``performance`` detection
        when its metric is below the bound."""
        model = champion.performance
        if model is None or not evidence.probability_counts:
            return []
        champion.estimate_sums.add(
            PerformanceSums(
                rows=evidence.rows,
                probability=evidence.probability_sum,
                flagged=evidence.decisions,
                flagged_probability=evidence.flagged_probability_sum,
                budget_flagged=evidence.budget_flagged,
                budget_probability=evidence.budget_probability_sum,
                counts=np.asarray(evidence.probability_counts, dtype=np.int64),
                probabilities=np.asarray(evidence.probability_sums, dtype=np.float64),
            )
        )
        if champion.estimate_sums.rows < self.settings.performance_window:
            return []
        figures = champion.estimate_sums.figures()
        champion.estimate_sums = PerformanceSums()
        champion.estimate = figures
        champion.estimates.append((max(evidence.event_time_end_ms, self.merged_to), figures))
        metric = self.settings.performance_metric
        value, bound = getattr(figures, metric), self._performance_bound(model)
        if not value < bound:  # NaN (nothing to say) is no detection
            return []
        baseline = getattr(model.baseline, metric)
        return [
            Detection(
                "performance",
                "cbpe",
                last,
                feature=metric,
                statistic=value,
                effect=baseline - value,
                window_rows=figures.rows,
            )
        ]

    def _performance_bound(self, model: PerformanceModel) -> float:
        if self.settings.performance_min is not None:
            return self.settings.performance_min
        metric = self.settings.performance_metric
        return float(getattr(model.baseline, metric)) - self.settings.performance_max_drop

    def performance(self) -> tuple[PerformanceFigures | None, PerformanceFigures | None]:
        """The champion's latest estimated figures (None before a full window) and the realized
        ones on its newest ``performance_window`` labelled outcomes (None before any)."""
        champion = self.champion
        if champion is None or champion.performance is None:
            return None, None
        labelled = champion.labelled_recent
        real = None
        if labelled:
            scores, decisions, labels = (np.array(column) for column in zip(*labelled, strict=True))
            real = realized(labels, scores, decisions, champion.performance.budget_score)
        return champion.estimate, real

    def _performance_alarm(self, champion: _Champion, detection: Detection, time_ms: int) -> ModelAlarm:
        assert champion.performance is not None and champion.recent is not None
        baseline = float(getattr(champion.performance.baseline, self.settings.performance_metric))
        value = detection.statistic if detection.statistic is not None else math.nan
        before = WindowStats(count=champion.layout.reference.rows, mean=baseline)
        after = WindowStats(count=detection.window_rows or 0, mean=value)
        drop = baseline - value
        recent = champion.recent
        return ModelAlarm(
            window_start_ms=min((e.event_time_start_ms for e, _ in recent.records), default=None),
            detection=detection,
            rows_seen=self.rows,
            event_time_ms=time_ms,
            partition=None,
            scope=sorted(self.partitions_seen),
            scope_found=False,
            partitions_seen=len(self.partitions_seen),
            explanation=explain(champion.layout, recent.counts, self.settings),
            evidence=offsets_of(recent.records, self.evidence_topic),
            before=before,
            after=after,
            severity="high" if drop >= 2 * self.settings.performance_max_drop else "medium",
            model_version=champion.version,
        )

    # -- episodes ----------------------------------------------------------------------

    def _on_detection(self, alarm: ModelAlarm, position: int, quiet_rows: int) -> ModelAlarm | None:
        """Open an episode (the alarm, to publish) or extend the open one (None)."""
        episode = self.episode
        d = alarm.detection
        self.detections.append(Seen(d.signal, d.detector, d.feature, alarm.seen, episode is None))
        found = alarm.scope if alarm.scope_found else []
        champion = self.champion
        assert champion is not None
        baseline = math.nan
        if d.signal in ("label", "error") and (episode is None or d.signal not in episode.baselines):
            # The band the rate must come back to: its level before the change the detector saw.
            before = self._rate(champion, d.signal, skip=d.window_rows or 0)
            baseline = before if before is not None else self._reference_rate(champion, d.signal)
        if episode is None:
            episode_id = alarm.event_id(self.model_name)
            self.episode = Episode.open(
                episode_id,
                signal=d.signal,
                position=position,
                time_ms=alarm.event_time_ms,
                quiet_rows=quiet_rows,
            )
            self.episode.note([s for s in alarm.explanation if s.moved], found)
            if d.signal in ("label", "error"):
                self.episode.baselines[d.signal] = baseline
            opening = dataclasses.replace(
                alarm, episode_id=episode_id, episode_started_ms=alarm.event_time_ms
            )
            self.episode.opening = opening
            return opening
        episode.extend(d.signal, position=position, quiet_rows=quiet_rows)
        episode.note([s for s in alarm.explanation if s.moved], found)
        if d.signal in ("label", "error") and d.signal not in episode.baselines:
            episode.baselines[d.signal] = baseline
        return None

    def _episode_step(self, champion: _Champion, position: int, time_ms: int) -> list[ModelAlarm]:
        """After new input: resolve the open episode once it is quiet and its rates are back
        in their band, or re-report it (``ongoing``) when a report is due and it persists."""
        episode = self.episode
        if episode is None:
            return []
        settings = self.settings
        out_of_band = [
            s
            for s in ("label", "error", "performance")
            if s in episode.signals and not self._in_band(champion, s)
        ]
        if episode.quiet(position):
            if not out_of_band:
                self.episode = None
                return [self._episode_alarm(champion, episode, "resolved", time_ms, "back_in_band")]
            episode.quiet_from = position + settings.cooldown  # still out of its band: stays open
        if episode.report_due(time_ms, int(settings.ongoing_every_s * 1000)) and (
            episode.detections > episode.detections_reported or out_of_band
        ):
            episode.reported(time_ms)
            return [self._episode_alarm(champion, episode, "ongoing", time_ms)]
        return []

    def _in_band(self, champion: _Champion, signal: str) -> bool:
        """Whether a signal that fired is back within its band. A rate (label, error): the
        newest :data:`BAND_OUTCOMES` outcomes' rate is within two standard errors of its level
        before the drift (the rate the detector saw as normal). The performance estimate: the
        latest window's is back above its bound."""
        if signal == "performance":
            model, estimate = champion.performance, champion.estimate
            if model is None or estimate is None:
                return True
            return not getattr(estimate, self.settings.performance_metric) < self._performance_bound(model)
        episode = self.episode
        rate = self._rate(champion, signal, newest=BAND_OUTCOMES)
        if rate is None or episode is None:
            return False  # too few labels yet to say
        level = episode.baselines.get(signal, self._reference_rate(champion, signal))
        spread = math.sqrt(max(level * (1 - level), 1e-12) / BAND_OUTCOMES)  # a rate's standard error
        return abs(rate - level) < 2 * spread

    def _rate(self, champion: _Champion, signal: str, newest: int = 0, skip: int = 0) -> float | None:
        """The label (or error) rate of the newest labelled outcomes, leaving out the last
        ``skip``; None with fewer than :data:`MIN_RATE_OUTCOMES` of them."""
        rows = list(champion.labelled_recent)
        rows = rows[: len(rows) - skip] if skip else rows
        rows = rows[-newest:] if newest else rows
        if len(rows) < MIN_RATE_OUTCOMES:
            return None
        scores, decisions, labels = (
            np.asarray(column, dtype=np.float64) for column in zip(*rows, strict=True)
        )
        if signal == "label":
            return float(labels.mean())
        if self.settings.error_input == "brier":
            return float(((scores - labels) ** 2).mean())
        return float((decisions != labels).mean())

    def _reference_rate(self, champion: _Champion, signal: str) -> float:
        reference = champion.layout.reference
        if signal == "label":
            return reference.positive_rate
        return reference.brier if self.settings.error_input == "brier" else reference.error_rate

    def _episode_alarm(
        self,
        champion: _Champion,
        episode: Episode,
        status: DriftStatus,
        time_ms: int,
        resolution: Literal["back_in_band", "new_model"] | None = None,
    ) -> ModelAlarm:
        """An ``ongoing`` or ``resolved`` report of ``episode``: what opened it, with every
        column and partition that moved since."""
        opening = episode.opening
        assert opening is not None
        layout = champion.layout
        assert champion.recent is not None
        moved = episode.explanation()
        context = [
            msgspec.structs.replace(s, moved=False)
            for s in explain(layout, champion.recent.counts, self.settings)
            if s.column not in episode.moved
        ]
        scope = sorted(episode.scope) or sorted(self.partitions_seen)
        return dataclasses.replace(
            opening,
            status=status,
            resolution=resolution,
            rows_seen=self.rows,
            event_time_ms=max(time_ms, opening.event_time_ms),
            explanation=[*moved, *context[: max(0, EXPLAIN_TOP - len(moved))]],
            scope=scope,
            scope_found=bool(episode.scope),
            partitions_seen=len(self.partitions_seen),
            evidence=offsets_of(champion.recent.records, self.evidence_topic),
            severity="low"
            if status == "resolved"
            else max(
                (
                    opening.severity,
                    *(
                        shift_severity(
                            s.before or WindowStats(count=0), s.after or WindowStats(count=0), s.psi
                        )
                        for s in moved
                    ),
                ),
                key=_SEVERITY_RANK.__getitem__,
            ),
            episode_started_ms=episode.opened_time_ms,
        )

    # -- alarms ------------------------------------------------------------------------

    def _input_alarm(
        self, champion: _Champion, detection: Detection, partition: int | None, time_ms: int
    ) -> ModelAlarm:
        layout = champion.layout
        assert champion.recent is not None
        own = champion.partitions[partition] if partition is not None else None
        recent = own.recent if own is not None else champion.recent
        column = detection.feature if detection.signal == "feature" else SCORE
        explanation = explain(layout, champion.recent.counts, self.settings)
        if own is not None:  # it moved in one partition's own window, against its own baseline
            mine = FeatureShift(
                column=column or SCORE,
                psi=detection.effect or 0.0,
                p_value=detection.p_value,
                statistic=detection.statistic,
                moved=True,
                partition=partition,
                before=column_stats(layout, own.baseline, column),
                after=column_stats(layout, own.recent.counts, column),
            )
        else:
            pooled = next(s for s in explanation if s.column == (column or SCORE))
            mine = msgspec.structs.replace(
                pooled,
                moved=True,
                psi=max(pooled.psi, detection.effect or 0.0),
                p_value=detection.p_value if detection.p_value is not None else pooled.p_value,
                statistic=detection.statistic if detection.statistic is not None else pooled.statistic,
            )
        explanation = ranked([mine, *(s for s in explanation if s.column != mine.column)])
        before, after = mine.before or WindowStats(count=0), mine.after or WindowStats(count=0)
        offsets = offsets_of(recent.records, self.evidence_topic)
        source_topic = recent.records[-1][0].topic if recent.records else None
        scope, found = self._scope(champion, column, partition)
        return ModelAlarm(
            window_start_ms=min((e.event_time_start_ms for e, _ in recent.records), default=None),
            detection=detection,
            rows_seen=self.rows,
            event_time_ms=time_ms,
            partition=partition,
            scope=scope,
            scope_found=found,
            partitions_seen=len(self.partitions_seen),
            explanation=explanation,
            evidence=offsets,
            before=before,
            after=after,
            severity=shift_severity(before, after, mine.psi),
            model_version=champion.version,
            source=next((r for r in offsets if r.topic == source_topic and r.partition == partition), None)
            if partition is not None
            else None,
        )

    def _outcome_alarm(
        self, champion: _Champion, detection: Detection, recent: np.ndarray, time_ms: int
    ) -> ModelAlarm:
        column = 0 if detection.signal == "label" else 1
        reference = champion.layout.reference
        if column == 0:
            before_mean = reference.positive_rate
        else:
            before_mean = reference.brier if self.settings.error_input == "brier" else reference.error_rate
        before = WindowStats(
            count=reference.rows, mean=before_mean, std=math.sqrt(max(before_mean * (1 - before_mean), 0.0))
        )
        back = min(len(recent), detection.window_rows or len(recent))
        values = recent[-back:, column]
        after = WindowStats(count=len(values), mean=float(values.mean()), std=float(values.std()))
        assert champion.recent is not None
        return ModelAlarm(
            window_start_ms=int(recent[-back:, 2].min()) if recent.shape[1] > 2 else None,
            detection=detection,
            rows_seen=self.rows,
            event_time_ms=time_ms,
            partition=None,
            scope=sorted(self.partitions_seen),
            scope_found=False,
            partitions_seen=len(self.partitions_seen),
            explanation=explain(champion.layout, champion.recent.counts, self.settings),
            evidence=offsets_of(champion.recent.records, self.evidence_topic),
            before=before,
            after=after,
            severity=rate_severity(before, after),
            model_version=champion.version,
        )

    def _scope(self, champion: _Champion, column: str | None, found_in: int | None) -> tuple[list[int], bool]:
        """The partitions whose recent rows differ from their own baseline on ``column`` (Holm,
        with at least ``window_min_psi`` of effect), and True; or all partitions seen and False
        when none does on its own."""
        tested: list[tuple[int, float, float]] = []
        for partition, window in sorted(champion.partitions.items()):
            if not window.ready or window.recent.counts.rows < min(self.settings.window, 100):
                continue
            features, score = column_tests(champion.layout, window.recent.counts, against=window.baseline)
            test = next((t for t in [*features, score] if t.column == column), None)
            if test is not None:
                tested.append((partition, test.p_value, test.psi))
        rejected = (
            holm([p for _, p, _ in tested], self.settings.window_alpha) if tested else np.zeros(0, dtype=bool)
        )
        moved = {
            partition
            for (partition, _, psi), r in zip(tested, rejected, strict=True)
            if r and psi >= self.settings.window_min_psi
        }
        scope = sorted(moved | ({found_in} if found_in is not None else set()))
        return (scope, True) if scope else (sorted(self.partitions_seen), False)


# Snapshots pickled before the windows had a module of their own name them here.
_Counts, _Recent, _PartitionWindow, _ColumnTest = Counts, Recent, PartitionWindow, ColumnTest
