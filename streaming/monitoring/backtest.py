"""`driftloop backtest`: the drift monitor over a table, without Kafka.

The first ``train_rows`` rows train the initial model (with the same training code as
`driftloop train` and the retraining flow); the rest are streamed in order, in micro-batches,
as `driftloop score` and `driftloop monitor` process them: the rows are split round-robin
over ``partitions`` simulated partitions, each micro-batch becomes one evidence record per
partition (:class:`~.evidence.Summarizer`), and one :class:`~.model_monitor.ModelMonitor`
merges them. Each row's label is revealed
``label_delay`` rows after the row itself or, with ``label_delay_s``, at the first row whose
``time_column`` is that many seconds past the row's own (event time: the input in time
order). Every alarm becomes a DriftEvent whose ``row`` is the 0-based row of the input at
which it fired.

With ``retrain=True`` the loop is closed offline: ``retrain_after`` rows after an alarm, a new
model is trained on the labelled rows since the drift began (the alarm's window start; at
most ``train_rows``) and takes over with fresh detectors. Prequential accuracy and
misclassification cost are reported with and without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from streaming.config import DecisionSettings, MonitoringSettings, RetrainingSettings
from streaming.errors import BacktestError
from streaming.events import DriftEvent
from streaming.features import FeatureSpec
from streaming.models.candidates import select_candidate
from streaming.models.training import (
    TrainedModel,
    TrainingError,
    TrainingParams,
    numeric_column,
    shown,
    train_classifier,
)
from streaming.models.validation import DEGRADED_SIGNALS, validate_candidate
from streaming.monitoring.evidence import BinLayout, Summarizer
from streaming.monitoring.model_monitor import ROW_MS, ModelMonitor, OutcomeChunk
from streaming.monitoring.performance import PerformanceFigures, PerformanceModel
from streaming.monitoring.suspect_columns import suspect_columns


@dataclass
class Outcome:
    """Prequential results of one pass over the stream: every streamed row's decision (by
    the model serving it then, at its threshold) against its label."""

    rows: int = 0
    correct: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    retrains: list[int] = field(default_factory=list)  # rows at which a new model took over
    #: One entry per retraining attempt: row, window rows, the candidates tried, threshold, verdict.
    attempts: list[dict[str, Any]] = field(default_factory=list)
    scores: np.ndarray = field(default_factory=lambda: np.empty(0))  # each streamed row's served score
    decisions: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=bool))  # and its decision
    #: The online performance estimate of the last model serving: (row its window ended at, figures).
    estimates: list[tuple[int, PerformanceFigures]] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.correct / self.rows if self.rows else float("nan")

    def cost(self, fp_cost: float, fn_cost: float) -> float:
        return self.false_positives * fp_cost + self.false_negatives * fn_cost

    def count(self, decisions: np.ndarray, labels: np.ndarray) -> None:
        """One batch's decisions (bool) against its labels (0/1)."""
        self.rows += len(decisions)
        self.correct += int((decisions == labels.astype(bool)).sum())
        self.false_positives += int((decisions & (labels == 0)).sum())
        self.false_negatives += int((~decisions & (labels == 1)).sum())

    def caught_at_budget(self, labels: np.ndarray, budget: float, chunk: int = 1000) -> float:
        """Share of the fraud among the top ``budget`` of the served scores, ranked within
        each run of ``chunk`` rows (a review team with a fixed daily capacity)."""
        return caught_at_budget(self.scores, labels, budget, chunk)


def caught_at_budget(scores: np.ndarray, labels: np.ndarray, budget: float, chunk: int = 1000) -> float:
    """Share of the fraud among the top ``budget`` of ``scores``, ranked within each run of
    ``chunk`` rows.

    >>> caught_at_budget(np.array([0.9, 0.1, 0.8, 0.2]), np.array([1, 1, 0, 0]), 0.5, chunk=2)
    0.5
    """
    labels = np.asarray(labels)
    frauds = int(labels.sum())
    if not frauds:
        return float("nan")
    caught = 0
    for begin in range(0, len(scores), chunk):
        part, truth = scores[begin : begin + chunk], labels[begin : begin + chunk]
        top = np.argsort(-part, kind="stable")[: max(1, round(len(part) * budget))]
        caught += int(truth[top].sum())
    return caught / frauds


