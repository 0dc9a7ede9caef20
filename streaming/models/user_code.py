"""The team's own model and training code (``[training]`` in the configuration).

A user's model is any scikit-learn-compatible binary classifier (a ``Pipeline`` with its own
preprocessing included) that scores a DataFrame holding one column per feature of the spec:
numeric features as floats, categorical ones as strings, exactly as the scorer builds it once
per micro-batch (:class:`FrameInput`). It comes from either

- ``training.function = "package.module:function"``: called as
  ``function(frame, spec, label_column, params)`` (and ``sample_weight=`` when its signature
  takes it), returning the fitted classifier; or
- ``training.estimator = "package.module:factory"``: called as ``factory(**params)``,
  returning an unfitted classifier that driftloop fits on the features and the labels.

`driftloop train`, the backtest's ``--retrain`` and the retraining flow all go through
:class:`TrainingCode`, which refuses what cannot serve (no ``predict_proba``, a regressor, one
class, other input columns than the spec's) with a :class:`~streaming.errors.TrainingCodeError`
naming the problem, and records the code's path, parameters and version in the lineage.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from streaming.config import TrainingSettings, import_attribute
from streaming.errors import TrainingCodeError
from streaming.features import FeatureSpec


class FrameInput:
    """The input of a user's model: a DataFrame with one column per feature, in spec order,
    numeric columns as float64 and categorical ones as str (the same at training and serving).

    >>> spec = FeatureSpec.from_mapping({"amount": "numeric", "channel": "categorical"})
    >>> FrameInput(spec).matrix([(3.5, "pos"), (1, "atm")])
       amount channel
    0     3.5     pos
    1     1.0     atm
    """

    kind = "frame"

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self.vocabulary: dict[str, list[str]] = {}
        self._names = list(spec.names)
        self._kinds = [f.kind for f in spec.features]

    def matrix(self, rows: Iterable[Sequence[Any]]) -> pd.DataFrame:
        """One row per tuple of feature values in spec order, as the typed decoder gives them."""
        rows = rows if isinstance(rows, list) else list(rows)
        columns = list(zip(*rows, strict=True)) if rows else [()] * len(self._names)
        data: dict[str, Any] = {}
        for name, kind, values in zip(self._names, self._kinds, columns, strict=True):
            data[name] = (
                np.asarray(values, dtype=np.float64)
                if kind == "numeric"
                else np.asarray(values, dtype=object)
            )
        return pd.DataFrame(data, columns=self._names, copy=False)

    def frame_matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The same frame from any DataFrame holding the feature columns (others are dropped)."""
        out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
        for name, kind in zip(self._names, self._kinds, strict=True):
            column = frame[name]
            out[name] = (
                pd.to_numeric(column, errors="raise").to_numpy(dtype=np.float64)
                if kind == "numeric"
                else column.astype(str).to_numpy(dtype=object)
            )
        return out


def code_version(function: Callable[..., Any]) -> dict[str, str]:
    """Where ``function`` comes from: its module, the installed distribution's version (if
    any) and the sha256 of the module's source file (what changed, even uninstalled)."""
    module_name = getattr(function, "__module__", "") or ""
    out = {"module": module_name}
    top = module_name.split(".")[0]
    for distribution in metadata.packages_distributions().get(top, []):
        out["distribution"] = f"{distribution}=={metadata.version(distribution)}"
        break
    try:
        source = inspect.getsourcefile(function)
    except TypeError:
        source = None
    if source:
        out["source_sha256"] = hashlib.sha256(Path(source).read_bytes()).hexdigest()
    return out


