"""The decision threshold is chosen at training time by cost or budget, and travels with the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from streaming.config import DecisionSettings, Settings
from streaming.models.calibration import fit_calibration
from streaming.models.decision import choose_rule, decision_cost
from streaming.models.registry import ModelRegistry
from streaming.models.training import TrainingParams, train_classifier


@pytest.fixture(scope="module")
def holdout() -> tuple[np.ndarray, np.ndarray]:
    """Scores of a fair model on 20,000 transactions, 2% fraud."""
    rng = np.random.default_rng(3)
    labels = (rng.random(20_000) < 0.02).astype(int)
    scores = np.clip(rng.normal(0.15 + 0.5 * labels, 0.15), 0, 1)
    return scores, labels


def every_cost(scores: np.ndarray, labels: np.ndarray, fp: float, fn: float) -> float:
    return min(decision_cost(scores >= t, labels, fp_cost=fp, fn_cost=fn) for t in np.unique(scores))


@pytest.mark.parametrize(("fp_cost", "fn_cost"), [(1.0, 1.0), (1.0, 5.0), (1.0, 50.0)])
def test_the_cost_policy_flags_where_the_chance_of_fraud_pays_for_the_alert(
    holdout: tuple[np.ndarray, np.ndarray], fp_cost: float, fn_cost: float
) -> None:
    scores, labels = holdout
    rule = choose_rule(scores, labels, "cost", fp_cost=fp_cost, fn_cost=fn_cost, alert_budget=0.01)
    # At the threshold the calibrated chance of fraud is fp / (fp + fn)...
    assert fit_calibration(scores, labels).apply(np.array([rule.threshold]))[0] == pytest.approx(
        fp_cost / (fp_cost + fn_cost), rel=1e-6
    )
    # ...and on the holdout it costs little more than the cheapest cut there is (which follows
    # the holdout's own noise).
    cost = decision_cost(scores >= rule.threshold, labels, fp_cost=fp_cost, fn_cost=fn_cost)
    assert cost <= 1.15 * every_cost(scores, labels, fp_cost, fn_cost)
    assert rule.holdout_cost_per_row == pytest.approx(cost / len(scores))


def test_a_dearer_missed_fraud_lowers_the_threshold_and_catches_more(
    holdout: tuple[np.ndarray, np.ndarray],
) -> None:
    scores, labels = holdout
    rules = [
        choose_rule(scores, labels, "cost", fp_cost=1.0, fn_cost=fn, alert_budget=0.01)
        for fn in (1.0, 5.0, 50.0)
    ]
    thresholds = [r.threshold for r in rules]
    assert thresholds == sorted(thresholds, reverse=True) and len(set(thresholds)) == 3
    assert rules[0].holdout_recall < rules[2].holdout_recall


@pytest.mark.parametrize("budget", [0.005, 0.01, 0.05])
def test_the_budget_policy_flags_the_budgets_share(
    holdout: tuple[np.ndarray, np.ndarray], budget: float
) -> None:
    scores, labels = holdout
    rule = choose_rule(scores, labels, "budget", fp_cost=1.0, fn_cost=5.0, alert_budget=budget)
    assert rule.holdout_flagged_share == pytest.approx(budget, abs=1 / len(scores))
    assert (scores >= rule.threshold).mean() == rule.holdout_flagged_share


def test_ties_never_split_and_the_fixed_policy_keeps_its_threshold() -> None:
    scores = np.array([0.9, 0.5, 0.5, 0.5, 0.1])
    labels = np.array([1, 1, 0, 0, 0])
    rule = choose_rule(scores, labels, "budget", fp_cost=1.0, fn_cost=1.0, alert_budget=0.4)
    assert (scores >= rule.threshold).sum() in (1, 4), "a threshold cannot flag 2 of 3 tied scores"
    fixed = choose_rule(scores, labels, "fixed", fp_cost=1.0, fn_cost=1.0, alert_budget=0.4, threshold=0.7)
    assert fixed.threshold == 0.7 and fixed.holdout_flagged_share == 0.2


def test_the_threshold_travels_in_the_signed_manifest(history: pd.DataFrame, tmp_path: Path) -> None:
    spec = Settings().feature_spec()
    registry = ModelRegistry(tmp_path / "registry", b"k" * 32)
    by_budget = train_classifier(
        history,
        spec,
        params=TrainingParams(max_iter=20),
        decision=DecisionSettings(policy="budget", alert_budget=0.05),
    )
    by_cost = train_classifier(
        history,
        spec,
        params=TrainingParams(max_iter=20),
        decision=DecisionSettings(policy="cost", fn_cost=20.0),
    )
    assert by_budget.decision is not None and by_budget.decision.holdout_flagged_share == pytest.approx(
        0.05, abs=0.01
    )
    assert by_cost.threshold != by_budget.threshold
    for model in (by_budget, by_cost):
        manifest = registry.register("fraud", model)
        loaded = registry.load("fraud", manifest.version)
        assert loaded.manifest.threshold == model.threshold
        assert loaded.manifest.decision == model.decision and loaded.manifest.calibration == model.calibration
    overridden = registry.register("fraud", by_cost, threshold=0.42)
    assert overridden.threshold == 0.42