@dataclass
class BacktestResult:
    """What a backtest found: drift events, the static model's scores, and the outcomes."""

    spec: FeatureSpec
    events: list[DriftEvent]
    scores: np.ndarray  # the initial (static) model's score for every streamed row
    labels: np.ndarray
    start_row: int
    static: Outcome
    retrained: Outcome | None = None
    model: TrainedModel | None = None  # the initial model


def infer_spec(
    frame: pd.DataFrame,
    label_column: str,
    ignore: tuple[str, ...] = (),
    allow: tuple[str, ...] = (),
    time_column: str | None = "event_time",
) -> FeatureSpec:
    """Numeric dtypes become numeric features, everything else categorical; ``time_column``
    and ``ignore`` are left out. A column that looks like an identifier or a timestamp (see
    :mod:`.suspect_columns`) is refused unless ``allow`` names it."""
    if label_column not in frame.columns:
        raise BacktestError(
            f"label column {label_column!r} not found; the columns are: {', '.join(map(str, frame.columns))}"
        )
    unknown = [name for name in (*ignore, *allow) if name not in frame.columns]
    if unknown:
        raise BacktestError(
            f"--ignore/--allow-column name(s) {', '.join(map(repr, unknown))} not in the input; "
            f"the columns are: {', '.join(map(str, frame.columns))}"
        )
    left_out = {label_column, *ignore, *([time_column] if time_column is not None else [])}
    candidates = [str(name) for name in frame.columns if name not in left_out]
    suspects = suspect_columns(frame, [name for name in candidates if name not in allow])
    if suspects:
        named = ", ".join(f"{name!r} ({why})" for name, why in suspects.items())
        flags = " ".join(f"--ignore {name}" for name in suspects)
        raise BacktestError(
            f"column(s) that look like identifiers or timestamps cannot be features: {named}. "
            f"Leave them out with {flags}, or keep one as a feature with --allow-column NAME"
        )
    kinds = {}
    for name in candidates:
        numeric = pd.api.types.is_numeric_dtype(frame[name]) and not pd.api.types.is_bool_dtype(frame[name])
        kinds[name] = "numeric" if numeric else "categorical"
    if not kinds:
        raise BacktestError("the input has no feature columns besides the label")
    return FeatureSpec.from_mapping(kinds)


def prepare(frame: pd.DataFrame, label_column: str, spec: FeatureSpec) -> pd.DataFrame:
    """Checked copy: 0/1 labels, finite numbers, categories as strings; errors name row and column."""
    frame = frame.reset_index(drop=True).copy()
    labels = frame[label_column]
    if labels.dtype == bool:
        labels = labels.astype(int)
    numeric_labels = pd.to_numeric(labels, errors="coerce")
    bad = numeric_labels.isna() | ~numeric_labels.isin([0, 1])
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise BacktestError(
            f"label column {label_column!r} must hold 0/1; row {row} has {shown(frame[label_column].iloc[row])}"
        )
    frame[label_column] = numeric_labels.astype(int)
    for name in spec.numeric:
        column, invalid = numeric_column(frame, name)
        if len(invalid):
            row = int(invalid[0])
            raise BacktestError(
                f"numeric column {name!r}: row {row} has {shown(frame[name].iloc[row])}, not a finite number"
            )
        frame[name] = column.astype(np.float64)
    for name in spec.categorical:
        frame[name] = frame[name].astype(str)
    return frame


