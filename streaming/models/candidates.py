"""Candidate selection by evidence: several training windows, one recent holdout, the best wins.

After a drift it is not known in advance which rows make the best next model: only those
since the drift (the new concept, but few rows), the most recent ones (more rows, some of
them from before the drift), or all of history with the recent rows weighing more (most
rows, the old concept fading). So the retraining flow and the backtest's ``--retrain`` both
train one candidate per window and let the newest labelled rows decide:

- the *holdout* is the newest ``holdout_fraction`` of the rows since the drift's start (when
  it is known and at least ``2 × min_candidate_rows`` rows are that new: the judge is the new
  concept), else of all the labelled rows: no candidate trains on it, every candidate and the
  champion are judged on it;
- ``since_drift``: the rows from the drift's start to the holdout;
- ``recent``: the newest ``recent_rows`` rows before the holdout;
- ``history``: every row before the holdout, a row's weight halving every
  ``half_life_rows`` rows back (or every as many rows as have come since the drift, when
  fewer: the new concept weighs at least as much as all the old one);
- a window no bigger than ``min_candidate_rows``, with one class only, or the same rows as a
  window already tried, yields no candidate (and says why).

The judge is the decision policy's own objective on the holdout: for ``cost`` the least cost
per transaction any threshold reaches, for ``budget`` the share of the fraud caught at the
alert budget, for ``fixed`` the cost at the fixed threshold; ROC AUC breaks ties. The
champion is scored the same way on the same rows, so "the champion still has to be beaten"
(:mod:`streaming.models.validation`) compares like with like. The winner's threshold,
calibration, reference profile and metrics come from the holdout (:func:`.training.assess`),
and every candidate's window, rows and scores go into its manifest's lineage.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from streaming.config import DecisionSettings, RetrainingSettings
from streaming.errors import TrainingError
from streaming.features import FeatureSpec
from streaming.models.decision import choose_rule
from streaming.models.training import (
    TrainedModel,
    TrainingParams,
    assess,
    classification_metrics,
    fit_classifier,
)


@dataclass
class Candidate:
    """One training window and how its model did on the holdout."""

    name: str
    first_row: int  # of the labelled rows, in time order
    last_row: int
    rows: int
    half_life_rows: int | None = None
    start: str | None = None  # event time of the first and last row, when the rows have one
    end: str | None = None
    holdout: dict[str, float] = field(default_factory=dict)  # objective, roc_auc, log_loss, ...
    skipped: str | None = None  # why no model was trained on it

    @property
    def objective(self) -> float:
        return self.holdout.get("objective", math.nan)


@dataclass
class Selection:
    """The winner (None when no window yielded a model), and the evidence behind the choice."""

    winner: TrainedModel | None
    winner_name: str | None
    candidates: list[Candidate]
    objective: str  # what "objective" measures, e.g. "cost_per_row (lower is better)"
    holdout_rows: int
    holdout_positives: int
    champion: dict[str, float] | None = None  # the champion's figures on the same holdout
    #: Labelled rows since the drift's start (None: the start is not known). Fewer than twice
    #: ``min_candidate_rows`` and the holdout is not the new concept: the validation waits.
    rows_since_drift: int | None = None
    #: The winner's decisions against the champion's on the same holdout rows, paired.
    versus_champion: dict[str, float] | None = None

    def lineage(self) -> dict[str, Any]:
        """What the manifest records: every candidate's window, rows and scores."""
        return {
            "winner": self.winner_name,
            "objective": self.objective,
            "holdout_rows": self.holdout_rows,
            "holdout_positives": self.holdout_positives,
            "rows_since_drift": self.rows_since_drift,
            "versus_champion": self.versus_champion,
            "candidates": [asdict(c) for c in self.candidates],
            "champion": self.champion,
        }


