"""Two-sample window tests, vectorized over features, with family-wise error control.

Every ``window`` events a monitor tests the latest window against the reference: KS for
numeric signals (all features in one call), chi-square for categories, PSI as the effect
size reported with them. Holm's step-down procedure keeps the chance of *any* false alarm
across the features of one check at ``alpha``.

>>> holm([0.001, 0.04, 0.03], alpha=0.05).tolist()
[True, False, False]
>>> round(psi(np.array([50, 50]), np.array([50, 50])), 6)
0.0
>>> rng = np.random.default_rng(0)
>>> reference = np.sort(rng.normal(size=(2000, 2)), axis=0)
>>> window = rng.normal(loc=[0.0, 0.3], size=(1000, 2))
>>> statistic, p_value = ks_many(reference, window)
>>> bool(p_value[0] > 0.01), bool(p_value[1] < 1e-6)
(True, True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import special

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


def ks_many(reference_sorted: np.ndarray, window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-sample KS statistics and asymptotic p-values, column by column.

    ``reference_sorted`` (m×d) must be sorted along axis 0; ``window`` is n×d. Both empirical
    CDFs are evaluated at every point of both samples, so the statistic is exact; the
    p-value is Kolmogorov's limit distribution at sqrt(m·n/(m+n))·D, as scipy's
    ``ks_2samp(method="asymp")`` gives it, without scipy's per-column Python overhead.
    """
    m, n = len(reference_sorted), len(window)
    window_sorted = np.sort(window, axis=0)
    statistics = np.empty(window.shape[1])
    for j in range(window.shape[1]):
        ref, win = reference_sorted[:, j], window_sorted[:, j]
        points = np.concatenate([ref, win])
        gap = np.searchsorted(ref, points, side="right") / m - np.searchsorted(win, points, side="right") / n
        statistics[j] = np.abs(gap).max()
    p_values = special.kolmogorov(np.sqrt(m * n / (m + n)) * statistics)
    return statistics, np.clip(p_values, 0.0, 1.0)


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
    index = {name: i for i, name in enumerate(reference_counts)}
    other = len(index)
    get = index.get
    codes = np.fromiter((get(v, other) for v in window), dtype=np.int64, count=len(window))
    actual = np.bincount(codes, minlength=other + 1)
    return chi_square_counts(np.array([*reference_counts.values(), 0]), actual)


def chi_square_counts(reference: np.ndarray, window: np.ndarray) -> tuple[float, float, float]:
    """Chi-square homogeneity test of a window's counts against the reference's, same bins.

    Every bin gets a pseudo-count of 0.5 in the reference, so a bin the reference left empty
    (a new category) counts as evidence instead of an error. Returns (statistic, p-value, PSI).

    >>> statistic, p_value, effect = chi_square_counts(np.array([100, 100]), np.array([50, 50]))
    >>> round(p_value, 3), round(effect, 6)
    (1.0, 0.0)
    """
    expected = np.asarray(reference, dtype=np.float64) + 0.5
    table = np.vstack([expected, np.asarray(window, dtype=np.float64)])
    table = table[:, table.sum(axis=0) > 1.0]
    if table.shape[1] < 2 or table[1].sum() == 0:
        return 0.0, 1.0, 0.0
    # Pearson's statistic of the 2×k contingency table, no continuity correction.
    totals = table.sum(axis=1, keepdims=True)
    fitted = totals * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = float(((table - fitted) ** 2 / fitted).sum())
    p_value = float(special.chdtrc(table.shape[1] - 1, statistic))
    return statistic, p_value, psi(table[0], table[1])
