"""The team's training function, named in driftloop's configuration::

    [training]
    function = "card_model.train:train"
    params = { C = 0.5 }

driftloop calls it from `driftloop train`, the backtest's --retrain and the retraining flow.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from card_model.features import CardFeatures


def build(numeric: list[str], categorical: list[str], C: float = 1.0, max_iter: int = 500) -> Pipeline:  # noqa: N803
    """The team's model: its own features, scaled numbers, one-hot categories, a logistic regression."""
    engineered = ["log_amount", "night", "far_from_home", "burst"]
    encode = ColumnTransformer(
        [
            ("numbers", StandardScaler(), [*numeric, *engineered]),
            ("categories", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]
    )
    return Pipeline(
        [
            ("features", CardFeatures()),
            ("encode", encode),
            ("model", LogisticRegression(C=C, max_iter=max_iter, class_weight="balanced")),
        ]
    )


def train(
    frame: pd.DataFrame,
    spec: Any,
    label_column: str,
    params: dict[str, Any],
    sample_weight: np.ndarray | None = None,
) -> Pipeline:
    """Fit the team's pipeline on driftloop's labelled frame (one column per feature of the
    spec, numbers as floats and categories as strings, plus the label)."""
    model = build(list(spec.numeric), list(spec.categorical), **params)
    features = frame[list(spec.names)]
    labels = frame[label_column].to_numpy()
    if sample_weight is None:
        return model.fit(features, labels)
    return model.fit(features, labels, model__sample_weight=sample_weight)
