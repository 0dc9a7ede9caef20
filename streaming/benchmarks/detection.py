"""`driftloop bench detection`: how soon, how often and how falsely drift is detected.

Streams come from River's synthetic generators, ``seeds`` seeds per stream type:

- abrupt concept drift: Agrawal (classification function 1 -> 4), SEA (variant 0 -> 3),
  STAGGER (function 0 -> 1, categorical features);
- gradual concept drift over 1,000 rows: Agrawal (1 -> 4), Hyperplane (one plane turning
  into another that labels at least 15% of inputs differently);
- covariate shift only: Agrawal function 1 with older, richer customers after the onset
  (rejection sampling, so P(y | x) is unchanged);
- prior (label) shift only: SEA with positives kept and negatives halved after the onset;
- stationary: each generator without drift.

Each stream has ``train_rows`` rows for the initial model, then ``onset - train_rows``
stationary rows, then the drift (stationary streams have none). Every stream goes through
the backtest path (:func:`streaming.monitoring.backtest.run_backtest`) and through two
baselines measured on the same rows: a static model with ADWIN (River's default delta) on
its 0/1 errors, and per-feature window tests of 1,000 rows against the training rows
(KS for numeric features, chi-square for categorical ones; p < 0.05, no correction).

Reported per stream type and method: detection rate within ``horizon`` rows of the onset,
median delay of those detections, and false alarms per 10,000 rows (alarms before the
onset, or anywhere in a stationary stream). The last line is one JSON object.
"""

from __future__ import annotations

import itertools
import json
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from river import drift
from river.datasets import synth
from scipy import stats

from streaming.benchmarks.per_partition_suites import MonitorSuite
from streaming.config import MonitoringSettings
from streaming.monitoring.backtest import BacktestResult, run_backtest

Row = tuple[dict[Any, Any], Any]


@dataclass(frozen=True)
class StreamType:
    name: str
    kind: str  # "concept", "covariate", "prior" or "stationary"
    build: Callable[[int, int, int], Iterator[Row]]  # (seed, onset, width) -> rows


def _switch(before: Iterator[Row], after: Iterator[Row], onset: int, width: int, seed: int) -> Iterator[Row]:
    """Rows of ``before`` until ``onset``, then increasingly (over ``width`` rows) of ``after``."""
    rng = np.random.default_rng(seed)
    for t in itertools.count():
        share = 0.0 if t < onset else 1.0 if width <= 0 else min(1.0, (t - onset + 1) / width)
        yield next(after) if rng.random() < share else next(before)


def _filtered(
    source: Iterator[Row], keep: Callable[[dict[Any, Any], Any], float], onset: int, seed: int
) -> Iterator[Row]:
    """``source`` as is until ``onset``, then each row kept with probability ``keep(x, y)``."""
    rng = np.random.default_rng(seed)
    for t in itertools.count():
        while True:
            x, y = next(source)
            if t < onset or rng.random() < keep(x, y):
                break
        yield x, y


def _agrawal(function: int, seed: int) -> Iterator[Row]:
    for x, y in synth.Agrawal(classification_function=function, seed=seed):
        x = dict(x)
        for name in ("elevel", "car", "zipcode"):
            x[name] = f"{name}{x[name]}"  # categorical, as in a real table
        yield x, y


def _stagger(function: int, seed: int) -> Iterator[Row]:
    names = {
        "size": ("small", "medium", "large"),
        "color": ("red", "green", "blue"),
        "shape": ("circle", "square", "triangle"),
    }
    for x, y in synth.STAGGER(classification_function=function, seed=seed):
        yield {k: names[k][v] for k, v in x.items()}, y


def _sea(variant: int, seed: int) -> Iterator[Row]:
    return iter(synth.SEA(variant=variant, noise=0.05, seed=seed))


def _hyperplane(seed: int) -> Iterator[Row]:
    return iter(synth.Hyperplane(seed=seed, n_features=6, noise_percentage=0.05))


