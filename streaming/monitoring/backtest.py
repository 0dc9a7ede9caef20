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

import numpy as np
import pandas as pd

from streaming.config import MonitoringSettings
from streaming.errors import BacktestError
from streaming.events import DriftEvent
from streaming.features import FeatureSpec
from streaming.models.training import (
    TrainedModel,
    TrainingError,
    TrainingParams,
    numeric_column,
    shown,
    train_classifier,
)
from streaming.monitoring.evidence import BinLayout, Summarizer
from streaming.monitoring.model_monitor import ModelMonitor, OutcomeChunk
from streaming.monitoring.suspect_columns import suspect_columns


@dataclass
class Outcome:
    """Prequential results of one pass over the stream."""

    rows: int = 0
    correct: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    retrains: list[int] = field(default_factory=list)  # rows at which a new model took over

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
    spec: FeatureSpec | None = None,
    params: TrainingParams | None = None,
    on_batch: Callable[[int], None] | None = None,
    partitions: int = 1,
    model: TrainedModel | None = None,
) -> BacktestResult:
    """Train on the first ``train_rows`` rows (unless ``model`` is given), stream the rest
    through the monitor, the rows split round-robin over ``partitions`` partitions."""
    reveal = reveal_rows(frame, label_delay, label_delay_s, time_column)
    spec = spec or infer_spec(frame, label_column, time_column=time_column)
    frame = prepare(frame, label_column, spec)
    if len(frame) <= train_rows:
        raise BacktestError(
            f"the input has {len(frame)} rows; more than --train-rows={train_rows} are needed"
        )
    params = params or TrainingParams(min_rows=min(200, train_rows))
    if partitions < 1:
        raise BacktestError(f"--partitions must be at least 1, not {partitions}")
    if model is None:
        model = initial_model(frame, label_column, spec, train_rows, params)
    events, scores, static = _stream(
        frame,
        label_column,
        spec,
        model,
        settings,
        train_rows,
        reveal,
        batch_size,
        on_batch,
        partitions=partitions,
    )
    result = BacktestResult(
        spec, events, scores, frame[label_column].to_numpy()[train_rows:], train_rows, static, model=model
    )
    if retrain:
        _, _, result.retrained = _stream(
            frame,
            label_column,
            spec,
            model,
            settings,
            train_rows,
            reveal,
            batch_size,
            None,
            retrain_after=retrain_after if retrain_after is not None else settings.window,
            params=params,
            partitions=partitions,
        )
    return result


def initial_model(
    frame: pd.DataFrame, label_column: str, spec: FeatureSpec, train_rows: int, params: TrainingParams
) -> TrainedModel:
    """The model trained on the first ``train_rows`` rows of a prepared frame."""
    try:
        model = train_classifier(frame.iloc[:train_rows], spec, label_column, params)
    except TrainingError as exc:
        raise BacktestError(f"the first {train_rows} rows cannot train a model: {exc}") from exc
    if model.reference is None:
        raise BacktestError(f"the first {train_rows} rows leave no holdout for the model's reference")
    return model


