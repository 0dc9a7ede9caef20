"""Two-sample window tests, vectorized over features, with family-wise error control.

Every ``window`` events a monitor tests the latest window against the reference: KS for
numeric signals (all features in one call), chi-square for categories, PSI as the effect
size reported with them. Holm's step-down procedure keeps the chance of *any* false alarm
across the features of one check at ``alpha``.

>>> holm([0.001, 0.04, 0.03], alpha=0.05).tolist()
[True, False, False]
>>> round(psi(np.array([50, 50]), np.array([50, 50])), 6)
0.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

#: Proportions are floored at this before logs, so an empty bin does not make PSI infinite.
_FLOOR = 1e-4


def holm(p_values: Sequence[float] | np.ndarray, alpha: float) -> np.ndarray:
    """Which hypotheses Holm's procedure rejects at family-wise level ``alpha``."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    order = np.argsort(p, kind="stable")
    reject = np.zeros(m, dtype=bool)
    for rank, index in enumerate(order):
        if p[index] > alpha / (m - rank):
            break
        reject[index] = True
    return reject


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index between two histograms over the same bins."""
    e = np.maximum(expected / max(expected.sum(), 1), _FLOOR)
    a = np.maximum(actual / max(actual.sum(), 1), _FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def ks_many(reference: np.ndarray, window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """KS statistics and p-values, column by column (reference: m×d, window: n×d)."""
    result = stats.ks_2samp(reference, window, axis=0, method="asymp")
    return np.atleast_1d(result.statistic), np.atleast_1d(result.pvalue)


def decile_psi(reference_sorted: np.ndarray, window: np.ndarray) -> float:
    """PSI over the reference's deciles."""
    edges = np.unique(np.quantile(reference_sorted, np.linspace(0.1, 0.9, 9)))
    expected = np.bincount(np.searchsorted(edges, reference_sorted, side="right"), minlength=len(edges) + 1)
    actual = np.bincount(np.searchsorted(edges, window, side="right"), minlength=len(edges) + 1)
    return psi(expected.astype(np.float64), actual.astype(np.float64))


def chi_square(reference_counts: Mapping[str, int], window: Sequence[str]) -> tuple[float, float, float]:
    """Chi-square homogeneity test of a window's categories against reference counts.

    Categories the reference never saw are pooled in one extra bin (with a pseudo-count in
    the reference), so a new category counts as evidence instead of an error.
    Returns (statistic, p-value, PSI).
    """
    names = list(reference_counts)
    index = {name: i for i, name in enumerate(names)}
    other = len(names)
    codes = np.fromiter((index.get(v, other) for v in window), dtype=np.int64, count=len(window))
    actual = np.bincount(codes, minlength=other + 1).astype(np.float64)
    expected = np.array([*reference_counts.values(), 0], dtype=np.float64) + 0.5
    table = np.vstack([expected, actual])
    table = table[:, table.sum(axis=0) > 1.0]
    if table.shape[1] < 2:
        return 0.0, 1.0, 0.0
    statistic, p_value, _, _ = stats.chi2_contingency(table, correction=False)
    return float(statistic), float(p_value), psi(table[0], table[1])
