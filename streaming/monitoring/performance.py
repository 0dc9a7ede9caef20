"""How good is the model right now? Estimated before the labels come, realized as they do.

With chargebacks days late, the labels that would tell how the model does arrive long after
its decisions. The *estimate* needs none: each transaction's calibrated probability of fraud
``p`` (the model's score through the Platt calibration fitted on its holdout,
:mod:`streaming.models.calibration`) is the expected value of its label, so summed over a
window it gives the expected number of frauds, of frauds among the flagged transactions,
and so on (confidence-based performance estimation, CBPE, as NannyML calls it; here
online, on mergeable sums):

- expected fraud rate: ``Σp / n``;
- precision and recall of the decisions (at the deciding model's threshold):
  ``Σp over the flagged / flagged`` and ``Σp over the flagged / Σp``;
- the same at the alert budget: over the transactions scoring at or above the reference's
  top-``alert_budget`` score;
- ROC AUC: the chance that a fraud scores above a legitimate transaction, with each
  transaction counting ``p`` as a fraud and ``1 - p`` as legitimate, on
  :data:`PROBABILITY_EDGES` (log-spaced bins of ``p``; pairs within a bin count half).

The assumption: **no concept drift**. The calibration says how often a score of 0.3 was a
fraud *on the holdout*; while that holds (covariate shift: the mix of transactions changes,
the chance of fraud given the transaction does not) the estimate follows the realized
metrics without a single label. When fraud itself changes (a new tactic the model scores low)
the calibration is wrong and the estimate stays optimistic: that is what the label and
error signals, and the *realized* figures, are for.

:class:`PerformanceSums` add up across batches, partitions and scorers like the rest of the
evidence, so `driftloop monitor` estimates per model and window on the pooled stream.

>>> rng = np.random.default_rng(0)
>>> p = rng.beta(0.5, 20, 50_000)                       # calibrated: labels drawn from p
>>> labels = (rng.random(50_000) < p).astype(int)
>>> decisions = p >= 0.1
>>> sums = PerformanceSums.of(p, decisions, budget_flags=p >= np.quantile(p, 0.99))
>>> estimated, real = sums.figures(), realized(labels, p, decisions, np.quantile(p, 0.99))
>>> [round(abs(getattr(estimated, m) - getattr(real, m)), 2) for m in ("fraud_rate", "recall", "recall_at_budget", "roc_auc")]
[0.0, 0.01, 0.0, 0.01]
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
from sklearn.metrics import roc_auc_score

from streaming.models.calibration import Calibration

#: Interior edges of the calibrated-probability bins the ROC AUC estimate counts on.
PROBABILITY_EDGES = np.geomspace(1e-4, 1.0, 33)[1:-1]
BINS = len(PROBABILITY_EDGES) + 1

#: What the performance signal can watch.
METRICS = ("roc_auc", "recall_at_budget", "precision_at_budget", "recall", "precision")


@dataclass(frozen=True)
class PerformanceFigures:
    """The metrics the fraud team reads, for one window (estimated or realized); NaN where
    the window cannot say (no flagged transactions, no frauds)."""

    rows: int
    fraud_rate: float
    flagged_share: float
    precision: float
    recall: float
    budget_share: float
    precision_at_budget: float
    recall_at_budget: float
    roc_auc: float

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


@dataclass
class PerformanceSums:
    """Mergeable sums of calibrated probabilities over a window of scored transactions."""

    rows: int = 0
    probability: float = 0.0  # Σp: the expected frauds
    flagged: int = 0  # transactions decided as fraud
    flagged_probability: float = 0.0
    budget_flagged: int = 0  # transactions at or above the budget's score
    budget_probability: float = 0.0
    counts: np.ndarray = field(default_factory=lambda: np.zeros(BINS, dtype=np.int64))
    probabilities: np.ndarray = field(default_factory=lambda: np.zeros(BINS))  # Σp per bin

    @classmethod
    def of(cls, p: np.ndarray, decisions: np.ndarray, budget_flags: np.ndarray) -> PerformanceSums:
        """The sums of one batch: calibrated probabilities, decisions, at-or-above-budget flags."""
        p = np.asarray(p, dtype=np.float64)
        decisions = np.asarray(decisions, dtype=bool)
        budget_flags = np.asarray(budget_flags, dtype=bool)
        bins = np.searchsorted(PROBABILITY_EDGES, p, side="right")
        return cls(
            rows=len(p),
            probability=float(p.sum()),
            flagged=int(decisions.sum()),
            flagged_probability=float(p[decisions].sum()),
            budget_flagged=int(budget_flags.sum()),
            budget_probability=float(p[budget_flags].sum()),
            counts=np.bincount(bins, minlength=BINS).astype(np.int64),
            probabilities=np.bincount(bins, weights=p, minlength=BINS),
        )

    def add(self, other: PerformanceSums) -> None:
        self.rows += other.rows
        self.probability += other.probability
        self.flagged += other.flagged
        self.flagged_probability += other.flagged_probability
        self.budget_flagged += other.budget_flagged
        self.budget_probability += other.budget_probability
        self.counts = self.counts + np.asarray(other.counts, dtype=np.int64)
        self.probabilities = self.probabilities + np.asarray(other.probabilities, dtype=np.float64)

    def figures(self) -> PerformanceFigures:
        """The estimate (see the module docstring)."""
        n = self.rows
        return PerformanceFigures(
            rows=n,
            fraud_rate=_ratio(self.probability, n),
            flagged_share=_ratio(self.flagged, n),
            precision=_ratio(self.flagged_probability, self.flagged),
            recall=_ratio(self.flagged_probability, self.probability),
            budget_share=_ratio(self.budget_flagged, n),
            precision_at_budget=_ratio(self.budget_probability, self.budget_flagged),
            recall_at_budget=_ratio(self.budget_probability, self.probability),
            roc_auc=binned_auc(self.counts, self.probabilities),
        )


def binned_auc(counts: np.ndarray, positives: np.ndarray) -> float:
    """ROC AUC from per-bin counts and expected positives (bins in increasing score order;
    pairs within a bin count half)."""
    positives = np.asarray(positives, dtype=np.float64)
    negatives = np.asarray(counts, dtype=np.float64) - positives
    total_positive, total_negative = positives.sum(), negatives.sum()
    if total_positive <= 0 or total_negative <= 0:
        return math.nan
    below = np.cumsum(negatives) - negatives  # negatives in lower bins
    wins = float((positives * (below + negatives / 2.0)).sum())
    return wins / float(total_positive * total_negative)


def realized(
    labels: np.ndarray, scores: np.ndarray, decisions: np.ndarray, budget_threshold: float
) -> PerformanceFigures:
    """The same metrics from labels, exactly (the ROC AUC on the scores themselves)."""
    y = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    decisions = np.asarray(decisions, dtype=bool)
    top = scores >= budget_threshold
    n, frauds = len(y), int(y.sum())
    return PerformanceFigures(
        rows=n,
        fraud_rate=_ratio(frauds, n),
        flagged_share=_ratio(int(decisions.sum()), n),
        precision=_ratio(int((y & decisions).sum()), int(decisions.sum())),
        recall=_ratio(int((y & decisions).sum()), frauds),
        budget_share=_ratio(int(top.sum()), n),
        precision_at_budget=_ratio(int((y & top).sum()), int(top.sum())),
        recall_at_budget=_ratio(int((y & top).sum()), frauds),
        roc_auc=float(roc_auc_score(y, scores)) if 0 < frauds < n else math.nan,
    )


def _ratio(part: float, whole: float) -> float:
    return float(part) / float(whole) if whole else math.nan


def budget_score(reference_scores: np.ndarray, alert_budget: float) -> float:
    """The score at or above which ``alert_budget`` of the reference's transactions lie."""
    scores = np.asarray(reference_scores, dtype=np.float64)
    return float(np.quantile(scores, 1.0 - alert_budget)) if len(scores) else math.inf


@dataclass(frozen=True)
class PerformanceModel:
    """What estimating one model's performance needs: its calibration, its decision threshold,
    the alert budget's score, and the estimate on its own holdout (the baseline a drop is
    measured from)."""

    calibration: Calibration
    threshold: float
    budget_score: float
    baseline: PerformanceFigures

    @classmethod
    def of(
        cls, calibration: Calibration, threshold: float, reference_scores: np.ndarray, alert_budget: float
    ) -> PerformanceModel:
        scores = np.asarray(reference_scores, dtype=np.float64)
        top = budget_score(scores, alert_budget)
        sums = PerformanceSums.of(calibration.apply(scores), scores >= threshold, scores >= top)
        return cls(calibration, threshold, top, sums.figures())