def select_candidate(
    labelled: pd.DataFrame,
    spec: FeatureSpec,
    label_column: str,
    params: TrainingParams,
    decision: DecisionSettings,
    settings: RetrainingSettings,
    drift_start_row: int | None = None,
    champion_scores: Any = None,
    time_column: str | None = "event_time",
    champion_threshold: float | None = None,
) -> Selection:
    """Train the candidates on ``labelled`` (oldest first; features, ``label_column`` 0/1) and
    keep the one that does best on its newest rows. ``drift_start_row`` is the first row at or
    after the drift's start; ``champion_scores(frame) -> scores`` scores the holdout with the
    champion (deciding at ``champion_threshold``, its own), whose figures then ride along, with
    the paired comparison of its decisions and the winner's (:func:`paired_difference`)."""
    n = len(labelled)
    since = None if drift_start_row is None else min(max(0, drift_start_row), n)
    # Judge on the new concept when there is enough of it: the newest share of the rows since
    # the drift (the rest of them train the since_drift candidate); else on the newest rows.
    judged = n - since if since is not None and n - since >= 2 * settings.min_candidate_rows else n
    holdout_rows = max(1, round(judged * settings.holdout_fraction))
    pool, holdout = labelled.iloc[: n - holdout_rows], labelled.iloc[n - holdout_rows :]
    labels = holdout[label_column].astype(int).to_numpy()
    better = _better(decision)
    candidates: list[Candidate] = []
    models: dict[str, TrainedModel] = {}
    seen: set[tuple[int, int, int | None]] = set()
    for name, first, half_life in _windows(len(pool), since, settings):
        candidate = _describe(name, pool, first, half_life, time_column)
        candidates.append(candidate)
        key = (candidate.first_row, candidate.last_row, half_life)
        if key in seen:
            candidate.skipped = "the same rows as a window tried already"
            continue
        seen.add(key)
        model = _fit(candidate, pool.iloc[first:], spec, label_column, params, settings)
        if model is not None:
            candidate.holdout = judge(
                model.predict_proba(model.encoder.frame_matrix(holdout)), labels, decision
            )
            models[name] = model
    tried = [c for c in candidates if c.name in models]
    winner_name = None
    if tried:
        best = tried[0]
        for candidate in tried[1:]:
            if better(candidate.holdout, best.holdout):
                best = candidate
        winner_name = best.name
    champion = versus = None
    winner = assess(models[winner_name], holdout, label_column, decision) if winner_name else None
    if champion_scores is not None:
        theirs = np.asarray(champion_scores(holdout), dtype=np.float64)
        champion = judge(theirs, labels, decision, threshold=champion_threshold)
        if winner is not None:
            ours = winner.predict_proba(winner.encoder.frame_matrix(holdout))
            versus = paired_difference(
                ours,
                winner.threshold,
                theirs,
                champion["threshold"],
                labels,
                decision,
                settings.champion_confidence,
            )
    return Selection(
        winner,
        winner_name,
        candidates,
        _objective_name(decision),
        holdout_rows,
        int(labels.sum()),
        champion,
        rows_since_drift=None if since is None else n - since,
        versus_champion=versus,
    )


def _fit(
    candidate: Candidate,
    window: pd.DataFrame,
    spec: FeatureSpec,
    label_column: str,
    params: TrainingParams,
    settings: RetrainingSettings,
) -> TrainedModel | None:
    """The candidate's model, or None with the reason in ``candidate.skipped``."""
    if len(window) < settings.min_candidate_rows:
        candidate.skipped = f"{len(window)} labelled rows, fewer than {settings.min_candidate_rows}"
        return None
    if window[label_column].nunique() < 2:
        candidate.skipped = "one class only"
        return None
    weights = None
    if candidate.half_life_rows is not None:
        age = np.arange(len(window) - 1, -1, -1, dtype=np.float64)
        weights = 0.5 ** (age / candidate.half_life_rows)
    try:
        return fit_classifier(window, spec, label_column, params, weights)
    except TrainingError as exc:
        candidate.skipped = str(exc)
        return None


def judge(
    scores: np.ndarray, labels: np.ndarray, decision: DecisionSettings, threshold: float | None = None
) -> dict[str, float]:
    """A model's figures on holdout rows, deciding at ``threshold`` (its own, for the champion)
    or at the threshold its decision rule chooses there; ``objective`` is what the selection
    compares."""
    figures = classification_metrics(labels, scores, decision.alert_budget)
    figures.pop("rows", None)  # the holdout's, the same for every model judged
    rule = choose_rule(
        scores,
        labels,
        "fixed" if threshold is not None else decision.policy,
        fp_cost=decision.fp_cost,
        fn_cost=decision.fn_cost,
        alert_budget=decision.alert_budget,
        threshold=threshold if threshold is not None else decision.threshold,
    )
    figures.update(
        threshold=rule.threshold,
        cost_per_row=rule.holdout_cost_per_row,
        flagged_share=rule.holdout_flagged_share,
        recall_at_threshold=rule.holdout_recall,
    )
    figures["objective"] = (
        figures.get("recall_at_budget", 0.0) if decision.policy == "budget" else rule.holdout_cost_per_row
    )
    return figures


