"""Is the selected candidate good enough to become a challenger? Data checks, holdout bars,
the champion.

Pure: the flow hands in the training rows and the :class:`~streaming.models.candidates.
Selection`, in which every candidate and the champion were judged on the same newest
labelled rows (the holdout), so the comparison with the champion is like with like.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from streaming.config import DecisionSettings, RetrainingSettings
from streaming.errors import TrainingError
from streaming.features import FeatureSpec
from streaming.models.candidates import Selection
from streaming.models.training import check_training_frame

#: Drift signals that say the champion itself got worse (not only that its inputs moved).
DEGRADED_SIGNALS = frozenset({"error", "label", "performance"})


@dataclass
class Validation:
    """The verdict, its reasons (empty when it passed) and the figures behind it."""

    reasons: list[str] = field(default_factory=list)
    #: The reasons that only say labels are still to come (too few since the drift began, too
    #: few frauds in the holdout): more time, not another model, may answer them.
    waiting_for_labels: list[str] = field(default_factory=list)
    candidate: dict[str, float] = field(default_factory=dict)
    champion: dict[str, float] = field(default_factory=dict)
    champion_version: str | None = None

    @property
    def passed(self) -> bool:
        return not self.reasons

    @property
    def labels_pending(self) -> bool:
        """Rejected only for labels still to come: a retry once more have come may pass."""
        return bool(self.reasons) and all(r in self.waiting_for_labels for r in self.reasons)

    def evidence(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "champion": self.champion,
            "champion_version": self.champion_version,
            "reasons": self.reasons,
            "labels_pending": self.labels_pending,
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
    selection: Selection,
    settings: RetrainingSettings,
    decision: DecisionSettings,
    champion_degraded: bool = False,
) -> Validation:
    """The selection's winner against the holdout bars from configuration, then against the
    champion on the same holdout, row by row (:func:`~streaming.models.candidates.
    paired_difference`). When the drift says the champion itself got worse
    (``champion_degraded``: its errors, its labels' rate or its estimated performance moved),
    the winner must do at least as well as it there; when only the inputs moved, the champion
    may still be right, and the winner must be *clearly* better (at
    ``retraining.champion_confidence``). Its ROC AUC may trail the champion's by at most
    ``champion_margin``."""
    winner = selection.winner
    if winner is None:
        skipped = "; ".join(f"{c.name}: {c.skipped}" for c in selection.candidates if c.skipped)
        return Validation(reasons=[f"no candidate could be trained ({skipped})"])
    verdict = Validation(candidate=dict(winner.metrics))
    since = selection.rows_since_drift
    if since is not None and since < 2 * settings.min_candidate_rows:
        verdict.waiting_for_labels.append(
            f"{since} labelled rows since the drift began, fewer than the {2 * settings.min_candidate_rows} "
            "needed to judge the candidates on the new concept (labels still to come)"
        )
    if selection.holdout_positives < settings.min_holdout_positives:
        verdict.waiting_for_labels.append(
            f"{selection.holdout_positives} labelled frauds among the {selection.holdout_rows} newest rows, "
            f"fewer than the {settings.min_holdout_positives} needed to judge a candidate (labels still to come)"
        )
    verdict.reasons.extend(verdict.waiting_for_labels)
    metrics = winner.metrics
    auc = metrics.get("roc_auc", math.nan)
    if not auc >= settings.min_roc_auc:
        verdict.reasons.append(f"holdout ROC AUC {auc:.4f} is below {settings.min_roc_auc}")
    precision = metrics.get("precision_at_budget", math.nan)
    if not precision >= settings.min_precision_at_budget:
        verdict.reasons.append(
            f"holdout precision at the {decision.alert_budget:.0%} budget {precision:.4f} "
            f"is below {settings.min_precision_at_budget}"
        )
    loss = metrics.get("log_loss", math.nan)
    if not loss <= settings.max_log_loss:
        verdict.reasons.append(f"holdout log loss {loss:.4f} is above {settings.max_log_loss}")
    champion, versus = selection.champion, selection.versus_champion
    if champion is not None and versus is not None:
        verdict.champion = dict(champion)
        budget = decision.policy == "budget"
        if champion_degraded:  # the point estimate must not favour the champion
            enough = versus["difference"] >= 0 if budget else versus["difference"] <= 0
        else:  # its confidence bound must favour the winner
            enough = versus["bound"] > 0 if budget else versus["bound"] < 0
        if not enough:
            what = (
                "share of the fraud caught at the budget"
                if decision.policy == "budget"
                else "cost of the decisions per transaction"
            )
            verdict.reasons.append(
                f"{'worse than' if champion_degraded else 'not clearly better than'} the champion on the "
                f"same {selection.holdout_rows} newest rows: {what} {versus['difference']:+.4f} against it, "
                f"{versus['confidence']:.0%} bound {versus['bound']:+.4f}"
            )
        champion_auc = champion.get("roc_auc", math.nan)
        if auc < champion_auc - settings.champion_margin:
            verdict.reasons.append(
                f"ROC AUC {auc:.4f} trails the champion's {champion_auc:.4f} on the same "
                f"{selection.holdout_rows} rows by more than {settings.champion_margin}"
            )
    return verdict