def run_backtest(
    frame: pd.DataFrame,
    label_column: str,
    settings: MonitoringSettings,
    *,
    train_rows: int = 5000,
    label_delay: int = 0,
    label_delay_s: float | None = None,
    time_column: str = "event_time",
    batch_size: int = 500,
    retrain: bool = False,
    retrain_after: int | None = None,
    retrain_rule: RetrainRule = "selection",
    spec: FeatureSpec | None = None,
    params: TrainingParams | None = None,
    decision: DecisionSettings | None = None,
    retraining: RetrainingSettings | None = None,
    on_batch: Callable[[int], None] | None = None,
    partitions: int = 1,
    model: TrainedModel | None = None,
) -> BacktestResult:
    """Train on the first ``train_rows`` rows (unless ``model`` is given), stream the rest
    through the monitor, the rows split round-robin over ``partitions`` partitions.

    With ``retrain``, a second pass closes the loop: ``retrain_after`` rows after an alarm a
    new model takes over, chosen by ``retrain_rule``: ``selection`` runs the retraining flow's
    own candidate selection (:mod:`streaming.models.candidates`) and validation on the labelled
    rows known by then; ``since_drift`` is the rule of earlier versions (the labelled rows since
    the alarm's window start, at most ``train_rows``, a fixed 0.5 threshold), kept as a baseline.
    """
    reveal = reveal_rows(frame, label_delay, label_delay_s, time_column)
    spec = spec or infer_spec(frame, label_column, time_column=time_column)
    frame = prepare(frame, label_column, spec)
    if len(frame) <= train_rows:
        raise BacktestError(
            f"the input has {len(frame)} rows; more than --train-rows={train_rows} are needed"
        )
    params = params or TrainingParams(min_rows=min(200, train_rows))
    decision = decision or DecisionSettings()
    if retrain_rule == "since_drift":
        decision = DecisionSettings(
            policy="fixed", threshold=0.5, fp_cost=decision.fp_cost, fn_cost=decision.fn_cost
        )
    if partitions < 1:
        raise BacktestError(f"--partitions must be at least 1, not {partitions}")
    if model is None:
        model = initial_model(frame, label_column, spec, train_rows, params, decision)
    stream = _Stream(
        frame, label_column, spec, settings, train_rows, reveal, batch_size, partitions, decision.alert_budget
    )
    events, static = stream.run(model, on_batch)
    result = BacktestResult(
        spec,
        events,
        static.scores,
        frame[label_column].to_numpy()[train_rows:],
        train_rows,
        static,
        model=model,
    )
    if retrain:
        retrainer = _Retrainer(
            retrain_rule,
            params,
            decision,
            retraining or RetrainingSettings(min_rows=min(1000, train_rows)),
            retrain_after if retrain_after is not None else settings.window,
            train_rows,
        )
        _, result.retrained = stream.run(model, None, retrainer)
    return result


RetrainRule = Literal["selection", "since_drift"]


def initial_model(
    frame: pd.DataFrame,
    label_column: str,
    spec: FeatureSpec,
    train_rows: int,
    params: TrainingParams,
    decision: DecisionSettings | None = None,
) -> TrainedModel:
    """The model trained on the first ``train_rows`` rows of a prepared frame."""
    try:
        model = train_classifier(frame.iloc[:train_rows], spec, label_column, params, decision)
    except TrainingError as exc:
        raise BacktestError(f"the first {train_rows} rows cannot train a model: {exc}") from exc
    if model.reference is None:
        raise BacktestError(f"the first {train_rows} rows leave no holdout for the model's reference")
    return model


