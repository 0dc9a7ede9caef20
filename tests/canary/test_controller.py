"""The canary steps and the trigger's hold during a canary, driven without Kafka."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from streaming.canary.controller import CanaryController
from streaming.config import CanarySettings, DecisionSettings, Settings
from streaming.control.updates import challenger_update, champion_update
from streaming.events import DriftEvent, ModelUpdate, encode_event
from streaming.models.registry import ModelManifest
from streaming.retraining.trigger import RetrainTrigger

START = datetime(2026, 1, 1, tzinfo=UTC)


def manifest(version: str) -> ModelManifest:
    return ModelManifest(
        name="fraud",
        version=version,
        created_at=START,
        sha256="0" * 64,
        feature_spec={"amount": "numeric"},
        vocabulary={},
        threshold=0.5,
    )


def controller(**overrides: Any) -> CanaryController:
    settings = CanarySettings(**{"schedule": [5, 25, 50, 100], "min_labels": 200, **overrides})
    canary = CanaryController(settings, "fraud")
    canary.on_update(champion_update(manifest("v1")))
    canary.on_update(challenger_update(manifest("v2"), "v1", "evt-1", {}))
    return canary


def labelled(canary: CanaryController, challenger_auc_drop: float, n: int = 2000, seed: int = 0) -> None:
    """``n`` labelled scores per role, made after the step began."""
    rng = np.random.default_rng(seed)
    at = (canary.state.step_started_at or START) + timedelta(seconds=1)
    for role, version, noise in (("champion", "v1", 0.15), ("challenger", "v2", 0.15 + challenger_auc_drop)):
        labels = rng.binomial(1, 0.2, n)
        scores = np.clip(labels * 0.6 + 0.2 + rng.normal(0, noise, n), 0, 1)
        for score, label in zip(scores, labels, strict=True):
            canary.on_outcome(role, version, float(score), int(label), bool(score > 0.5), 2.0, at)


def step(canary: CanaryController, now: datetime) -> ModelUpdate | None:
    decision = canary.decide(now)
    if decision is not None:
        canary.on_update(decision)  # as the service does: publish, then follow its own update
    return decision


def test_a_challenger_as_good_as_the_champion_walks_every_step_then_is_promoted() -> None:
    canary = controller()
    first = step(canary, START)
    assert first is not None and (first.status, first.traffic_percent) == ("canary_step", 5)
    seen = []
    for _ in range(3):
        labelled(canary, challenger_auc_drop=0.0, seed=len(seen))
        decision = step(canary, START + timedelta(minutes=5))
        assert decision is not None
        seen.append((decision.status, decision.traffic_percent))
    assert seen == [("canary_step", 25), ("canary_step", 50), ("promoted", 100)]
    assert canary.state.champion == "v2" and canary.state.challenger is None


def test_a_clearly_worse_challenger_is_rolled_back_at_its_first_step() -> None:
    canary = controller()
    step(canary, START)
    labelled(canary, challenger_auc_drop=0.6)
    decision = step(canary, START + timedelta(minutes=5))
    assert decision is not None and decision.status == "rolled_back"
    assert decision.champion_version == "v1" and canary.state.challenger is None
    assert decision.evidence["verdict"] == "worse"


def test_too_few_labels_hold_the_step_until_its_timeout_then_roll_back() -> None:
    canary = controller(step_timeout_s=600)
    step(canary, START)
    labelled(canary, challenger_auc_drop=0.0, n=50)
    began = canary.state.step_started_at
    assert began is not None
    assert step(canary, began + timedelta(seconds=599)) is None
    decision = step(canary, began + timedelta(seconds=601))
    assert decision is not None and decision.status == "rolled_back"
    assert decision.reasons[0].startswith("timeout")


def test_outcomes_from_before_the_step_or_from_other_versions_do_not_count() -> None:
    canary = controller()
    step(canary, START)
    early = (canary.state.step_started_at or START) - timedelta(seconds=1)
    canary.on_outcome("challenger", "v2", 0.9, 1, True, 2.0, early)
    canary.on_outcome("challenger", "v9", 0.9, 1, True, 2.0, START + timedelta(hours=1))
    assert all(tally.n == 0 for tally in canary.tallies.values())


class RecordingLauncher:
    def __init__(self) -> None:
        self.launched: list[str] = []

    def launch(self, event: DriftEvent) -> dict[str, Any]:
        self.launched.append(event.event_id)
        return {"mode": "test"}

    def close(self) -> None:
        pass


class Record:
    topic, partition, offset, key, timestamp = "drift.events", 0, 0, b"fraud", 0

    def __init__(self, value: bytes) -> None:
        self.value = value


def drift_record(event_id: str, signal: str, severity: str, at: datetime = START, **extra: Any) -> Record:
    """A drift event of model v1 on ``drift.events``, as the trigger reads it."""
    event = DriftEvent(
        event_id=event_id,
        model_name="fraud",
        model_version="v1",
        signal=signal,
        detector="adwin",
        severity=severity,
        detected_at=at,
        **extra,
    )
    return Record(encode_event(event))


def test_the_trigger_holds_drift_events_while_a_challenger_is_in_its_canary(tmp_path: Any) -> None:

    launcher = RecordingLauncher()
    trigger = RetrainTrigger(Settings(home=tmp_path), launcher)
    trigger._learn([champion_update(manifest("v1")), challenger_update(manifest("v2"), "v1", "evt-0", {})])
    trigger._handle(drift_record("evt-1", "feature", "high"), producer=None)
    assert launcher.launched == []
    assert trigger.started == []


def test_a_challenger_whose_decisions_cost_more_is_rolled_back_though_it_errs_less_often() -> None:
    """Missed frauds cost 10 false alerts: the challenger alerts less (fewer errors in all)
    but misses more fraud, so its decisions cost more."""
    canary = CanaryController(
        CanarySettings(schedule=[5, 25, 50, 100], min_labels=200),
        "fraud",
        DecisionSettings(fp_cost=1.0, fn_cost=10.0),
    )
    canary.on_update(champion_update(manifest("v1")))
    canary.on_update(challenger_update(manifest("v2"), "v1", "evt-1", {}))
    assert step(canary, START + timedelta(seconds=1)) is not None  # the first step: 5%
    rng = np.random.default_rng(4)
    at = (canary.state.step_started_at or START) + timedelta(seconds=1)
    for _ in range(4000):
        label = int(rng.random() < 0.05)
        # The champion flags every fraud and 8% of the rest; the challenger misses 30% of
        # the fraud and flags 2% of the rest.
        champion = bool(label) or rng.random() < 0.08
        challenger = (bool(label) and rng.random() > 0.3) or (not label and rng.random() < 0.02)
        canary.on_outcome("champion", "v1", 0.5, label, champion, 2.0, at)
        canary.on_outcome("challenger", "v2", 0.5, label, challenger, 2.0, at)
    champion_tally, challenger_tally = canary.tallies["champion"], canary.tallies["challenger"]
    assert challenger_tally.error_rate < champion_tally.error_rate
    assert challenger_tally.cost > champion_tally.cost
    decision = step(canary, at + timedelta(seconds=1))
    assert decision is not None and decision.status == "rolled_back", decision
    assert any("cost" in r for r in decision.reasons), decision.reasons


def test_the_trigger_starts_nothing_for_a_resolved_drift_episode(tmp_path: Any) -> None:

    launcher = RecordingLauncher()
    trigger = RetrainTrigger(Settings(home=tmp_path), launcher)
    trigger._learn([champion_update(manifest("v1"))])
    resolved = drift_record(
        "evt-2", "error", "low", status="resolved", episode_id="evt-1", resolution="back_in_band"
    )
    trigger._handle(resolved, producer=None)
    assert launcher.launched == [] and trigger.started == []


def test_a_run_rejected_for_labels_still_to_come_is_retried_sooner_than_the_cooldown(tmp_path: Any) -> None:
    """Too few labelled frauds to judge: the drift is still unanswered, so an ongoing report
    after ``labels_pending_retry_s`` starts another run; any other rejection waits out the
    cooldown."""
    from streaming.config import TriggerSettings
    from streaming.control.updates import run_ended_update, started_update

    def ongoing(event_id: str, seconds: float) -> Record:
        at = START + timedelta(seconds=seconds)
        return drift_record(event_id, "error", "high", at, status="ongoing", episode_id="evt-0")

    for labels_pending, retried in ((True, ["evt-1"]), (False, [])):
        launcher = RecordingLauncher()
        settings = Settings(
            home=tmp_path, trigger=TriggerSettings(cooldown_s=3600, labels_pending_retry_s=60)
        )
        trigger = RetrainTrigger(settings, launcher)
        rejected = run_ended_update(
            "fraud",
            "rejected",
            "v1",
            "evt-0",
            ["18 labelled frauds among the 3000 newest rows, fewer than the 20 needed"],
            {"validation": {"labels_pending": labels_pending}},
        )
        trigger._learn(
            [
                champion_update(manifest("v1")),
                started_update("fraud", "evt-0", {"detected_at": START.isoformat()}, "v1"),
                rejected,
            ]
        )
        trigger._handle(ongoing("evt-early", 30), producer=None)  # within the retry wait
        trigger._handle(ongoing("evt-1", 90), producer=None)
        assert launcher.launched == retried, (labels_pending, launcher.launched)