def _plane(seed: int) -> np.ndarray:
    generator = synth.Hyperplane(seed=seed, n_features=6, noise_percentage=0.05)
    next(iter(generator))  # the weights are drawn on first use
    return np.asarray(generator._weights, dtype=np.float64)


def _distinct_hyperplane(seed: int, min_disagreement: float = 0.15) -> Iterator[Row]:
    """A Hyperplane whose plane labels at least ``min_disagreement`` of inputs unlike seed's.

    Two random planes can nearly coincide (seed 5 and 1005 disagree on ~3% of inputs: the
    model's error goes from 10.3% to 12.4%, which no detector sees at a false-alarm budget of
    0.25 per 10,000 rows), so the next seeds are tried until the planes differ by that much.
    """
    rng = np.random.default_rng(seed)
    x = rng.random((20_000, 6))
    first = _plane(seed)
    for candidate in itertools.count(seed + 1000):
        other = _plane(candidate)
        disagreement = np.mean((x @ first >= first.sum() / 2) != (x @ other >= other.sum() / 2))
        if disagreement >= min_disagreement:
            return _hyperplane(candidate)
    raise AssertionError("unreachable")


STREAM_TYPES: tuple[StreamType, ...] = (
    StreamType(
        "agrawal_abrupt", "concept", lambda s, o, w: _switch(_agrawal(1, s), _agrawal(4, s + 1000), o, 0, s)
    ),
    StreamType("sea_abrupt", "concept", lambda s, o, w: _switch(_sea(0, s), _sea(3, s + 1000), o, 0, s)),
    StreamType(
        "stagger_abrupt", "concept", lambda s, o, w: _switch(_stagger(0, s), _stagger(1, s + 1000), o, 0, s)
    ),
    StreamType(
        "agrawal_gradual", "concept", lambda s, o, w: _switch(_agrawal(1, s), _agrawal(4, s + 1000), o, w, s)
    ),
    StreamType(
        "hyperplane_gradual",
        "concept",
        lambda s, o, w: _switch(_hyperplane(s), _distinct_hyperplane(s), o, w, s),
    ),
    StreamType(
        "agrawal_covariate",
        "covariate",
        lambda s, o, w: _filtered(
            _agrawal(1, s), lambda x, y: 1.0 if x["age"] >= 40 and x["salary"] >= 60_000 else 0.35, o, s
        ),
    ),
    StreamType(
        "sea_prior", "prior", lambda s, o, w: _filtered(_sea(0, s), lambda x, y: 1.0 if y else 0.5, o, s)
    ),
    StreamType(
        "stationary",
        "stationary",
        lambda s, o, w: [_agrawal(1, s), _sea(0, s), _stagger(0, s), _hyperplane(s)][s % 4],
    ),
)


def make_stream(kind: StreamType, seed: int, rows: int, onset: int, width: int = 1000) -> pd.DataFrame:
    """One stream as a table with a ``y`` label column."""
    features, labels = [], []
    for x, y in itertools.islice(kind.build(seed, onset, width), rows):
        features.append(x)
        labels.append(int(y))
    frame = pd.DataFrame(features)
    frame.columns = [f"x{c}" if isinstance(c, int) else str(c) for c in frame.columns]
    frame["y"] = labels
    return frame


@dataclass
class Tally:
    """Detections of one method on one stream type."""

    streams: int = 0
    detected: int = 0
    delays: list[int] = field(default_factory=list)
    false_alarms: int = 0
    watched_rows: int = 0  # rows where any alarm is a false one
    alarms_after_onset: int = 0  # alarms within the horizon after the onset (one drift)

    def add(self, alarms: list[int], onset: int | None, start: int, end: int, horizon: int) -> None:
        self.streams += 1
        quiet_end = onset if onset is not None else end
        self.false_alarms += sum(1 for row in alarms if row < quiet_end)
        self.watched_rows += quiet_end - start
        if onset is not None:
            hits = [row - onset for row in alarms if onset <= row < onset + horizon]
            self.alarms_after_onset += len(hits)
            if hits:
                self.detected += 1
                self.delays.append(min(hits))

    def row(self) -> dict[str, float | None]:
        return {
            "detection_rate": self.detected / self.streams if self.streams else None,
            "median_delay": float(statistics.median(self.delays)) if self.delays else None,
            "false_alarms_per_10k": 10_000 * self.false_alarms / self.watched_rows
            if self.watched_rows
            else None,
            "alarms_per_drift": self.alarms_after_onset / self.streams if self.streams else None,
            "streams": self.streams,
        }


