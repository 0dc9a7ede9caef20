"""Candidate selection by evidence: the retraining flow's and the backtest's shared choice."""

from __future__ import annotations

from functools import cache

import pandas as pd

from streaming.config import DecisionSettings, RetrainingSettings, Settings
from streaming.models.candidates import select_candidate
from streaming.models.training import TrainedModel, TrainingParams, train_classifier
from streaming.models.validation import validate_candidate
from streaming.simulation.generator import SCENARIOS, TransactionSimulator

SPEC = Settings().feature_spec()
PARAMS = TrainingParams(max_iter=30, min_rows=200)
DECISION = DecisionSettings(policy="cost", fp_cost=1.0, fn_cost=5.0)
SETTINGS = RetrainingSettings(min_rows=500)


@cache
def stream() -> tuple[pd.DataFrame, int, TrainedModel]:
    """12,000 transactions of the old fraud pattern, then 8,000 of a new one; a champion of the old."""
    simulator = TransactionSimulator(seed=31)
    history = simulator.generate(6000)
    champion = train_classifier(history, SPEC, params=PARAMS, decision=DECISION)
    before, after = simulator.generate(12_000), simulator.generate(8000, SCENARIOS["concept"])
    return pd.concat([before, after], ignore_index=True), len(before), champion


def champion_scores(model: TrainedModel):  # type: ignore[no-untyped-def]
    return lambda rows: model.predict_proba(model.encoder.frame_matrix(rows))


def test_after_a_new_fraud_pattern_the_window_since_the_drift_beats_the_champion_on_the_newest_rows() -> None:
    frame, onset, champion = stream()
    selection = select_candidate(
        frame,
        SPEC,
        "label",
        PARAMS,
        DECISION,
        SETTINGS,
        drift_start_row=onset,
        champion_scores=champion_scores(champion),
    )
    names = [c.name for c in selection.candidates]
    assert names == ["since_drift", "recent", "history"]
    assert not any(c.skipped for c in selection.candidates)
    # The holdout is the newest fifth of the rows since the drift: the new concept judges.
    assert selection.holdout_rows == 1600 and selection.champion is not None
    since = selection.candidates[0]
    assert (since.first_row, since.rows) == (onset, 8000 - 1600)
    objectives = {c.name: c.objective for c in selection.candidates}
    assert selection.winner_name == min(objectives, key=objectives.__getitem__)
    assert selection.winner_name != "recent" or objectives["recent"] < objectives["since_drift"]
    assert min(objectives.values()) < selection.champion["objective"], (objectives, selection.champion)
    verdict = validate_candidate(selection, SETTINGS, DECISION)
    assert verdict.passed, verdict.reasons
    winner = selection.winner
    assert winner is not None and winner.decision is not None and winner.calibration is not None
    assert winner.decision.holdout_rows == 1600, "its threshold comes from the holdout"
    lineage = selection.lineage()
    assert [c["name"] for c in lineage["candidates"]] == names and lineage["winner"] == selection.winner_name
    assert all({"objective", "roc_auc", "threshold"} <= set(c["holdout"]) for c in lineage["candidates"])


def test_a_candidate_that_does_not_beat_the_champion_is_rejected_with_the_figures() -> None:
    frame, onset, champion = stream()
    unchanged = frame.iloc[:onset]  # no drift at all: the champion is as good as it gets
    selection = select_candidate(
        unchanged, SPEC, "label", TrainingParams(max_iter=3, min_rows=200), DECISION, SETTINGS,
        champion_scores=champion_scores(champion),
    )  # fmt: skip
    verdict = validate_candidate(selection, SETTINGS, DECISION)
    assert not verdict.passed
    assert any("not clearly better than the champion" in r for r in verdict.reasons), verdict.reasons
    assert not verdict.labels_pending  # more labels would not change it: the cooldown applies


def test_windows_too_small_or_of_one_class_are_skipped_and_too_few_frauds_to_judge_is_a_rejection() -> None:
    frame, onset, _ = stream()
    recent = frame.iloc[onset - 1000 : onset + 400]
    selection = select_candidate(recent, SPEC, "label", PARAMS, DECISION, SETTINGS, drift_start_row=1000)
    since = selection.candidates[0]
    assert since.name == "since_drift" and since.skipped is not None and "fewer than 300" in since.skipped
    assert (
        selection.candidates[2].skipped == "the same rows as a window tried already"
        or selection.candidates[2].holdout
    )
    verdict = validate_candidate(selection, SETTINGS, DECISION)
    assert any("labelled frauds among the" in r for r in verdict.reasons), verdict.reasons
    assert verdict.evidence()["labels_pending"], verdict.reasons  # only labels were missing: retry later
    legit = frame[frame["label"] == 0].iloc[:2000]
    lonely = select_candidate(legit, SPEC, "label", PARAMS, DECISION, SETTINGS)
    assert lonely.winner is None and all(c.skipped == "one class only" for c in lonely.candidates)
    assert "no candidate could be trained" in validate_candidate(lonely, SETTINGS, DECISION).reasons[0]


def test_a_champion_that_got_worse_needs_only_matching_while_one_whose_inputs_moved_needs_beating() -> None:
    """Error, label or performance drift: the winner need only not be worse than the champion.
    Covariate drift alone: the champion may still be right, the winner must be clearly better."""
    frame, onset, champion = stream()
    selection = select_candidate(
        frame, SPEC, "label", PARAMS, DECISION, SETTINGS,
        drift_start_row=onset, champion_scores=champion_scores(champion),
    )  # fmt: skip
    assert selection.versus_champion is not None
    # A winner a hair cheaper than the champion, within the noise of the holdout:
    selection.versus_champion.update(difference=-0.0005, bound=0.002, confidence=0.9)
    inputs_moved = validate_candidate(selection, SETTINGS, DECISION, champion_degraded=False)
    assert any("not clearly better than the champion" in r for r in inputs_moved.reasons), (
        inputs_moved.reasons
    )
    got_worse = validate_candidate(selection, SETTINGS, DECISION, champion_degraded=True)
    assert got_worse.passed, got_worse.reasons
    # ... and one a hair dearer is refused either way.
    selection.versus_champion.update(difference=0.0005)
    refused = validate_candidate(selection, SETTINGS, DECISION, champion_degraded=True)
    assert any("worse than the champion" in r for r in refused.reasons), refused.reasons
