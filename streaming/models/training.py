"""Training and feature encoding: the one training code that `driftloop train`, the backtest
and the retraining flow share.

The scorer builds one float matrix per micro-batch straight from the feature spec
(:class:`FeatureEncoder`): numeric features as they are, categorical features as integer
codes of the vocabulary learned at training (an unseen category becomes NaN, which the
gradient-boosted trees treat as missing). The classifier is scikit-learn's
``HistGradientBoostingClassifier`` with native categorical support, so no per-batch
pandas or ColumnTransformer work sits on the hot path. A team's own model and training code
(``[training]``, :mod:`streaming.models.user_code`) score a DataFrame built once per batch
instead (:class:`~streaming.models.user_code.FrameInput`).

>>> from streaming.features import FeatureSpec
>>> spec = FeatureSpec.from_mapping({"amount": "numeric", "channel": "categorical"})
>>> encoder = FeatureEncoder(spec, {"channel": ["atm", "online", "pos"]})
>>> encoder.matrix([(3.5, "pos"), (1, "drone")])
array([[3.5, 2. ],
       [1. , nan]])
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import repeat
from operator import itemgetter
from typing import Any, Union

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import log_loss, roc_auc_score

from streaming.config import DecisionSettings
from streaming.errors import TrainingError
from streaming.features import FeatureSpec
from streaming.models.calibration import Calibration, fit_calibration
from streaming.models.decision import DecisionRule, choose_rule
from streaming.models.reference import ReferenceProfile, build_reference
from streaming.models.user_code import FrameInput, TrainingCode

#: What builds a model's input from feature values: driftloop's float matrix, or the
#: DataFrame a user's own model (a Pipeline, say) scores.
Encoder = Union["FeatureEncoder", FrameInput]

#: Keep this many distinct values per categorical feature (the most frequent ones).
MAX_CATEGORIES = 250


class FeatureEncoder:
    """Turns feature mappings (or a DataFrame) into the model's float matrix.

    Parameters
    ----------
    spec
        The feature spec: column order and kinds.
    vocabulary
        For each categorical feature, its known values; a value's code is its index.
    """

    kind = "matrix"

    def __init__(self, spec: FeatureSpec, vocabulary: Mapping[str, Sequence[str]]) -> None:
        self.spec = spec
        self.vocabulary = {name: list(vocabulary.get(name, ())) for name in spec.categorical}
        self._codes = {
            name: {v: float(i) for i, v in enumerate(values)} for name, values in self.vocabulary.items()
        }
        self._columns = [(f.name, self._codes.get(f.name)) for f in spec.features]

    @classmethod
    def fit(cls, frame: pd.DataFrame, spec: FeatureSpec) -> FeatureEncoder:
        vocabulary = {}
        for name in spec.categorical:
            counts = frame[name].astype(str).value_counts()
            vocabulary[name] = sorted(counts.index[:MAX_CATEGORIES].tolist())
        return cls(spec, vocabulary)

    @property
    def categorical_mask(self) -> list[bool]:
        return [f.kind == "categorical" for f in self.spec.features]

    def matrix(self, rows: Iterable[Sequence[Any]]) -> np.ndarray:
        """One row per tuple of feature values in spec order (see ``FeatureSpec.values``).

        Values must already satisfy the spec (the typed decoder sees to that).
        """
        rows = rows if isinstance(rows, list) else list(rows)
        n, nan = len(rows), math.nan
        out = np.empty((n, len(self._columns)), dtype=np.float64)
        for j, (_, codes) in enumerate(self._columns):  # column by column, in C where it can
            column = map(itemgetter(j), rows)
            if codes is None:
                out[:, j] = np.fromiter(column, np.float64, n)
            else:
                out[:, j] = np.fromiter(map(codes.get, column, repeat(nan)), np.float64, n)
        return out

    def frame_matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """The same matrix from a DataFrame with one column per feature (vectorized)."""
        columns = []
        for name, codes in self._columns:
            if codes is None:
                columns.append(pd.to_numeric(frame[name], errors="raise").to_numpy(dtype=np.float64))
            else:
                columns.append(frame[name].astype(str).map(codes).to_numpy(dtype=np.float64, na_value=np.nan))
        return np.column_stack(columns) if columns else np.empty((len(frame), 0))


@dataclass(frozen=True)
class TrainingParams:
    """Hyper-parameters of the gradient-boosted classifier (recorded in the manifest), or
    ``code``: the team's own training code (``[training]``), which then fits the model."""

    max_iter: int = 100
    learning_rate: float = 0.1
    max_leaf_nodes: int = 31
    l2_regularization: float = 0.0
    random_state: int = 0
    holdout_fraction: float = 0.2
    min_rows: int = 200
    code: TrainingCode | None = field(default=None, compare=False)

    def as_dict(self) -> dict[str, Any]:
        if self.code is not None:
            return {"holdout_fraction": self.holdout_fraction, "min_rows": self.min_rows} | {
                f"{self.code.kind}_params": self.code.params
            }
        return {k: v for k, v in self.__dict__.items() if k != "code"}