def adwin_on_errors(scores: np.ndarray, labels: np.ndarray, start: int, label_delay: int) -> list[int]:
    """Baseline: River's ADWIN (default delta) on the static model's 0/1 errors."""
    detector = drift.ADWIN()
    alarms = []
    errors = ((scores >= 0.5) != labels.astype(bool)).astype(float).tolist()
    for i, error in enumerate(errors):
        detector.update(error)
        if detector.drift_detected:
            alarms.append(start + i + label_delay)
    return alarms


def window_tests(
    frame: pd.DataFrame,
    numeric: tuple[str, ...],
    categorical: tuple[str, ...],
    start: int,
    window: int = 1000,
) -> list[int]:
    """Baseline: every ``window`` rows, each feature against the training rows, p < 0.05, uncorrected."""
    training = frame.iloc[:start]
    alarms = []
    for begin in range(start, len(frame) - window + 1, window):
        current = frame.iloc[begin : begin + window]
        p_values = [stats.ks_2samp(training[name], current[name], method="asymp").pvalue for name in numeric]
        for name in categorical:
            table = (
                pd.concat([training[name].value_counts(), current[name].value_counts()], axis=1)
                .fillna(0)
                .to_numpy()
                .T
            )
            p_values.append(stats.chi2_contingency(table + 0.5)[1])
        if min(p_values, default=1.0) < 0.05:
            alarms.append(begin + window - 1)
    return alarms


def per_partition_suites(
    frame: pd.DataFrame,
    result: BacktestResult,
    settings: MonitoringSettings,
    partitions: int,
    label_delay: int,
    batch_size: int,
) -> list[int]:
    """Baseline: the monitors as the scorer ran them before `driftloop monitor`, one suite per
    partition (rows round-robin), each alarm reported by its own partition."""
    assert result.model is not None
    spec, start = result.spec, result.start_row
    numeric = (
        frame[list(spec.numeric)].to_numpy(dtype=np.float64) if spec.numeric else np.empty((len(frame), 0))
    )
    categorical = [frame[name].astype(str).to_numpy() for name in spec.categorical]
    labels = frame["y"].to_numpy()
    scores = np.zeros(len(frame))
    scores[start:] = result.scores
    suites = [MonitorSuite(settings, spec, result.model.reference) for _ in range(partitions)]
    alarms: list[int] = []
    revealed = start
    for row in range(start, len(frame), batch_size):
        end = min(row + batch_size, len(frame))
        rows = np.arange(row, end)
        for p, suite in enumerate(suites):
            mine = rows[rows % partitions == p]
            if len(mine):
                found = suite.observe_scored(
                    numeric[mine], [c[mine].tolist() for c in categorical], scores[mine], mine
                )
                alarms += [a.position for a in found]
        reveal_to = max(start, end - label_delay)
        if reveal_to > revealed:
            known = np.arange(revealed, reveal_to)
            for p, suite in enumerate(suites):
                mine = known[known % partitions == p]
                if len(mine):
                    found = suite.observe_outcomes(
                        scores[mine], scores[mine] >= 0.5, labels[mine], (mine + label_delay).tolist()
                    )
                    alarms += [a.position for a in found]
            revealed = reveal_to
    return sorted(alarms)


#: Single-stream baselines, measured once per stream (they do not depend on partitions).
BASELINES = ("adwin_errors", "ks_windows")