@dataclass(frozen=True)
class TrainingCode:
    """The resolved ``[training]`` section: what to call to fit, with which parameters."""

    path: str
    kind: str  # "function" or "estimator"
    call: Callable[..., Any] = field(repr=False, compare=False)
    params: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_settings(cls, settings: TrainingSettings) -> TrainingCode | None:
        """None for driftloop's own model; raises :class:`ConfigError` for a path that does not import."""
        for kind in ("function", "estimator"):  # the settings allow one of them at most
            path = getattr(settings, kind)
            if path:
                return cls(path, kind, import_attribute(path, f"training.{kind}"), dict(settings.params))
        return None

    @functools.cached_property
    def version(self) -> dict[str, str]:
        """:func:`code_version` of the code, read once (the installed distributions take
        ~0.15 s to list, and every candidate of a retraining run records it)."""
        return code_version(self.call)

    def lineage(self) -> dict[str, Any]:
        return {self.kind: self.path, "params": self.params, "version": self.version}

    def fit(
        self,
        train: pd.DataFrame,
        spec: FeatureSpec,
        label_column: str,
        sample_weight: np.ndarray | None = None,
    ) -> tuple[Any, bool]:
        """The fitted classifier, checked (:func:`check_classifier`), and whether it used the weights."""
        weighted = sample_weight is not None and _takes(
            self.call if self.kind == "function" else None, "sample_weight"
        )
        features = FrameInput(spec).frame_matrix(train)
        labels = train[label_column].astype(int).to_numpy()
        try:
            if self.kind == "function":
                frame = features.assign(**{label_column: labels})
                extra = {"sample_weight": sample_weight} if weighted else {}
                model = self.call(frame, spec, label_column, dict(self.params), **extra)
            else:
                model = self.call(**self.params)
                weighted = sample_weight is not None and _fit_takes_weights(model)
                if weighted and sample_weight is not None:
                    model.fit(features, labels, **_weight_argument(model, sample_weight))
                else:
                    model.fit(features, labels)
        except Exception as exc:
            raise TrainingCodeError(f"{self.kind} {self.path} raised {type(exc).__name__}: {exc}") from exc
        check_classifier(model, spec, self.path)
        return model, weighted


def check_classifier(model: Any, spec: FeatureSpec, source: str) -> None:
    """Refuse what cannot score the spec's frame as a binary classifier, naming the problem."""
    name = type(model).__name__
    if not hasattr(model, "predict_proba"):
        raise TrainingCodeError(
            f"{source} returned a {name}, which has no predict_proba: a classifier is needed"
        )
    if getattr(model, "_estimator_type", None) == "regressor" or _tags_say(model, "regressor"):
        raise TrainingCodeError(f"{source} returned a regressor ({name}); a binary classifier is needed")
    classes = getattr(model, "classes_", None)
    if classes is None:
        raise TrainingCodeError(f"{source} returned a {name} that is not fitted (it has no classes_)")
    if [int(c) for c in np.asarray(classes).tolist()] != [0, 1]:
        raise TrainingCodeError(
            f"{source} returned a {name} that predicts the classes {np.asarray(classes).tolist()}, "
            "not the two classes 0 and 1"
        )
    names = getattr(model, "feature_names_in_", None)
    if names is not None and list(names) != list(spec.names):
        raise TrainingCodeError(
            f"{source} returned a {name} fitted on the columns {list(names)}, "
            f"not the feature spec's {list(spec.names)}"
        )


def _tags_say(model: Any, kind: str) -> bool:
    try:
        from sklearn.utils import get_tags

        return get_tags(model).estimator_type == kind
    except Exception:
        return False


def _takes(function: Callable[..., Any] | None, argument: str) -> bool:
    if function is None:
        return False
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return argument in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def _fit_takes_weights(model: Any) -> bool:
    if hasattr(model, "steps"):  # a Pipeline routes weights to its last step by name
        return _takes(getattr(model.steps[-1][1], "fit", None), "sample_weight")
    return _takes(getattr(model, "fit", None), "sample_weight")


def _weight_argument(model: Any, sample_weight: np.ndarray) -> dict[str, Any]:
    if hasattr(model, "steps"):
        return {f"{model.steps[-1][0]}__sample_weight": sample_weight}
    return {"sample_weight": sample_weight}