@dataclass
class _Stream:
    """One pass over rows ``start..``, as `driftloop score` and `driftloop monitor` would run
    it: row ``i`` belongs to partition ``i % partitions`` (its offset there ``i //
    partitions``, its event time ``i`` seconds), each micro-batch becomes one evidence record per
    partition, each revealed label an outcome at its reveal row."""

    frame: pd.DataFrame
    label_column: str
    spec: FeatureSpec
    settings: MonitoringSettings
    start: int
    reveal: np.ndarray
    batch_size: int
    partitions: int
    alert_budget: float = 0.01

    def __post_init__(self) -> None:
        spec, frame = self.spec, self.frame
        self.numeric = (
            frame[list(spec.numeric)].to_numpy(dtype=np.float64)
            if spec.numeric
            else np.empty((len(frame), 0))
        )
        self.categorical = [frame[name].astype(str).tolist() for name in spec.categorical]
        self.labels = frame[self.label_column].to_numpy()
        self.row_partition = np.arange(len(frame)) % self.partitions

    def run(
        self, model: TrainedModel, on_batch: Callable[[int], None] | None, retrainer: _Retrainer | None = None
    ) -> tuple[list[DriftEvent], Outcome]:
        monitor = ModelMonitor(self.settings, "backtest", partitions=self.partitions)
        served = _Served(model, "v1", self._start(monitor, model, "v1"))
        events: list[DriftEvent] = []
        streamed = len(self.frame) - self.start
        outcome = Outcome(scores=np.empty(streamed), decisions=np.zeros(streamed, dtype=bool))
        row_scores = np.zeros(len(self.frame))  # the score each row got from the model serving it
        row_thresholds = np.zeros(len(self.frame))
        row_versions = np.zeros(len(self.frame), dtype=np.int64)  # which model (1, 2, ...) scored it
        revealed = row = self.start  # labels of rows < revealed were handed to the monitor
        while row < len(self.frame):
            end = min(row + self.batch_size, len(self.frame))
            if retrainer is not None and retrainer.due is not None:
                end = min(end, max(retrainer.due, row + 1))
            rows = slice(row, end)
            scores = served.model.predict_proba(served.model.encoder.frame_matrix(self.frame.iloc[rows]))
            outcome.scores[row - self.start : end - self.start] = scores
            decisions = scores >= served.model.threshold
            outcome.decisions[row - self.start : end - self.start] = decisions
            outcome.count(decisions, self.labels[rows])
            row_scores[rows], row_thresholds[rows] = scores, served.model.threshold
            row_versions[rows] = len(outcome.retrains) + 1
            self._evidence(monitor, served.summarizer, row, end, scores, decisions)
            reveal_to = max(self.start, int(np.searchsorted(self.reveal, end - 1, side="right")))
            if reveal_to > revealed:
                self._outcomes(
                    monitor, np.arange(revealed, reveal_to), row_scores, row_thresholds, row_versions
                )
                revealed = reveal_to
            for alarm in sorted(monitor.advance(flush=end == len(self.frame)), key=lambda a: a.event_time_ms):
                events.append(alarm.to_event("backtest", row=True))
                if retrainer is not None and alarm.status != "resolved":
                    start = alarm.window_start_ms // ROW_MS if alarm.window_start_ms is not None else None
                    retrainer.alarm(
                        alarm.event_time_ms // ROW_MS, start, alarm.detection.window_rows, alarm.signal
                    )
            if on_batch is not None:
                on_batch(end - row)
            row = end
            if retrainer is not None and retrainer.due is not None and row >= retrainer.due:
                new = retrainer.retrain(self.frame, self.spec, self.label_column, revealed, served.model, row)
                if new is not None:
                    outcome.retrains.append(row)
                    version = f"v{len(outcome.retrains) + 1}"
                    served = _Served(new, version, self._start(monitor, new, version))
        if retrainer is not None:
            outcome.attempts = retrainer.attempts
        if monitor.champion is not None:  # the last champion's estimates, at the row each window ended
            outcome.estimates = [
                (time_ms // ROW_MS, figures) for time_ms, figures in monitor.champion.estimates
            ]
        return events, outcome

    def _evidence(
        self,
        monitor: ModelMonitor,
        summarizer: Summarizer,
        row: int,
        end: int,
        scores: np.ndarray,
        decisions: np.ndarray,
    ) -> None:
        positions = np.arange(row, end)
        rows = slice(row, end)
        for evidence in summarizer.summarize(
            partitions=self.row_partition[rows],
            offsets=positions // self.partitions,
            timestamps=positions * ROW_MS,
            numeric=self.numeric[rows],
            categorical=[column[rows] for column in self.categorical],
            scores=scores,
            decisions=decisions,
        ):
            monitor.add_evidence(evidence)

    def _outcomes(
        self,
        monitor: ModelMonitor,
        known: np.ndarray,
        row_scores: np.ndarray,
        row_thresholds: np.ndarray,
        row_versions: np.ndarray,
    ) -> None:
        """Labels revealed by now (reveal never decreases), per partition, as outcomes."""
        for p in range(self.partitions):
            mine = known[self.row_partition[known] == p]
            if len(mine):
                monitor.add_outcomes(
                    OutcomeChunk(
                        partition=p,
                        label_times_ms=self.reveal[mine] * ROW_MS,
                        scores=row_scores[mine],
                        decisions=row_scores[mine] >= row_thresholds[mine],
                        labels=self.labels[mine],
                        model_version=f"v{row_versions[mine[0]]}",
                        event_times_ms=mine * ROW_MS,
                    )
                )

    def _start(self, monitor: ModelMonitor, model: TrainedModel, version: str) -> Summarizer:
        """Point the monitor at a new champion; the summarizer the scorer would run for it."""
        if model.reference is None:
            raise BacktestError("a retrained model has no reference (too few rows for a holdout)")
        layout = BinLayout.of(model.reference, self.spec, self.settings.evidence_bins)
        scores = np.asarray(model.reference.scores)
        performance = (
            PerformanceModel.of(model.calibration, model.threshold, scores, self.alert_budget)
            if model.calibration is not None
            else None
        )
        monitor.start(version, layout, performance)
        return Summarizer(
            layout,
            "backtest",
            version,
            "backtest",
            "backtest",
            self.settings.evidence_max_rows,
            calibration=model.calibration,
            budget_threshold=performance.budget_score if performance is not None else None,
        )


@dataclass
class _Served:
    model: TrainedModel
    version: str
    summarizer: Summarizer


@dataclass
class _Retrainer:
    """When and how the backtest's second pass retrains (see :func:`run_backtest`)."""

    rule: RetrainRule
    params: TrainingParams
    decision: DecisionSettings
    retraining: RetrainingSettings
    after: int  # rows after an alarm
    train_rows: int
    due: int | None = None  # the row at which to retrain
    drift_since: int = 0
    signal: str = ""  # of the alarm that scheduled the retraining
    attempts: list[dict[str, Any]] = field(default_factory=list)

    def alarm(self, at_row: int, window_start: int | None, window_rows: int | None, signal: str = "") -> None:
        if self.due is None:
            self.signal = signal
            self.due = at_row + self.after
            back = window_rows or self.retraining.min_candidate_rows
            self.drift_since = window_start if window_start is not None else max(0, at_row - back)

    def retrain(
        self,
        frame: pd.DataFrame,
        spec: FeatureSpec,
        label: str,
        revealed: int,
        champion: TrainedModel,
        row: int,
    ) -> TrainedModel | None:
        """The new model (None: none yet; the rule tries again ``after`` rows later, or
        rejected: back to waiting for an alarm)."""
        if self.rule == "since_drift":
            labelled = frame.iloc[self.drift_since : revealed].tail(self.train_rows)
            try:
                model = train_classifier(labelled, spec, label, self.params, self.decision)
            except TrainingError as exc:  # e.g. one class only yet: wait
                self.attempts.append(
                    {"row": row, "rule": self.rule, "rows": len(labelled), "waiting": str(exc)}
                )
                self.due = row + self.after
                return None
            self.attempts.append(
                {
                    "row": row,
                    "rule": self.rule,
                    "rows": len(labelled),
                    "threshold": model.threshold,
                    "accepted": True,
                }
            )
            self.due = None
            return model
        labelled = frame.iloc[:revealed].tail(self.retraining.max_rows)
        first = revealed - len(labelled)
        selection = select_candidate(
            labelled,
            spec,
            label,
            self.params,
            self.decision,
            self.retraining,
            drift_start_row=max(0, self.drift_since - first),
            champion_scores=lambda rows: champion.predict_proba(champion.encoder.frame_matrix(rows)),
            time_column=None,
            champion_threshold=champion.threshold,
        )
        verdict = validate_candidate(
            selection, self.retraining, self.decision, champion_degraded=self.signal in DEGRADED_SIGNALS
        )
        winner = selection.winner
        self.attempts.append(
            {
                "row": row,
                "rule": self.rule,
                "rows": len(labelled),
                "winner": selection.winner_name,
                "threshold": winner.threshold if winner is not None else None,
                "accepted": verdict.passed,
                "reasons": verdict.reasons,
                "selection": selection.lineage(),
            }
        )
        self.due = None
        return winner if verdict.passed else None


def reveal_rows(
    frame: pd.DataFrame, label_delay: int, label_delay_s: float | None, time_column: str
) -> np.ndarray:
    """The row at which each row's label is revealed: ``label_delay`` rows later, or with
    ``label_delay_s`` the first row at least that many seconds later in ``time_column``
    (``len(frame)``, never, for the last ones).

    >>> frame = pd.DataFrame({"event_time": pd.to_datetime([0, 60, 120, 180, 240], unit="s")})
    >>> reveal_rows(frame, 2, None, "event_time").tolist()
    [2, 3, 4, 5, 6]
    >>> reveal_rows(frame, 0, 90.0, "event_time").tolist()
    [2, 3, 4, 5, 5]
    """
    rows = np.arange(len(frame))
    if label_delay_s is None:
        return rows + label_delay
    if time_column not in frame.columns:
        raise BacktestError(
            f"a label delay in time needs the event-time column {time_column!r} (--time-column); "
            f"the input has {', '.join(map(str, frame.columns))}"
        )
    try:
        times = pd.to_datetime(frame[time_column], utc=True)
    except (ValueError, TypeError) as exc:
        raise BacktestError(f"column {time_column!r} is not a time: {exc}") from exc
    seconds = (times - times.iloc[0]).dt.total_seconds().to_numpy()
    if np.isnan(seconds).any() or (np.diff(seconds) < 0).any():
        raise BacktestError(
            f"a label delay in time needs the rows in {time_column!r} order, without gaps; sort the input first"
        )
    return np.searchsorted(seconds, seconds + label_delay_s, side="left")
