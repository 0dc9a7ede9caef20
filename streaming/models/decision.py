"""The decision threshold, chosen at training time from the holdout, by cost or by budget.

A score is a probability of fraud; what the team acts on is a decision (send to review or
not). The threshold between the two is an economic choice, so it is made where the labels
are, when a model is trained, and travels with the model in its signed manifest:

- ``cost``: the threshold that minimises the expected cost ``fp_cost · FP + fn_cost · FN``:
  flag a transaction when its chance of fraud is at least ``fp_cost / (fp_cost + fn_cost)``,
  its chance read off a Platt calibration of the holdout's scores (two parameters: steady
  on a holdout with few frauds, where the holdout's own cheapest cut would follow its noise);
  the cheapest cut of the holdout when the calibration cannot say (a score that does not
  rise with fraud);
- ``budget``: the threshold that flags ``alert_budget`` of the holdout's transactions
  (the review team's capacity);
- ``fixed``: the configured ``threshold``, whatever the holdout says.

The scorer decides with the deciding model's threshold, the canary compares models by the
cost of their decisions, and the retraining flow keeps the candidate whose decisions cost
least on the newest labelled rows.

>>> scores = np.array([0.9, 0.8, 0.7, 0.4, 0.3, 0.2, 0.1, 0.05])
>>> labels = np.array([1, 1, 0, 1, 0, 0, 0, 0])
>>> rule = choose_rule(scores, labels, "cost", fp_cost=1.0, fn_cost=5.0, alert_budget=0.25)
>>> round(rule.threshold, 3), rule.holdout_flagged_share, rule.holdout_cost_per_row
(0.285, 0.625, 0.25)
>>> choose_rule(scores, labels, "budget", fp_cost=1.0, fn_cost=5.0, alert_budget=0.25).threshold
0.75
>>> float(decision_cost(scores >= 0.35, labels, fp_cost=1.0, fn_cost=5.0))
1.0
"""

from __future__ import annotations

from typing import Literal

import msgspec
import numpy as np

from streaming.models.calibration import fit_calibration

Policy = Literal["cost", "budget", "fixed"]


class DecisionRule(msgspec.Struct, frozen=True, kw_only=True):
    """How a model's scores become decisions, and what that did on its holdout."""

    policy: Policy
    threshold: float
    fp_cost: float
    fn_cost: float
    alert_budget: float
    holdout_rows: int = 0
    holdout_flagged_share: float = 0.0  # share of the holdout at or above the threshold
    holdout_cost_per_row: float = 0.0  # expected cost of a transaction's decision
    holdout_recall: float = 0.0  # share of the holdout's frauds at or above the threshold


def decision_cost(decisions: np.ndarray, labels: np.ndarray, *, fp_cost: float, fn_cost: float) -> float:
    """Total cost of ``decisions`` (bool) against 0/1 ``labels``."""
    decisions = np.asarray(decisions, dtype=bool)
    fraud = np.asarray(labels).astype(bool)
    return float(fp_cost * np.sum(decisions & ~fraud) + fn_cost * np.sum(~decisions & fraud))


def choose_rule(
    scores: np.ndarray,
    labels: np.ndarray,
    policy: Policy,
    *,
    fp_cost: float,
    fn_cost: float,
    alert_budget: float,
    threshold: float = 0.5,
) -> DecisionRule:
    """The rule of ``policy`` for a model whose holdout ``scores`` met these ``labels``."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64)
    if policy == "cost" and len(scores):
        threshold = _bayes_threshold(scores, labels, fp_cost, fn_cost)
    elif policy == "budget" and len(scores):
        threshold = _budget_threshold(scores, alert_budget)
    decisions = scores >= threshold
    n, frauds = len(scores), int(labels.sum())
    return DecisionRule(
        policy=policy,
        threshold=float(threshold),
        fp_cost=fp_cost,
        fn_cost=fn_cost,
        alert_budget=alert_budget,
        holdout_rows=n,
        holdout_flagged_share=float(decisions.mean()) if n else 0.0,
        holdout_cost_per_row=decision_cost(decisions, labels, fp_cost=fp_cost, fn_cost=fn_cost) / n
        if n
        else 0.0,
        holdout_recall=float(labels[decisions].sum() / frauds) if frauds else 0.0,
    )


def _cuts(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores in descending order, and for each ``k`` (flag the top ``k``, 0..n) whether a
    threshold can separate the top ``k`` from the rest (no tie across the cut), with that
    threshold: halfway between the ``k``-th and the ``k+1``-th score."""
    order = np.argsort(-scores, kind="stable")
    ranked = scores[order]
    upper = np.r_[np.nextafter(min(ranked[0], 1.0), np.inf), ranked]  # above the k-th kept score
    lower = np.r_[ranked, -np.inf]  # the (k+1)-th score
    separable = upper > lower
    # Flagging all: the lowest score itself; flagging none: just above the highest (at most 1).
    midpoint = np.where(np.isfinite(lower), (upper + lower) / 2.0, ranked[-1])
    midpoint[0] = min(float(np.nextafter(ranked[0], np.inf)), 1.0)
    return order, separable, midpoint


def _bayes_threshold(scores: np.ndarray, labels: np.ndarray, fp_cost: float, fn_cost: float) -> float:
    """The score whose calibrated chance of fraud is ``fp_cost / (fp_cost + fn_cost)``: above
    it, flagging costs less than not flagging, in expectation."""
    calibration = fit_calibration(scores, labels)
    if calibration.slope <= 0 or calibration.rows == 0 or len(np.unique(labels)) < 2:
        return _min_cost_threshold(scores, labels, fp_cost, fn_cost)
    return float(np.clip(calibration.score_at(fp_cost / (fp_cost + fn_cost)), 0.0, 1.0))


def _min_cost_threshold(scores: np.ndarray, labels: np.ndarray, fp_cost: float, fn_cost: float) -> float:
    order, separable, midpoint = _cuts(scores)
    fraud = labels[order]
    flagged_fraud = np.r_[0, np.cumsum(fraud)]
    flagged = np.arange(len(scores) + 1)
    cost = fp_cost * (flagged - flagged_fraud) + fn_cost * (fraud.sum() - flagged_fraud)
    cost = np.where(separable, cost, np.inf)
    best = int(np.argmin(cost))  # the first minimum: the fewest alerts
    return float(midpoint[best])


def _budget_threshold(scores: np.ndarray, alert_budget: float) -> float:
    _, separable, midpoint = _cuts(scores)
    k = round(len(scores) * alert_budget)
    # The nearest cut a threshold can make (ties in the scores allow only some), below the
    # budget rather than above it when two are as near.
    cuts = np.flatnonzero(separable)
    distance = np.abs(cuts - k) * 2 + (cuts > k)
    return float(midpoint[cuts[int(np.argmin(distance))]])
