"""The baseline of `driftloop bench detection`: the monitors as `driftloop score` ran them
before `driftloop monitor`, one suite per source partition.

Kept to measure what pooling the evidence of every partition in one monitor
(:mod:`streaming.monitoring.model_monitor`) changes: each suite sees only its partition's
share of the stream, so it detects later as the partitions multiply, and each raises its own
alarm. Nothing but the benchmark runs it.

All monitors of one stream partition, fed one micro-batch at a time.

A :class:`MonitorSuite` watches the four signals of one model on one partition:

- *feature*: a per-event detector on each numeric feature's reference rank (scale-free,
  uniform while nothing moves; the detectors share the false-alarm budget) and a window
  test over all features (KS, chi-square for categories, Holm across features);
- *prediction*: a per-event detector on the score's reference rank and a window KS test;
- *label*: a per-event detector on the arriving labels (the positive rate);
- *error*: a per-event detector on the model's loss on each labelled prediction (Brier
  loss or 0/1 error). Labels come joined to their predictions already: the outcomes of
  `driftloop join` (:mod:`streaming.outcomes`), or the backtest's own rows.

Detections go through :class:`Episodes` (warm-up, one alarm per signal per episode,
cooldown) and come out as :class:`Alarm` values; :meth:`Alarm.to_event` turns one into a
:class:`~streaming.events.DriftEvent` with a deterministic id. Positions are whatever the
caller numbers events with: Kafka offsets in the scorer, row indices in the backtest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from streaming.config import MonitoringSettings
from streaming.events import DriftEvent, Severity, WindowStats
from streaming.features import FeatureSpec
from streaming.models.reference import ReferenceProfile, build_reference
from streaming.monitoring.episodes import Episodes
from streaming.monitoring.monitors import Detection, DetectorMonitor, WindowTestMonitor
from streaming.monitoring.severity import rate_severity, shift_severity

_SCORE = "__score__"


@dataclass(frozen=True)
class Alarm:
    """A detection that opened an episode, with the evidence for the drift event."""

    detection: Detection
    position: int  # where the alarm fired (offset or row)
    window_start: int  # first position of the changed window
    before: WindowStats
    after: WindowStats
    severity: Severity
    #: Events its monitor had seen when it fired, the firing one included: scored events for
    #: the feature and prediction signals, outcomes (labelled predictions) for label and error.
    seen: int = 0

    @property
    def signal(self) -> str:
        return self.detection.signal

    def to_event(
        self, model_name: str, model_version: str, partition: int | None = None, row: bool = False
    ) -> DriftEvent:
        """The DriftEvent; the same alarm always gets the same ``event_id``."""
        d = self.detection
        identity = "|".join(
            str(part)
            for part in (model_name, model_version, d.signal, d.detector, d.feature, partition, self.position)
        )
        event_id = str(uuid.UUID(bytes=hashlib.sha256(identity.encode()).digest()[:16], version=5))
        p_value = d.p_value if d.p_value is None or math.isfinite(d.p_value) else None
        statistic = d.statistic if d.statistic is None or math.isfinite(d.statistic) else None
        return DriftEvent(
            event_id=event_id,
            model_name=model_name,
            model_version=model_version,
            signal=d.signal,  # type: ignore[arg-type]
            detector=d.detector,
            feature=d.feature,
            partition=partition,
            offset_start=None if row else self.window_start,
            offset_end=None if row else self.position,
            row=self.position if row else None,
            before=self.before,
            after=self.after,
            statistic=statistic,
            p_value=p_value,
            severity=self.severity,
            detected_at=datetime.now(UTC),
        )


class _Recent:
    """The latest ``capacity`` rows of a matrix, oldest first."""

    def __init__(self, capacity: int, width: int) -> None:
        self._rows = np.empty((0, width))
        self.capacity = capacity

    def push(self, rows: np.ndarray) -> None:
        if len(rows) >= self.capacity:
            self._rows = rows[-self.capacity :].copy()
        else:
            self._rows = np.concatenate([self._rows, rows])[-self.capacity :]

    def rows(self) -> np.ndarray:
        return self._rows


class MonitorSuite:
    """The monitors of one partition of one model version.

    Parameters
    ----------
    settings
        Detector choice and parameters, window, warm-up, cooldown.
    spec
        The stream's feature spec.
    reference
        The model's reference profile; ``None`` takes the first ``reference_rows`` scored
        events as the reference (feature and prediction monitors start after them).
    """

    def __init__(
        self, settings: MonitoringSettings, spec: FeatureSpec, reference: ReferenceProfile | None
    ) -> None:
        self.settings = settings
        self.spec = spec
        self.episodes = Episodes(warmup=settings.warmup, cooldown=settings.cooldown)
        self.scored = 0  # events seen by the feature/prediction monitors
        self.labelled = 0  # outcomes (labelled predictions) seen by the label/error monitors
        self.position = -1  # latest position observed
        params = settings.detector_params
        self.label_monitor = DetectorMonitor("label", settings.label_detector, params.get("label", {}))
        self.error_monitor = DetectorMonitor("error", settings.error_detector, params.get("error", {}))
        width = len(spec.numeric) + 1
        self._recent_inputs = _Recent(settings.window, width)  # numeric features + score
        self._recent_positions = _Recent(settings.window, 1)
        self._recent_outcomes = _Recent(settings.window, 2)  # label, error input
        self._pending_reference: list[tuple[np.ndarray, list[list[str]], np.ndarray]] = []
        self.reference: ReferenceProfile | None = None
        self._reference_is_the_models = reference is not None
        self.feature_monitors: list[DetectorMonitor] = []
        self.prediction_monitor: DetectorMonitor | None = None
        self.window_monitors: list[WindowTestMonitor] = []
        if reference is not None:
            self._start_input_monitors(reference)

    # -- snapshots ----------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        # A model's reference is in its signed manifest already: snapshots leave it out.
        state = dict(self.__dict__)
        if self._reference_is_the_models:
            state["reference"] = None
        return state

    def attach_reference(self, reference: ReferenceProfile | None) -> None:
        """After unpickling: give the suite its model's reference back (no-op for a live one)."""
        if not self._reference_is_the_models:
            return
        if reference is None:
            raise ValueError("this suite was built on the model's reference; pass it back")
        self.reference = reference
        features, predictions = self.window_monitors
        features.attach_reference({name: reference.numeric[name] for name in self.spec.numeric})
        predictions.attach_reference({_SCORE: reference.scores})

    # -- scored events -----------------------------------------------------------------

    def observe_scored(
        self,
        numeric: np.ndarray,
        categorical: Sequence[Sequence[str]],
        scores: np.ndarray,
        positions: np.ndarray,
    ) -> list[Alarm]:
        """Feed scored events: numeric features (n×d, spec order), category columns, scores."""
        n = len(scores)
        if n == 0:
            return []
        self.position = int(positions[-1])
        if self.reference is None:
            self._collect_reference(numeric, categorical, scores)
            return []
        reference = self.reference
        detections: list[Detection] = []
        for j, monitor in enumerate(self.feature_monitors):
            detections += monitor.update_many(reference.pit(self.spec.numeric[j], numeric[:, j]))
        assert self.prediction_monitor is not None
        detections += self.prediction_monitor.update_many(reference.pit(_SCORE, scores))
        features, predictions = self.window_monitors
        detections += features.update_many(numeric, categorical)
        detections += predictions.update_many(scores[:, None])
        first = self.scored
        self.scored += n
        inputs = np.column_stack([numeric, scores])
        alarms = []
        if detections:
            # Evidence for an alarm: the window up to and including the detecting row.
            known = len(self._recent_inputs.rows())
            history = np.concatenate([self._recent_inputs.rows(), inputs])
            history_positions = np.concatenate(
                [self._recent_positions.rows()[:, 0], positions.astype(np.float64)]
            )
            for detection in sorted(detections, key=lambda d: d.index):
                if self.episodes.fire(detection.signal, first + detection.index):
                    upto = known + detection.index + 1
                    alarm = self._input_alarm(detection, history[:upto], history_positions[:upto])
                    alarms.append(dataclasses.replace(alarm, seen=first + detection.index + 1))
        self._recent_inputs.push(inputs)
        self._recent_positions.push(positions.astype(np.float64)[:, None])
        return alarms

    # -- labels ------------------------------------------------------------------------

    def observe_outcomes(
        self,
        scores: np.ndarray,
        decisions: np.ndarray,
        labels: np.ndarray,
        positions: Sequence[int] | None = None,
    ) -> list[Alarm]:
        """Feed outcomes, labelled predictions (the score, the 0/1 decision, the 0/1 label),
        to the label and error monitors.

        ``positions`` say where in the stream each outcome arrived (default: the latest
        scored position); an alarm fires at the arrival of the outcome that set it off.
        """
        if not len(labels):
            return []
        y = np.asarray(labels, dtype=np.float64)
        if self.settings.error_input == "brier":
            loss = (np.asarray(scores, dtype=np.float64) - y) ** 2
        else:
            loss = (np.asarray(decisions, dtype=bool) != y.astype(bool)).astype(np.float64)
        detections = self.label_monitor.update_many(y) + self.error_monitor.update_many(loss)
        first = self.labelled
        self.labelled += len(y)
        outcomes = np.column_stack([y, loss])
        alarms = []
        for detection in sorted(detections, key=lambda d: d.index):
            if self.episodes.fire(detection.signal, first + detection.index):
                recent = _Recent(self.settings.window, 2)
                recent.push(np.concatenate([self._recent_outcomes.rows(), outcomes[: detection.index + 1]]))
                at = positions[detection.index] if positions is not None else self.position
                alarm = self._outcome_alarm(detection, recent.rows(), int(at))
                alarms.append(dataclasses.replace(alarm, seen=first + detection.index + 1))
        self._recent_outcomes.push(outcomes)
        return alarms

    # -- internals ---------------------------------------------------------------------

    def _start_input_monitors(self, reference: ReferenceProfile) -> None:
        self.reference = reference
        params = self.settings.detector_params
        feature_params = dict(params.get("feature", {}))
        if "delta" in feature_params and self.spec.numeric:
            # The features share one false-alarm budget (Bonferroni).
            feature_params["delta"] = feature_params["delta"] / len(self.spec.numeric)
        self.feature_monitors = [
            DetectorMonitor("feature", self.settings.feature_detector, feature_params, feature=name)
            for name in self.spec.numeric
        ]
        self.prediction_monitor = DetectorMonitor(
            "prediction", self.settings.prediction_detector, params.get("prediction", {})
        )
        self.window_monitors = [
            WindowTestMonitor(
                "feature",
                {name: reference.numeric[name] for name in self.spec.numeric},
                {name: reference.categorical.get(name, {}) for name in self.spec.categorical},
                self.settings.window,
                self.settings.window_alpha,
            ),
            WindowTestMonitor(
                "prediction", {_SCORE: reference.scores}, {}, self.settings.window, self.settings.window_alpha
            ),
        ]

    def _collect_reference(
        self, numeric: np.ndarray, categorical: Sequence[Sequence[str]], scores: np.ndarray
    ) -> None:
        self._pending_reference.append((numeric, [list(c) for c in categorical], scores))
        if sum(len(s) for _, _, s in self._pending_reference) < self.settings.reference_rows:
            return
        import pandas as pd  # only when a model carries no reference

        matrix = np.concatenate([m for m, _, _ in self._pending_reference])
        columns: dict[str, Any] = {name: matrix[:, j] for j, name in enumerate(self.spec.numeric)}
        for j, name in enumerate(self.spec.categorical):
            columns[name] = [v for _, c, _ in self._pending_reference for v in c[j]]
        all_scores = np.concatenate([s for _, _, s in self._pending_reference])
        frame = pd.DataFrame(columns)
        self._pending_reference = []
        # No labels yet: the label/error monitors need no reference.
        self._start_input_monitors(build_reference(frame, self.spec, all_scores, np.zeros(len(frame))))

    def _input_alarm(self, detection: Detection, history: np.ndarray, positions: np.ndarray) -> Alarm:
        assert self.reference is not None
        back = min(len(history), detection.window_rows or len(history), self.settings.window)
        window = history[-back:]
        if detection.signal == "prediction":
            before = _stats(np.asarray(self.reference.scores))
            after = _stats(window[:, -1])
        elif detection.feature in self.spec.numeric:
            j = self.spec.numeric.index(detection.feature)
            before = _stats(np.asarray(self.reference.numeric[detection.feature]))
            after = _stats(window[:, j])
        else:  # a categorical feature: counts only
            before = WindowStats(count=self.reference.rows)
            after = WindowStats(count=back)
        return Alarm(
            detection,
            int(positions[-1]),
            int(positions[-back]),
            before,
            after,
            shift_severity(before, after, detection.effect),
        )

    def _outcome_alarm(self, detection: Detection, recent: np.ndarray, position: int) -> Alarm:
        column = 0 if detection.signal == "label" else 1
        reference = self.reference
        if reference is not None and reference.rows and column == 0:
            before_mean = reference.positive_rate
        elif reference is not None and reference.rows:
            before_mean = reference.brier if self.settings.error_input == "brier" else reference.error_rate
        else:
            before_mean = float(recent[: len(recent) // 2, column].mean()) if len(recent) > 1 else 0.0
        before = WindowStats(
            count=reference.rows if reference is not None else 0,
            mean=before_mean,
            std=math.sqrt(max(before_mean * (1 - before_mean), 0.0)),
        )
        back = min(len(recent), detection.window_rows or len(recent))
        after = _stats(recent[-back:, column])
        return Alarm(detection, position, position, before, after, rate_severity(before, after))


def _stats(values: np.ndarray) -> WindowStats:
    if len(values) == 0:
        return WindowStats(count=0)
    return WindowStats(count=len(values), mean=float(values.mean()), std=float(values.std()))
