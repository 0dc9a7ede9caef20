"""The reference a monitor compares live data with: a sample of the model's holdout rows.

Built once at training time from the rows the model did *not* fit on (so its scores are
out-of-sample, like live scores) and stored in the signed model manifest. A model without
one (registered by an older build) gets a reference from its first live events instead.

>>> import pandas as pd
>>> from streaming.features import FeatureSpec
>>> spec = FeatureSpec.from_mapping({"amount": "numeric", "channel": "categorical"})
>>> frame = pd.DataFrame({"amount": [1.0, 2.0, 3.0, 4.0], "channel": ["pos", "pos", "atm", "pos"]})
>>> ref = build_reference(frame, spec, scores=[0.1, 0.2, 0.3, 0.4], labels=[0, 0, 1, 0])
>>> ref.numeric["amount"], ref.categorical["channel"], ref.positive_rate
([1.0, 2.0, 3.0, 4.0], {'atm': 1, 'pos': 3}, 0.25)
>>> ref.pit("amount", np.array([0.5, 2.0, 9.0])).tolist()
[0.0, 0.375, 1.0]
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import numpy as np
import pandas as pd

from streaming.features import FeatureSpec

#: Keep at most this many rows in a reference (a uniform sample of the holdout).
REFERENCE_ROWS = 2000


class ReferenceProfile(msgspec.Struct, frozen=True, kw_only=True):
    """Sorted samples of each numeric feature and of the scores; category counts; rates.

    All samples come from the same rows, so they have the same length.
    """

    rows: int
    numeric: dict[str, list[float]]
    categorical: dict[str, dict[str, int]]
    scores: list[float]
    positive_rate: float
    error_rate: float
    brier: float

    def sorted_sample(self, name: str) -> np.ndarray:
        return np.asarray(self.numeric[name] if name != "__score__" else self.scores, dtype=np.float64)

    def pit(self, name: str, values: np.ndarray) -> np.ndarray:
        """Each value's mid-rank in the reference sample, in [0, 1] (uniform when nothing moved).

        The probability integral transform makes every numeric signal scale-free, so one
        detector setting fits all features, heavy tails and ties included.
        """
        sample = self.sorted_sample(name)
        below = np.searchsorted(sample, values, side="left")
        at_or_below = np.searchsorted(sample, values, side="right")
        return np.asarray((below + at_or_below) / (2.0 * len(sample)), dtype=np.float64)


def build_reference(
    frame: pd.DataFrame,
    spec: FeatureSpec,
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    threshold: float = 0.5,
    max_rows: int = REFERENCE_ROWS,
    seed: int = 0,
) -> ReferenceProfile:
    """A profile of ``frame`` (holdout rows) with the model's ``scores`` for them."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    n = len(frame)
    if n > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))
        frame, scores, labels = frame.iloc[keep], scores[keep], labels[keep]
    numeric = {
        name: np.sort(pd.to_numeric(frame[name]).to_numpy(dtype=np.float64)).tolist() for name in spec.numeric
    }
    categorical = {
        name: {str(k): int(v) for k, v in frame[name].astype(str).value_counts().sort_index().items()}
        for name in spec.categorical
    }
    decisions = scores >= threshold
    return ReferenceProfile(
        rows=len(frame),
        numeric=numeric,
        categorical=categorical,
        scores=np.sort(scores).tolist(),
        positive_rate=float(labels.mean()) if len(labels) else 0.0,
        error_rate=float((decisions != labels.astype(bool)).mean()) if len(labels) else 0.0,
        brier=float(np.mean((scores - labels) ** 2)) if len(labels) else 0.0,
    )