def beats(candidate: dict[str, float], champion: dict[str, float], decision: DecisionSettings) -> bool:
    """Whether the candidate's objective on the holdout is at least as good as the champion's."""
    if decision.policy == "budget":
        return candidate["objective"] >= champion["objective"]
    return candidate["objective"] <= champion["objective"]


def paired_difference(
    ours: np.ndarray,
    our_threshold: float,
    theirs: np.ndarray,
    their_threshold: float,
    labels: np.ndarray,
    decision: DecisionSettings,
    confidence: float,
) -> dict[str, float]:
    """The winner against the champion, row by row on the same holdout: for ``budget`` the
    share of the frauds the winner flags at the alert budget and the champion does not, minus
    the other way round (its ``bound``: the lower confidence bound, above 0 when the winner is
    clearly better); otherwise the difference in the cost of the two models' decisions per
    transaction (its ``bound``: the upper confidence bound, below 0 when the winner is clearly
    cheaper). One-sided, at ``confidence``, on the rows' paired differences."""
    y = np.asarray(labels).astype(bool)
    if decision.policy == "budget":
        k = max(1, round(len(y) * decision.alert_budget))
        mine, other = np.zeros(len(y), dtype=bool), np.zeros(len(y), dtype=bool)
        mine[np.argsort(-ours, kind="stable")[:k]] = True
        other[np.argsort(-theirs, kind="stable")[:k]] = True
        differences = (mine[y].astype(float) - other[y].astype(float)) if y.any() else np.zeros(1)
        sign = -1.0
    else:

        def cost(flags: np.ndarray) -> np.ndarray:
            return np.where(flags & ~y, decision.fp_cost, 0.0) + np.where(~flags & y, decision.fn_cost, 0.0)

        differences = cost(ours >= our_threshold) - cost(theirs >= their_threshold)
        sign = 1.0
    mean = float(differences.mean())
    spread = (
        float(differences.std(ddof=1)) / math.sqrt(len(differences)) if len(differences) > 1 else math.inf
    )
    z = float(stats.norm.ppf(confidence))
    return {
        "difference": mean,
        "bound": mean + sign * z * spread,
        "confidence": confidence,
        "rows": float(len(differences)),
    }


def _better(decision: DecisionSettings) -> Any:
    def better(a: dict[str, float], b: dict[str, float]) -> bool:
        if a["objective"] != b["objective"]:
            return beats(a, b, decision)
        return a.get("roc_auc", 0.0) > b.get("roc_auc", 0.0)

    return better


def _objective_name(decision: DecisionSettings) -> str:
    if decision.policy == "budget":
        return f"recall at the {decision.alert_budget:.2%} alert budget (higher is better)"
    what = "the least cost per transaction" if decision.policy == "cost" else "cost per transaction"
    return f"{what} (fp_cost {decision.fp_cost:g}, fn_cost {decision.fn_cost:g}; lower is better)"


def _windows(
    pool_rows: int, drift_start_row: int | None, settings: RetrainingSettings
) -> list[tuple[str, int, int | None]]:
    """(name, first row, half-life) of each training window over the rows before the holdout."""
    windows: list[tuple[str, int, int | None]] = []
    half_life = settings.half_life_rows
    if drift_start_row is not None:
        first = min(drift_start_row, pool_rows)
        windows.append(("since_drift", first, None))
        # Since the drift as much weight as all of history before it, or more.
        half_life = min(half_life, max(settings.min_candidate_rows, pool_rows - first))
    windows.append(("recent", max(0, pool_rows - settings.recent_rows), None))
    windows.append(("history", 0, half_life))
    return windows


def _describe(
    name: str, pool: pd.DataFrame, first: int, half_life: int | None, time_column: str | None
) -> Candidate:
    candidate = Candidate(name, first, len(pool) - 1, len(pool) - first, half_life)
    if time_column is not None and time_column in pool.columns and len(pool) > first:
        candidate.start = str(pool[time_column].iloc[first])
        candidate.end = str(pool[time_column].iloc[-1])
    return candidate
