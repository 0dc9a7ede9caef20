"""`driftloop bench loop`: what retraining after a drift pays, and how well the performance
estimate tracks the truth before the labels come.

Simulated card streams (:class:`~streaming.simulation.generator.TransactionSimulator`), at a
card-like fraud rate of 0.5% so that a 1% alert budget could catch all of it: ``history``
rows train the first model, ``before`` rows of the same world follow, then ``after`` rows of

- ``covariate``: a pure covariate shift (more online shopping, larger baskets, the chance of
  fraud given a transaction unchanged: :func:`~streaming.simulation.generator.shifted_mix`);
- ``tactic``: a new fraud tactic (small online gift-card purchases, several in a row);
- ``wave``: a fraud wave (four times the fraud rate, the same tactic).

Each runs with labels at once and ``label_delay`` rows late, through the backtest (the evidence,
monitor and retraining code of the live loop) three ways: the *static* first model; *today*,
the earlier retraining rule (the labelled rows since the alarm, a fixed 0.5 threshold); *new*,
the retraining flow's candidate selection with the cost-chosen threshold. Reported after the
onset: the share of the fraud caught at the ``alert_budget`` (the top scores of each run of
1,000 transactions, as a review team with a daily capacity would see them) and the cost of the
decisions (``fp_cost`` per false alert, ``fn_cost`` per missed fraud); the share caught by the
new rule once its first retrained model serves (``caught_new_served``); the *ceiling*, a model
trained on ``ceiling_rows`` fully labelled rows of the new world (what no retraining on the stream's
own labels can beat: it needs neither detection nor labels); and for the static model, the
error of the online estimate of recall at the budget against the realized value, per window of
``window`` rows. The last line is one JSON object.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from streaming.config import DecisionSettings, MonitoringSettings, RetrainingSettings, Settings
from streaming.models.training import TrainingParams, train_classifier
from streaming.monitoring.backtest import BacktestResult, Outcome, run_backtest
from streaming.monitoring.performance import budget_score, realized
from streaming.simulation.generator import SCENARIOS, Regime, TransactionSimulator, shifted_mix

#: The bench's world: card-like fraud, 0.5% of transactions.
BASE = replace(SCENARIOS["baseline"], fraud_rate=0.005)
KINDS: dict[str, Regime | None] = {
    "covariate": None,  # the same regime, another mix of transactions
    "tactic": replace(BASE, name="tactic", fraud_pattern="gift_card_testing"),
    "wave": replace(BASE, name="wave", fraud_rate=0.02),
}


def make_stream(kind: str, seed: int, history: int, before: int, after: int) -> pd.DataFrame:
    simulator = TransactionSimulator(seed=seed)
    parts = [
        simulator.generate(history, BASE),
        simulator.generate(before, BASE),
        _new_world(simulator, kind, after, seed),
    ]
    return pd.concat(parts, ignore_index=True).drop(columns=["transaction_id", "account_id"])


def _new_world(simulator: TransactionSimulator, kind: str, rows: int, seed: int) -> pd.DataFrame:
    regime = KINDS[kind]
    return shifted_mix(simulator, rows, seed, BASE) if regime is None else simulator.generate(rows, regime)


def ceiling_scores(
    kind: str, seed: int, rows: int, stream: pd.DataFrame, decision: DecisionSettings
) -> np.ndarray:
    """The scores on ``stream`` of a model trained on ``rows`` fully labelled rows of the new
    world, drawn apart (another seed): the most any retraining could give."""
    simulator = TransactionSimulator(seed=10_000 + seed)
    train = _new_world(simulator, kind, rows, 10_000 + seed).drop(columns=["transaction_id", "account_id"])
    spec = Settings().feature_spec()
    model = train_classifier(train, spec, params=TrainingParams(), decision=decision)
    return model.predict_proba(model.encoder.frame_matrix(stream))


def run_loop_benchmark(
    seeds: int = 5,
    kinds: tuple[str, ...] = tuple(KINDS),
    label_delays: tuple[int, ...] = (0, 5000),
    history: int = 20_000,
    before: int = 20_000,
    after: int = 40_000,
    window: int = 20_000,
    ceiling_rows: int = 100_000,
    decision: DecisionSettings | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Per kind and label delay, the figures of every method, as medians over the seeds."""
    decision = decision or DecisionSettings(fp_cost=1.0, fn_cost=5.0, alert_budget=0.01)
    spec = Settings().feature_spec()
    monitoring = MonitoringSettings(performance_window=window)
    retraining = RetrainingSettings(min_rows=1000, min_holdout_positives=10)
    table: dict[str, Any] = {}
    for kind in kinds:
        for delay in label_delays:
            runs: list[dict[str, float]] = []
            for seed in range(seeds):
                frame = make_stream(kind, seed, history, before, after)
                common = {
                    "train_rows": history,
                    "label_delay": delay,
                    "spec": spec,
                    "params": TrainingParams(),
                    "retrain": True,
                    "retraining": retraining,
                    "decision": decision,
                }
                new = run_backtest(frame, "label", monitoring, retrain_rule="selection", **common)  # type: ignore[arg-type]
                today = run_backtest(frame, "label", monitoring, retrain_rule="since_drift", **common)  # type: ignore[arg-type]
                figures = _figures(new, today, before, decision, window)
                ceiling = ceiling_scores(kind, seed, ceiling_rows, frame.iloc[history + before :], decision)
                figures["caught_ceiling"] = _caught(ceiling, new.labels[before:], decision.alert_budget)
                runs.append(figures)
                progress(
                    f"{kind} labels {delay} rows late, seed {seed}: "
                    + ", ".join(f"{k} {v:.3f}" for k, v in figures.items())
                )
            table[f"{kind}@{delay}"] = {key: _median([r[key] for r in runs]) for key in runs[0]} | {
                "seeds": seeds
            }
    return {"streams": table, "goals": goals(table, label_delays)}