@dataclass(frozen=True)
class TrainedModel:
    """A fitted classifier, its encoder, its holdout metrics, and what the holdout chose:
    the decision rule and the calibration of its scores."""

    estimator: Any  # HistGradientBoostingClassifier, or the user's own classifier
    encoder: Encoder
    metrics: dict[str, float]
    params: TrainingParams
    reference: ReferenceProfile | None = None  # the holdout's profile, for the drift monitors
    decision: DecisionRule | None = None
    calibration: Calibration | None = None
    #: The user's training code that fitted it (path, parameters, version), for the lineage.
    training_code: dict[str, Any] | None = None

    @property
    def threshold(self) -> float:
        return self.decision.threshold if self.decision is not None else 0.5

    def predict_proba(self, matrix: np.ndarray | pd.DataFrame) -> np.ndarray:
        return np.asarray(self.estimator.predict_proba(matrix)[:, 1], dtype=np.float64)


def shown(value: Any) -> str:
    """A cell as an error message shows it: the plain Python value (``2``, not ``np.int64(2)``).

    >>> shown(np.int64(2)), shown(np.float64("nan")), shown("x")
    ('2', 'nan', "'x'")
    """
    return repr(value.item() if isinstance(value, np.generic) else value)


def numeric_column(frame: pd.DataFrame, name: str) -> tuple[pd.Series, np.ndarray]:
    """Column ``name`` as numbers, and the row positions that are missing, non-numeric or not finite."""
    column = pd.to_numeric(frame[name], errors="coerce")
    bad = column.isna() | ~np.isfinite(column.to_numpy(dtype=np.float64, na_value=np.nan))
    return column, np.flatnonzero(bad.to_numpy())


def check_training_frame(frame: pd.DataFrame, spec: FeatureSpec, label_column: str, min_rows: int) -> None:
    """Raise :class:`TrainingError` naming the column or the problem."""
    missing = [name for name in (*spec.names, label_column) if name not in frame.columns]
    if missing:
        raise TrainingError(f"the training data lacks column(s): {', '.join(missing)}")
    if len(frame) < min_rows:
        raise TrainingError(f"{len(frame)} rows is fewer than the minimum of {min_rows}")
    labels = frame[label_column]
    if labels.isna().any():
        raise TrainingError(f"column {label_column!r} has {int(labels.isna().sum())} missing label(s)")
    values = set(pd.unique(labels))
    if not values <= {0, 1}:
        raise TrainingError(f"column {label_column!r} must be 0/1, found {sorted(map(str, values))[:5]}")
    if len(values) < 2:
        raise TrainingError(f"column {label_column!r} holds one class only; both 0 and 1 are needed")
    for name in spec.numeric:
        _, bad = numeric_column(frame, name)
        if len(bad):
            row = int(bad[0])
            raise TrainingError(
                f"numeric column {name!r} has {len(bad)} missing or non-numeric value(s), "
                f"first at row {row}: {shown(frame[name].iloc[row])}"
            )


