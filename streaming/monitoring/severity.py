"""How bad a drift is: the severity a drift event carries (low, medium, high).

Rates and distributions are judged differently: a rate by how many times it changed, a
distribution by its PSI (or, without one, its standardized mean shift).
"""

from __future__ import annotations

import math

from streaming.events import Severity, WindowStats


def rate_severity(before: WindowStats, after: WindowStats) -> Severity:
    """For rates (fraud rate, error rate, Brier loss): how many times higher or lower.

    A standardized shift says little here: an error rate that doubles from 1% to 2% moves
    by a tenth of a Bernoulli standard deviation, yet it is the drift a fraud team most
    needs to hear about. Bands: 2x (or half) and more is high, 1.5x (or two thirds) medium.

    >>> rate_severity(WindowStats(count=1000, mean=0.01), WindowStats(count=500, mean=0.021))
    'high'
    >>> rate_severity(WindowStats(count=1000, mean=0.02), WindowStats(count=500, mean=0.032))
    'medium'
    >>> rate_severity(WindowStats(count=1000, mean=0.02), WindowStats(count=500, mean=0.024))
    'low'
    """
    if before.mean is None or after.mean is None:
        return "medium"
    low, high = sorted((before.mean, after.mean))
    ratio = high / low if low > 0 else math.inf if high > 0 else 1.0
    return "high" if ratio >= 2 else "medium" if ratio >= 1.5 else "low"


def shift_severity(before: WindowStats, after: WindowStats, psi: float | None) -> Severity:
    """PSI bands (0.1 / 0.25) for window tests; standardized mean shift (0.2 / 0.5) otherwise."""
    if psi is not None:
        return "high" if psi >= 0.25 else "medium" if psi >= 0.1 else "low"
    if before.mean is None or after.mean is None:
        return "medium"
    scale = max(before.std or 0.0, 1e-9)
    shift = abs(after.mean - before.mean) / scale
    return "high" if shift >= 0.5 else "medium" if shift >= 0.2 else "low"