def _figures(
    new: BacktestResult, today: BacktestResult, before: int, decision: DecisionSettings, window: int
) -> dict[str, float]:
    """Caught at the budget and cost after the onset (rows ``before..`` of the streamed rows)."""
    labels = new.labels[before:]
    out: dict[str, float] = {}
    for name, outcome in (("static", new.static), ("today", today.retrained), ("new", new.retrained)):
        assert outcome is not None
        scores = outcome.scores[before:]
        out[f"caught_{name}"] = _caught(scores, labels, decision.alert_budget)
        out[f"cost_{name}"] = _cost(outcome, new.labels, before, decision)
        out[f"retrains_{name}"] = float(len(outcome.retrains))
    served = new.retrained.retrains[0] - new.start_row if new.retrained and new.retrained.retrains else None
    out["caught_new_served"] = (
        _caught(new.retrained.scores[served:], new.labels[served:], decision.alert_budget)  # type: ignore[union-attr]
        if served is not None
        else float("nan")
    )
    errors = estimate_errors(new, window)
    out["estimate_error"] = statistics.fmean(e for e, _ in errors) if errors else float("nan")
    out["realized_noise"] = statistics.fmean(n for _, n in errors) if errors else float("nan")
    return out


def _caught(scores: np.ndarray, labels: np.ndarray, budget: float) -> float:
    from streaming.monitoring.backtest import caught_at_budget

    return caught_at_budget(scores, labels, budget, chunk=1000)


def _cost(outcome: Outcome, labels: np.ndarray, before: int, decision: DecisionSettings) -> float:
    """The decisions' cost after the onset, per 1,000 transactions (each row decided by the
    model serving it then, at its own threshold)."""
    decided = outcome.decisions[before:]
    truth = labels[before:].astype(bool)
    cost = decision.fp_cost * np.sum(decided & ~truth) + decision.fn_cost * np.sum(~decided & truth)
    return float(cost) * 1000 / max(1, len(truth))


def estimate_errors(result: BacktestResult, window: int) -> list[tuple[float, float]]:
    """Per window of the static model, |estimated - realized| recall at the budget, and the
    realized value's own sampling noise (its binomial standard error over the window's frauds):
    an estimate cannot be judged closer than that."""
    model = result.model
    if model is None or model.reference is None:
        return []
    top = budget_score(np.asarray(model.reference.scores), 0.01)
    errors = []
    for row, estimate in result.static.estimates:
        rows = slice(row + 1 - window - result.start_row, row + 1 - result.start_row)
        scores, labels = result.static.scores[rows], result.labels[rows]
        real = realized(labels, scores, scores >= model.threshold, top)
        frauds = int(labels.sum())
        if frauds and np.isfinite(estimate.recall_at_budget):
            r = real.recall_at_budget
            errors.append((abs(estimate.recall_at_budget - r), float(np.sqrt(r * (1 - r) / frauds))))
    return errors


def goals(table: dict[str, Any], delays: tuple[int, ...]) -> dict[str, Any]:
    """The issue's goals, each with the figure it is judged on."""
    out: dict[str, Any] = {}
    covariate = [table[f"covariate@{d}"] for d in delays if f"covariate@{d}" in table]
    if covariate:
        out["new_never_costlier_than_static_on_covariate"] = all(
            r["cost_new"] <= r["cost_static"] for r in covariate
        )
        out["estimate_error_on_covariate"] = max(r["estimate_error"] for r in covariate)
        out["estimate_within_0.05_on_covariate"] = out["estimate_error_on_covariate"] <= 0.05
    tactic = [table[f"tactic@{d}"] for d in delays if f"tactic@{d}" in table]
    if tactic:
        out["new_caught_after_tactic_change"] = min(r["caught_new"] for r in tactic)
        out["new_catches_90pct_after_tactic_change"] = out["new_caught_after_tactic_change"] >= 0.9
        out["ceiling_after_tactic_change"] = min(r["caught_ceiling"] for r in tactic)
    return out


def _median(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(statistics.median(finite)) if finite else float("nan")
