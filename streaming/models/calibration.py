"""Calibrated probabilities: what the online performance estimate needs from a score.

A score that says 0.3 should be right 30% of the time. Gradient-boosted trees trained on
log loss come close, not all the way, and the performance estimate (:mod:`streaming.
monitoring.performance`) takes the calibrated probability of each transaction as the
chance it is fraud. The calibration is fitted at training time on the holdout the model did
not fit on, and travels in the signed manifest.

It is Platt scaling on the score's logit (``p = sigmoid(slope · logit(score) + intercept)``):
two numbers, monotone, so it never changes which transactions rank highest, and stable on
a holdout with few frauds, where an isotonic fit would be a staircase of a few steps.

>>> rng = np.random.default_rng(0)
>>> truth = rng.uniform(0.0, 0.2, 20_000)           # the real chance of fraud
>>> labels = (rng.random(20_000) < truth).astype(int)
>>> overconfident = np.clip(truth * 2.0, 0, 1)       # a model that doubles every chance
>>> calibration = fit_calibration(overconfident, labels)
>>> [round(float(p.mean()), 2) for p in (overconfident, calibration.apply(overconfident), truth)]
[0.2, 0.1, 0.1]
"""

from __future__ import annotations

import math

import msgspec
import numpy as np
from sklearn.linear_model import LogisticRegression

_EPS = 1e-6


class Calibration(msgspec.Struct, frozen=True, kw_only=True):
    """Platt scaling of one model's scores (see the module docstring)."""

    slope: float = 1.0
    intercept: float = 0.0
    rows: int = 0  # holdout rows it was fitted on

    def apply(self, scores: np.ndarray) -> np.ndarray:
        """The calibrated probability of each score."""
        return _sigmoid(self.slope * _logit(np.asarray(scores, dtype=np.float64)) + self.intercept)

    def score_at(self, probability: float) -> float:
        """The score whose calibrated probability is ``probability`` (the slope must be > 0)."""
        p = min(max(probability, _EPS), 1 - _EPS)
        return float(_sigmoid(np.array((math.log(p / (1 - p)) - self.intercept) / self.slope)))


def fit_calibration(scores: np.ndarray, labels: np.ndarray) -> Calibration:
    """Platt scaling fitted on holdout ``scores`` and 0/1 ``labels`` (identity with one class)."""
    labels = np.asarray(labels).astype(np.int64)
    if len(np.unique(labels)) < 2:
        return Calibration(rows=len(labels))
    fit = LogisticRegression(C=1e6, max_iter=1000)  # barely regularised: two parameters, many rows
    fit.fit(_logit(np.asarray(scores, dtype=np.float64)).reshape(-1, 1), labels)
    return Calibration(slope=float(fit.coef_[0, 0]), intercept=float(fit.intercept_[0]), rows=len(labels))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.asarray(np.log(p / (1 - p)))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -500, 500))))
