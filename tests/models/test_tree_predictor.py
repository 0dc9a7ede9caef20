"""The compiled tree walker gives exactly predict_proba's numbers, or steps aside."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from streaming.config import Settings
from streaming.models.training import TrainingParams, train_classifier
from streaming.models.tree_predictor import TreeEnsemblePredictor


def _awkward_rows(matrix: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The matrix plus rows with missing values, unseen category codes and extremes."""
    odd = matrix[rng.integers(0, len(matrix), 300)].copy()
    odd[rng.random(odd.shape) < 0.1] = np.nan
    odd[:50] *= 1e6
    odd[50:100] = -odd[50:100]
    odd[100:150] += 0.5  # category codes between known ones
    return np.vstack([matrix, odd])


def test_same_probabilities_as_predict_proba_on_a_driftloop_model(history: pd.DataFrame) -> None:
    model = train_classifier(history, Settings().feature_spec(), params=TrainingParams(max_iter=40))
    fast = TreeEnsemblePredictor.for_estimator(model.estimator)
    assert fast is not None
    matrix = _awkward_rows(model.encoder.frame_matrix(history.head(2000)), np.random.default_rng(1))
    np.testing.assert_array_equal(fast.predict_proba(matrix), model.estimator.predict_proba(matrix)[:, 1])
    # Any batch size, including one row and none.
    np.testing.assert_array_equal(
        fast.predict_proba(matrix[:1]), model.estimator.predict_proba(matrix[:1])[:, 1]
    )
    assert fast.predict_proba(matrix[:0]).shape == (0,)


def test_same_probabilities_without_categorical_features() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(3000, 4))
    y = (features[:, 0] * features[:, 1] + rng.normal(scale=0.3, size=3000) > 0).astype(int)
    estimator = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(features, y)
    fast = TreeEnsemblePredictor.for_estimator(estimator)
    assert fast is not None
    probe = _awkward_rows(features, rng)
    np.testing.assert_array_equal(fast.predict_proba(probe), estimator.predict_proba(probe)[:, 1])


@pytest.mark.parametrize(
    "estimator",
    [
        LogisticRegression().fit(np.eye(4), [0, 1, 0, 1]),
        HistGradientBoostingClassifier(max_iter=5).fit(np.tile(np.eye(3), (20, 1)), [0, 1, 2] * 20),
    ],
    ids=["not-gradient-boosting", "multiclass"],
)
def test_other_models_keep_predict_proba(estimator: object) -> None:
    assert TreeEnsemblePredictor.for_estimator(estimator) is None