def run_detection_benchmark(
    seeds: int = 10,
    train_rows: int = 5000,
    onset: int = 10_000,
    rows: int = 20_000,
    horizon: int = 2000,
    label_delay: int = 0,
    settings: MonitoringSettings | None = None,
    types: tuple[str, ...] = (),
    partitions: tuple[int, ...] = (1,),
    batch_size: int = 100,
    progress: Callable[[str], None] | None = None,
) -> dict[str, dict[str, dict[str, float | None]]]:
    """Tallies per stream type and method (see the module docstring): ``monitor@N`` (one
    ModelMonitor over N partitions' evidence) and ``per_partition@N`` (a suite per partition)
    for each N in ``partitions``, and the single-stream baselines."""
    settings = settings or MonitoringSettings()
    tallies: dict[str, dict[str, Tally]] = {}
    methods = [*(f"{m}@{n}" for n in partitions for m in ("monitor", "per_partition")), *BASELINES]
    for kind in STREAM_TYPES:
        if types and kind.name not in types:
            continue
        per_method = tallies.setdefault(kind.name, {m: Tally() for m in methods})
        stream_onset = None if kind.kind == "stationary" else onset
        for seed in range(seeds):
            frame = make_stream(kind, seed, rows, onset if stream_onset is not None else rows + 1)
            model = None
            found: dict[str, list[int]] = {}
            for n in partitions:
                result = run_backtest(
                    frame,
                    "y",
                    settings,
                    train_rows=train_rows,
                    label_delay=label_delay,
                    partitions=n,
                    batch_size=batch_size,
                    model=model,
                )
                model = result.model
                found[f"monitor@{n}"] = sorted(
                    e.row for e in result.events if e.row is not None and e.status == "opened"
                )
                found[f"per_partition@{n}"] = per_partition_suites(
                    frame, result, settings, n, label_delay, batch_size
                )
            found["adwin_errors"] = adwin_on_errors(result.scores, result.labels, train_rows, label_delay)
            found["ks_windows"] = window_tests(
                frame, result.spec.numeric, result.spec.categorical, train_rows
            )
            for method, alarms in found.items():
                per_method[method].add(alarms, stream_onset, train_rows, rows, horizon)
            if progress is not None:
                first = {m: a[:1] for m, a in found.items() if m.startswith("monitor")}
                progress(f"{kind.name} seed {seed}: first monitor alarms {first}")
    return {name: {m: t.row() for m, t in methods_.items()} for name, methods_ in tallies.items()}


def summary(table: dict[str, dict[str, dict[str, float | None]]]) -> dict[str, Any]:
    """The figures the targets are about, for the JSON line: per method, the worst detection
    rate, stationary false alarms, the concept streams' median delay, and (for ``X@N``) the
    median over drifting stream types of delay@N / delay@1."""
    methods = list(next(iter(table.values()), {}))
    stationary = table.get("stationary", {})
    drifting = [t.name for t in STREAM_TYPES if t.kind != "stationary" and t.name in table]
    concept = [t.name for t in STREAM_TYPES if t.kind == "concept" and t.name in table]

    def median_of(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return float(statistics.median(known)) if known else None

    def delay_ratio(method: str) -> float | None:
        if "@" not in method:
            return None
        one = method.split("@")[0] + "@1"
        if one not in methods:
            return None
        ratios = []
        for name in drifting:
            base, delay = table[name][one]["median_delay"], table[name][method]["median_delay"]
            if base and delay is not None:
                ratios.append(delay / base)
        return median_of(list(ratios))

    return {
        method: {
            "worst_detection_rate": min(
                (r for r in (table[n][method]["detection_rate"] for n in drifting) if r is not None),
                default=None,
            ),
            "stationary_false_alarms_per_10k": stationary.get(method, {}).get("false_alarms_per_10k"),
            "concept_median_delay": median_of([table[n][method]["median_delay"] for n in concept]),
            "delay_ratio_to_one_partition": delay_ratio(method),
            "alarms_per_drift": median_of([table[n][method]["alarms_per_drift"] for n in drifting]),
        }
        for method in methods
    }


def to_json(table: dict[str, Any]) -> str:
    return json.dumps({"streams": table, "summary": summary(table)})
