"""The comparison behind every canary decision, pure: labelled outcomes per model.

For each role (champion, challenger) the controller keeps, over the current step's window,
the count of labelled transactions, their errors (decision ≠ label), the cost of their
decisions (``fp_cost`` per false alert, ``fn_cost`` per missed fraud: each model decides at
its own threshold, chosen for that cost when it was trained), the summed Brier loss
(score − label)² and the summed scoring latency. :func:`compare` turns two tallies into a
verdict with its statistics:

- *worse*: the challenger's Brier loss exceeds the champion's by more than ``margin`` with
  one-sided confidence ``confidence`` (Welch's z on the difference of means), or the cost of
  its decisions per transaction does, by more than ``margin`` × the mean of the two costs
  (with both costs 1, the cost is the error rate), or its mean latency exceeds
  ``latency_factor`` × the champion's → roll back;
- *not worse*: the upper confidence bound of (challenger − champion) Brier loss is at most
  ``margin`` → step up;
- otherwise *inconclusive* → hold.

>>> champion, challenger = Tally(fp_cost=1.0, fn_cost=5.0), Tally(fp_cost=1.0, fn_cost=5.0)
>>> for i in range(2000):
...     champion.add(score=0.3 if i % 10 else 0.7, label=int(i % 10 == 0), decision=i % 10 == 0, latency_ms=5)
...     challenger.add(score=0.1 if i % 10 else 0.9, label=int(i % 10 == 0), decision=i % 10 == 0, latency_ms=5)
>>> compare(champion, challenger, margin=0.01, confidence=0.95, latency_factor=2.0, min_labels=500).verdict
'not_worse'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from scipy import stats


@dataclass
class Tally:
    """Labelled outcomes of one model in one window."""

    fp_cost: float = 1.0
    fn_cost: float = 1.0
    n: int = 0
    errors: int = 0
    cost_sum: float = 0.0
    cost_sq_sum: float = 0.0
    brier_sum: float = 0.0
    brier_sq_sum: float = 0.0
    latency_sum_ms: float = 0.0

    def add(self, score: float, label: int, decision: bool, latency_ms: float) -> None:
        loss = (score - label) ** 2
        cost = self.fp_cost if decision and not label else self.fn_cost if label and not decision else 0.0
        self.n += 1
        self.errors += int(decision != bool(label))
        self.cost_sum += cost
        self.cost_sq_sum += cost * cost
        self.brier_sum += loss
        self.brier_sq_sum += loss * loss
        self.latency_sum_ms += latency_ms

    @property
    def cost(self) -> float:
        """Cost of the decisions per labelled transaction."""
        return self.cost_sum / self.n if self.n else math.nan

    def cost_variance(self) -> float:
        return _variance(self.n, self.cost_sum, self.cost_sq_sum)

    @property
    def brier(self) -> float:
        return self.brier_sum / self.n if self.n else math.nan

    @property
    def error_rate(self) -> float:
        return self.errors / self.n if self.n else math.nan

    @property
    def latency_ms(self) -> float:
        return self.latency_sum_ms / self.n if self.n else math.nan

    def brier_variance(self) -> float:
        return _variance(self.n, self.brier_sum, self.brier_sq_sum)

    def summary(self) -> dict[str, float]:
        return {
            "labels": self.n,
            "error_rate": self.error_rate,
            "cost_per_transaction": self.cost,
            "brier": self.brier,
            "latency_ms": self.latency_ms,
        }


def _variance(n: int, total: float, squares: float) -> float:
    if n < 2:
        return math.inf
    mean = total / n
    return max(0.0, (squares - n * mean * mean) / (n - 1))


@dataclass(frozen=True)
class Comparison:
    verdict: str  # "worse", "not_worse", "inconclusive", "too_few_labels"
    reason: str
    evidence: dict[str, Any]


def compare(
    champion: Tally,
    challenger: Tally,
    *,
    margin: float,
    confidence: float,
    latency_factor: float,
    min_labels: int,
) -> Comparison:
    evidence: dict[str, Any] = {"champion": champion.summary(), "challenger": challenger.summary()}
    if champion.n < min_labels or challenger.n < min_labels:
        return Comparison(
            "too_few_labels",
            f"{challenger.n} challenger and {champion.n} champion labels; {min_labels} each needed",
            evidence,
        )
    z_crit = float(stats.norm.ppf(confidence))
    difference = challenger.brier - champion.brier
    se = math.sqrt(challenger.brier_variance() / challenger.n + champion.brier_variance() / champion.n)
    upper, lower = difference + z_crit * se, difference - z_crit * se
    cost_margin = margin * (challenger.fp_cost + challenger.fn_cost) / 2
    se_cost = math.sqrt(
        max(challenger.cost_variance() / challenger.n + champion.cost_variance() / champion.n, 1e-12)
    )
    z_cost = (challenger.cost - champion.cost - cost_margin) / se_cost
    evidence.update(
        brier_difference=difference,
        brier_difference_ci=[lower, upper],
        cost_difference=challenger.cost - champion.cost,
        cost_z=z_cost,
        confidence=confidence,
        margin=margin,
    )
    if challenger.latency_ms > latency_factor * champion.latency_ms:
        return Comparison(
            "worse",
            f"mean latency {challenger.latency_ms:.1f} ms is over {latency_factor}x the champion's "
            f"{champion.latency_ms:.1f} ms",
            evidence,
        )
    if lower > margin:
        return Comparison(
            "worse", f"Brier loss worse by {difference:.4f} (CI {lower:.4f}..{upper:.4f})", evidence
        )
    if z_cost > z_crit:
        return Comparison(
            "worse",
            f"decisions cost {challenger.cost:.4f} per transaction vs the champion's {champion.cost:.4f} "
            f"(z={z_cost:.2f})",
            evidence,
        )
    if upper <= margin:
        return Comparison(
            "not_worse", f"Brier loss difference {difference:.4f} ≤ {margin} at {confidence:.0%}", evidence
        )
    return Comparison(
        "inconclusive", f"Brier loss difference {difference:.4f}, CI up to {upper:.4f}", evidence
    )
