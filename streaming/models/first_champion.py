"""`driftloop train`: train a first champion from a file, register it, publish it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from streaming.config import Settings
from streaming.errors import TrainingError
from streaming.models.registry import ModelManifest, ModelRegistry
from streaming.models.training import TrainingParams, train_classifier
from streaming.models.user_code import TrainingCode


def training_params(settings: Settings, **overrides: object) -> TrainingParams:
    """The training parameters of the configuration: driftloop's trees, or the team's own
    code from ``[training]`` (imported here: a path that does not import is a ConfigError)."""
    return TrainingParams(code=TrainingCode.from_settings(settings.training), **overrides)  # type: ignore[arg-type]


def read_table(path: Path) -> pd.DataFrame:
    """A CSV or Parquet file as a DataFrame; a clear error for anything else."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise TrainingError(f"{path} does not exist")
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise TrainingError(f"cannot read {path}: {exc}") from exc
    raise TrainingError(f"{path}: expected a .csv or .parquet file")


def train_and_register(
    settings: Settings,
    frame: pd.DataFrame,
    *,
    label_column: str = "label",
    threshold: float | None = None,
    source: str = "",
    params: TrainingParams | None = None,
) -> ModelManifest:
    """Train on ``frame`` with the configured feature spec and register a signed version; its
    threshold is ``threshold`` if given, else the one the `decision` policy chose on the holdout.
    Without ``params``, the configuration's (:func:`training_params`)."""
    params = params or training_params(settings)
    model = train_classifier(frame, settings.feature_spec(), label_column, params, settings.decision)
    registry = open_registry(settings)
    lineage = {
        "source": source,
        "rows": len(frame),
        "label_column": label_column,
        "trained_at": datetime.now(UTC).isoformat(),
    }
    return registry.register(settings.model_name, model, threshold=threshold, lineage=lineage)


def open_registry(settings: Settings) -> ModelRegistry:
    return ModelRegistry.open(settings.registry_path, _key(settings), tuple(settings.training.trusted_types))


def _key(settings: Settings) -> str | None:
    key = settings.registry.signing_key
    return key.get_secret_value() if key is not None else None
