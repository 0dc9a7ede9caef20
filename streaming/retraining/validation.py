"""Is a candidate good enough to become a challenger? Data checks, holdout bars, the champion.

Pure: the flow hands in the training rows, the trained candidate and the loaded champion.
The candidate's holdout is the newest ``holdout_fraction`` of the rows (time order kept by
the training code); the champion is scored on exactly those rows, so both are judged on
the same recent labelled window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from streaming.config import RetrainingSettings
from streaming.errors import TrainingError
from streaming.features import FeatureSpec
from streaming.models.registry import LoadedModel
from streaming.models.training import TrainedModel, check_training_frame, classification_metrics


@dataclass
class Validation:
    """The verdict, its reasons (empty when it passed) and the figures behind it."""

    reasons: list[str] = field(default_factory=list)
    candidate: dict[str, float] = field(default_factory=dict)
    champion: dict[str, float] = field(default_factory=dict)
    champion_version: str | None = None

    @property
    def passed(self) -> bool:
        return not self.reasons

    def evidence(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "champion": self.champion,
            "champion_version": self.champion_version,
            "reasons": self.reasons,
        }


def check_window(frame: pd.DataFrame, spec: FeatureSpec, settings: RetrainingSettings) -> list[str]:
    """Data checks before training: schema, nulls, minimum rows, both classes."""
    try:
        check_training_frame(frame, spec, "label", settings.min_rows)
    except TrainingError as exc:
        return [f"data: {exc}"]
    nulls = [name for name in spec.categorical if frame[name].isna().any()]
    if nulls:
        return [f"data: missing values in {', '.join(nulls)}"]
    return []


def validate_candidate(
    candidate: TrainedModel,
    frame: pd.DataFrame,
    champion: LoadedModel | None,
    settings: RetrainingSettings,
) -> Validation:
    """Holdout bars from configuration, then no worse than the champion on the same rows."""
    verdict = Validation(candidate=dict(candidate.metrics))
    metrics = candidate.metrics
    auc = metrics.get("roc_auc", math.nan)
    if not auc >= settings.min_roc_auc:
        verdict.reasons.append(f"holdout ROC AUC {auc:.4f} is below {settings.min_roc_auc}")
    precision = metrics.get("precision_at_budget", math.nan)
    if not precision >= settings.min_precision_at_budget:
        verdict.reasons.append(
            f"holdout precision at the {settings.alert_budget:.0%} budget {precision:.4f} "
            f"is below {settings.min_precision_at_budget}"
        )
    loss = metrics.get("log_loss", math.nan)
    if not loss <= settings.max_log_loss:
        verdict.reasons.append(f"holdout log loss {loss:.4f} is above {settings.max_log_loss}")
    if champion is not None:
        cut = int(len(frame) * (1 - candidate.params.holdout_fraction))
        holdout = frame.iloc[cut:]
        y = holdout["label"].astype(int).to_numpy()
        scores = champion.predict_proba(champion.encoder.frame_matrix(holdout))
        verdict.champion = classification_metrics(y, scores, settings.alert_budget)
        verdict.champion_version = champion.version
        champion_auc = verdict.champion.get("roc_auc", math.nan)
        if auc < champion_auc - settings.champion_margin:
            verdict.reasons.append(
                f"ROC AUC {auc:.4f} trails champion {champion.version}'s {champion_auc:.4f} on the same "
                f"{len(holdout)} rows by more than {settings.champion_margin}"
            )
    return verdict
