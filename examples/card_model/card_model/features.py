"""The team's feature engineering: a transformer of its own, inside the model's Pipeline."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin


class CardFeatures(TransformerMixin, BaseEstimator):
    """Adds what the team found predictive to the raw transaction features.

    - ``log_amount``: the amount on a log scale;
    - ``night``: 1 between 22:00 and 06:00;
    - ``far_from_home``: 1 beyond ``far_km`` from the card holder's home;
    - ``burst``: 1 when the card made more than ``burst_count`` transactions in the hour.
    """

    def __init__(self, far_km: float = 100.0, burst_count: int = 4) -> None:
        self.far_km = far_km
        self.burst_count = burst_count

    def fit(self, X: pd.DataFrame, y: object = None) -> CardFeatures:  # noqa: N803 (scikit-learn's name)
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = len(X.columns)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:  # noqa: N803
        out = X.copy()
        out["log_amount"] = np.log1p(X["amount"].clip(lower=0))
        hour = X["hour_of_day"]
        out["night"] = ((hour >= 22) | (hour < 6)).astype(float)
        out["far_from_home"] = (X["distance_from_home_km"] > self.far_km).astype(float)
        out["burst"] = (X["txn_count_1h"] > self.burst_count).astype(float)
        return out

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        added = ["log_amount", "night", "far_from_home", "burst"]
        return np.asarray([*self.feature_names_in_, *added], dtype=object)