def train_classifier(
    frame: pd.DataFrame,
    spec: FeatureSpec,
    label_column: str = "label",
    params: TrainingParams | None = None,
    decision: DecisionSettings | None = None,
    sample_weight: np.ndarray | None = None,
) -> TrainedModel:
    """Fit on the older rows, assess on the newest ``holdout_fraction`` (time order kept):
    its metrics, the profile the drift monitors compare with, the calibration of its scores
    and the decision threshold of ``decision``'s policy all come from those holdout rows.
    ``sample_weight`` (one per row of ``frame``) weighs the rows the model fits on."""
    params = params or TrainingParams()
    check_training_frame(frame, spec, label_column, params.min_rows)
    cut = int(len(frame) * (1 - params.holdout_fraction))
    train, holdout = frame.iloc[:cut], frame.iloc[cut:]
    weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)[:cut]
    model = fit_classifier(train, spec, label_column, params, weights)
    return assess(model, holdout, label_column, decision)


def fit_classifier(
    train: pd.DataFrame,
    spec: FeatureSpec,
    label_column: str = "label",
    params: TrainingParams | None = None,
    sample_weight: np.ndarray | None = None,
) -> TrainedModel:
    """The classifier fitted on every row of ``train``, not yet assessed (no holdout figures)."""
    params = params or TrainingParams()
    if train[label_column].nunique() < 2:
        raise TrainingError("the rows to fit on (before the holdout) hold one class only")
    if params.code is not None:
        estimator, weighted = params.code.fit(train, spec, label_column, sample_weight)
        lineage = params.code.lineage() | {"sample_weight": weighted}
        return TrainedModel(
            estimator, FrameInput(spec), {"train_rows": float(len(train))}, params, training_code=lineage
        )
    encoder = FeatureEncoder.fit(train, spec)
    estimator = HistGradientBoostingClassifier(
        max_iter=params.max_iter,
        learning_rate=params.learning_rate,
        max_leaf_nodes=params.max_leaf_nodes,
        l2_regularization=params.l2_regularization,
        categorical_features=encoder.categorical_mask if spec.categorical else None,
        early_stopping=False,
        random_state=params.random_state,
    )
    estimator.fit(
        encoder.frame_matrix(train), train[label_column].astype(int).to_numpy(), sample_weight=sample_weight
    )
    return TrainedModel(estimator, encoder, {"train_rows": float(len(train))}, params)


def assess(
    model: TrainedModel,
    holdout: pd.DataFrame,
    label_column: str = "label",
    decision: DecisionSettings | None = None,
) -> TrainedModel:
    """``model`` with what ``holdout`` (rows it did not fit on) says of it: metrics, reference
    profile, score calibration and decision rule."""
    decision = decision or DecisionSettings()
    metrics = {k: v for k, v in model.metrics.items() if k == "train_rows"}
    if not len(holdout):
        return replace(model, metrics=metrics, reference=None, decision=None, calibration=None)
    scores = model.predict_proba(model.encoder.frame_matrix(holdout))
    labels = holdout[label_column].astype(int).to_numpy()
    rule = choose_rule(
        scores,
        labels,
        decision.policy,
        fp_cost=decision.fp_cost,
        fn_cost=decision.fn_cost,
        alert_budget=decision.alert_budget,
        threshold=decision.threshold,
    )
    metrics.update(classification_metrics(labels, scores, decision.alert_budget))
    reference = build_reference(
        holdout, model.encoder.spec, scores, labels, rule.threshold, seed=model.params.random_state
    )
    calibration = fit_calibration(scores, labels)
    return replace(model, metrics=metrics, reference=reference, decision=rule, calibration=calibration)


def classification_metrics(y: np.ndarray, p: np.ndarray, alert_budget: float = 0.01) -> dict[str, float]:
    metrics: dict[str, float] = {"rows": float(len(y)), "positive_rate": float(y.mean()) if len(y) else 0.0}
    if len(y) == 0:
        return metrics
    if len(np.unique(y)) == 2:
        metrics["roc_auc"] = float(roc_auc_score(y, p))
        metrics["log_loss"] = float(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6), labels=[0, 1]))
    k = max(1, round(len(y) * alert_budget))
    top = np.argsort(-p, kind="stable")[:k]
    metrics["precision_at_budget"] = float(y[top].mean())
    metrics["recall_at_budget"] = float(y[top].sum() / y.sum()) if y.sum() else 0.0
    return metrics