def _stream(
    frame: pd.DataFrame,
    label_column: str,
    spec: FeatureSpec,
    model: TrainedModel,
    settings: MonitoringSettings,
    start: int,
    reveal: np.ndarray,
    batch_size: int,
    on_batch: Callable[[int], None] | None,
    retrain_after: int | None = None,
    params: TrainingParams | None = None,
    partitions: int = 1,
) -> tuple[list[DriftEvent], np.ndarray, Outcome]:
    """Stream rows ``start..`` through one :class:`ModelMonitor`, as `driftloop score` and
    `driftloop monitor` would: row ``i`` belongs to partition ``i % partitions`` (its offset
    there ``i // partitions``, its event time ``i``), each micro-batch becomes one evidence
    record per partition, each revealed label an outcome at its reveal row."""
    numeric_all = (
        frame[list(spec.numeric)].to_numpy(dtype=np.float64) if spec.numeric else np.empty((len(frame), 0))
    )
    categorical_all = [frame[name].astype(str).tolist() for name in spec.categorical]
    labels_all = frame[label_column].to_numpy()
    row_partition = np.arange(len(frame)) % partitions
    monitor = ModelMonitor(settings, "backtest", partitions=partitions)
    threshold = 0.5
    version = "v1"
    summarizer = _start(monitor, model, spec, settings, version)
    events: list[DriftEvent] = []
    static_scores = np.empty(len(frame) - start)
    outcome = Outcome()
    pending_retrain: int | None = None
    drift_since = start
    revealed = start  # labels of rows < revealed were handed to the monitor
    row_scores = np.zeros(len(frame))  # the score each row got from the model serving it
    row_versions = np.zeros(len(frame), dtype=np.int64)  # which model (1, 2, ...) scored it
    row = start
    while row < len(frame):
        end = min(row + batch_size, len(frame))
        if pending_retrain is not None:
            end = min(end, max(pending_retrain, row + 1))
        rows = slice(row, end)
        scores = model.predict_proba(model.encoder.frame_matrix(frame.iloc[rows]))
        static_scores[row - start : end - start] = scores
        decisions = scores >= threshold
        outcome.count(decisions, labels_all[rows])
        positions = np.arange(row, end)
        row_scores[rows] = scores
        row_versions[rows] = len(outcome.retrains) + 1
        for evidence in summarizer.summarize(
            partitions=row_partition[rows],
            offsets=positions // partitions,
            timestamps=positions,
            numeric=numeric_all[rows],
            categorical=[column[rows] for column in categorical_all],
            scores=scores,
            decisions=decisions,
        ):
            monitor.add_evidence(evidence)
        # Labels revealed up to row end-1 are known now (reveal never decreases).
        reveal_to = max(start, int(np.searchsorted(reveal, end - 1, side="right")))
        if reveal_to > revealed:
            known = np.arange(revealed, reveal_to)
            for p in range(partitions):
                mine = known[row_partition[known] == p]
                if len(mine):
                    monitor.add_outcomes(
                        OutcomeChunk(
                            partition=p,
                            label_times_ms=reveal[mine],
                            scores=row_scores[mine],
                            decisions=row_scores[mine] >= threshold,
                            labels=labels_all[mine],
                            model_version=f"v{row_versions[mine[0]]}" if row_versions[mine[0]] else version,
                        )
                    )
            revealed = reveal_to
        alarms = monitor.advance(flush=end == len(frame))
        for alarm in sorted(alarms, key=lambda a: a.event_time_ms):
            events.append(alarm.to_event("backtest", row=True))
            if retrain_after is not None and pending_retrain is None:
                pending_retrain = alarm.event_time_ms + retrain_after
                back = alarm.detection.window_rows or settings.window
                drift_since = max(start, alarm.event_time_ms - back)
        if on_batch is not None:
            on_batch(end - row)
        row = end
        if pending_retrain is not None and row >= pending_retrain:
            # The new concept only: labelled rows since the drift began (at most train_rows).
            assert params is not None
            labelled = frame.iloc[max(drift_since, revealed - start) : revealed]
            retrained = _retrained(labelled, spec, label_column, params)
            if retrained is None:
                pending_retrain = row + (retrain_after or 0)  # e.g. one class only yet: wait
                continue
            model = retrained
            version = f"v{len(outcome.retrains) + 2}"
            outcome.retrains.append(row)
            summarizer = _start(monitor, model, spec, settings, version)
            pending_retrain = None
    return events, static_scores, outcome


def _start(
    monitor: ModelMonitor, model: TrainedModel, spec: FeatureSpec, settings: MonitoringSettings, version: str
) -> Summarizer:
    """Point the monitor at a new champion; the summarizer the scorer would run for it."""
    if model.reference is None:
        raise BacktestError("a retrained model has no reference (too few rows for a holdout)")
    layout = BinLayout.of(model.reference, spec, settings.evidence_bins)
    monitor.start(version, layout)
    return Summarizer(layout, "backtest", version, "backtest", "backtest", settings.evidence_max_rows)


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


def _retrained(
    labelled: pd.DataFrame, spec: FeatureSpec, label_column: str, params: TrainingParams
) -> TrainedModel | None:
    """A model trained on ``labelled``, or None when it cannot be yet (one class only)."""
    try:
        return train_classifier(labelled, spec, label_column, params)
    except TrainingError:
        return None
