"""The online performance estimate on seeded streams: it follows the realized metrics while the
labelling rule holds, and says less than the truth when fraud itself changes."""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd

from streaming.config import MonitoringSettings, Settings
from streaming.models.training import TrainingParams
from streaming.monitoring.backtest import BacktestResult, run_backtest
from streaming.monitoring.performance import PerformanceFigures, budget_score, realized
from streaming.simulation.generator import SCENARIOS, TransactionSimulator, shifted_mix

WINDOW = 20_000
TRAIN = 20_000


@cache
def backtest(kind: str, label_delay: int = 0) -> BacktestResult:
    simulator = TransactionSimulator(seed=5)
    history, before = simulator.generate(TRAIN), simulator.generate(20_000)
    after = (
        shifted_mix(simulator, 40_000, seed=5)
        if kind == "covariate"
        else simulator.generate(40_000, SCENARIOS[kind])
    )
    frame = pd.concat([history, before, after], ignore_index=True).drop(
        columns=["transaction_id", "account_id"]
    )
    return run_backtest(
        frame,
        "label",
        MonitoringSettings(performance_window=WINDOW),
        train_rows=TRAIN,
        spec=Settings().feature_spec(),
        params=TrainingParams(),
        label_delay=label_delay,
    )


def windows(result: BacktestResult) -> list[tuple[PerformanceFigures, PerformanceFigures]]:
    """(estimated, realized) per window of the static model's stream."""
    model = result.model
    assert model is not None and model.reference is not None
    top = budget_score(np.asarray(model.reference.scores), 0.01)
    pairs = []
    for row, estimate in result.static.estimates:
        rows = slice(row + 1 - WINDOW - TRAIN, row + 1 - TRAIN)
        scores, labels = result.static.scores[rows], result.labels[rows]
        pairs.append((estimate, realized(labels, scores, scores >= model.threshold, top)))
    return pairs


def test_under_a_covariate_shift_the_estimate_follows_the_realized_metrics_without_a_label() -> None:
    pairs = windows(backtest("covariate"))
    assert len(pairs) == 3  # one window before the shift, two after
    before, after = pairs[0][1], pairs[-1][1]
    assert after.fraud_rate > 1.5 * before.fraud_rate, "the shifted mix holds more fraud"
    for estimated, real in pairs:
        assert abs(estimated.recall_at_budget - real.recall_at_budget) < 0.06, (estimated, real)
        assert abs(estimated.fraud_rate - real.fraud_rate) < 0.2 * real.fraud_rate, (estimated, real)
        assert abs(estimated.roc_auc - real.roc_auc) < 0.04, (estimated, real)
    # It saw the fraud rate double before any label said so.
    assert pairs[-1][0].fraud_rate > 1.5 * pairs[0][0].fraud_rate


def test_a_new_fraud_tactic_breaks_the_assumption_the_estimate_drops_but_stays_optimistic() -> None:
    result = backtest("concept")
    pairs = windows(result)
    (first_estimate, first_real), (estimate, real) = pairs[0], pairs[-1]
    assert abs(first_estimate.recall_at_budget - first_real.recall_at_budget) < 0.06
    # The new frauds score low: the model catches almost none of them...
    assert real.recall_at_budget < 0.1
    # ...and its calibration, fitted on the old fraud, does not know they are fraud: the
    # estimate falls, yet stays far above the truth, and misses half of the fraud rate.
    assert estimate.recall_at_budget < first_estimate.recall_at_budget - 0.2
    assert estimate.recall_at_budget - real.recall_at_budget > 0.05
    assert estimate.fraud_rate < 0.7 * real.fraud_rate
    # Its drop is still a drift signal, and needs no label: with none at all (chargebacks
    # that never come), the performance signal opens the episode after the onset.
    unlabelled = backtest("concept", label_delay=10**6)
    opened = [e for e in unlabelled.events if e.status == "opened"]
    assert [(e.signal, e.feature) for e in opened][:1] == [("performance", "recall_at_budget")], opened
    assert opened[0].row is not None and opened[0].row >= TRAIN + 20_000
    assert opened[0].after is not None and opened[0].before is not None
    assert opened[0].after.mean < opened[0].before.mean - 0.1
