"""The canary controller: its evidence (pure) and `driftloop canary` against the real broker.

The controller's input is the outcomes topic; the tests write Outcome events there as
`driftloop join` would (a Score and its Label), with a challenger that is better, worse, or
never labelled.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime

import numpy as np
import pytest

from streaming.canary.evidence import Tally, compare
from streaming.canary.service import CanaryService
from streaming.config import CanarySettings, Settings
from streaming.events import Label, ModelUpdate, Outcome, Score, encode_event
from streaming.kafka.publishing import publish_model_update
from tests.kafka_helpers import decode_all, produce, read_topic, running


def tallies(
    champion_noise: float, challenger_noise: float, n: int = 3000, seed: int = 0
) -> tuple[Tally, Tally]:
    rng = np.random.default_rng(seed)
    out = []
    for noise in (champion_noise, challenger_noise):
        tally = Tally()
        labels = rng.binomial(1, 0.1, n)
        scores = np.clip(labels * 0.8 + 0.1 + rng.normal(0, noise, n), 0, 1)
        for y, p in zip(labels.tolist(), scores.tolist(), strict=True):
            tally.add(p, y, p >= 0.5, 5.0)
        out.append(tally)
    return out[0], out[1]


@pytest.mark.parametrize(
    ("champion_noise", "challenger_noise", "verdict"),
    [(0.3, 0.1, "not_worse"), (0.1, 0.35, "worse"), (0.2, 0.2, "inconclusive")],
)
def test_the_evidence_decides_only_with_confidence(
    champion_noise: float, challenger_noise: float, verdict: str
) -> None:
    champion, challenger = tallies(champion_noise, challenger_noise)
    result = compare(champion, challenger, margin=0.0, confidence=0.95, latency_factor=2.0, min_labels=500)
    assert result.verdict == verdict, result
    assert result.evidence["challenger"]["labels"] == 3000


def test_too_few_labels_and_slow_challengers_are_caught() -> None:
    champion, challenger = tallies(0.3, 0.1, n=100)
    assert compare(
        champion, challenger, margin=0, confidence=0.95, latency_factor=2, min_labels=500
    ).verdict == ("too_few_labels")
    champion, challenger = tallies(0.3, 0.1)
    challenger.latency_sum_ms *= 3
    slow = compare(champion, challenger, margin=0, confidence=0.95, latency_factor=2, min_labels=500)
    assert slow.verdict == "worse" and "latency" in slow.reason


# -- with the broker ------------------------------------------------------------------------


def canary_settings(settings: Settings, **overrides: float) -> Settings:
    canary = CanarySettings(min_labels=300, evaluate_every_s=0.3, **overrides)  # type: ignore[arg-type]
    return settings.model_copy(update={"canary": canary})


def announce(settings: Settings, status: str, version: str, percent: float = 0.0) -> None:
    publish_model_update(
        settings,
        ModelUpdate(
            model_name="fraud",
            version=version,
            status=status,  # type: ignore[arg-type]
            traffic_percent=percent,
            champion_version="v1",
            created_at=datetime.now(UTC),
        ),
    )


_counter = iter(range(10**9))


def outcomes(settings: Settings, challenger_noise: float, n: int = 400, champion_noise: float = 0.25) -> None:
    """n outcomes (labelled scores) per role, scored now, as `driftloop join` writes them."""
    rng = np.random.default_rng(next(_counter))
    joined = []
    now = datetime.now(UTC)
    for role, version, noise in (("champion", "v1", champion_noise), ("challenger", "v2", challenger_noise)):
        truth = rng.binomial(1, 0.1, n)
        probability = np.clip(truth * 0.8 + 0.1 + rng.normal(0, noise, n), 0, 1)
        for y, p in zip(truth.tolist(), probability.tolist(), strict=True):
            tid = f"t-{next(_counter)}"
            score = Score(
                transaction_id=tid, account_id="a", model_name="fraud", model_version=version, role=role,  # type: ignore[arg-type]
                score=p, threshold=0.5, decision=p >= 0.5, event_time=now, scored_at=now, latency_ms=5.0,
            )  # fmt: skip
            outcome = Outcome.of(score, Label(transaction_id=tid, label=y, label_time=now))
            joined.append((score.account_id.encode(), encode_event(outcome)))
    produce(settings, settings.topics.outcomes, joined)


def decisions(settings: Settings, count: int, timeout_s: float = 60) -> list[ModelUpdate]:
    def made(records: list) -> bool:  # type: ignore[type-arg]
        return sum(1 for u in decode_all(records, ModelUpdate) if u.reasons) >= count

    records = read_topic(settings, settings.topics.model_updates, made, timeout_s)
    return [u for u in decode_all(records, ModelUpdate) if u.reasons]


def controller(settings: Settings) -> AbstractContextManager[CanaryService]:
    return running(CanaryService(settings))


def step_through(
    settings: Settings, challenger_noise: float, until: Callable[[list[ModelUpdate]], bool]
) -> list[ModelUpdate]:
    made: list[ModelUpdate] = []
    for _ in range(8):
        made = decisions(settings, len(made) + 1)
        if until(made):
            return made
        outcomes(settings, challenger_noise)
    return made


@pytest.mark.integration
def test_a_better_challenger_is_promoted_through_every_step(driftloop_settings: Settings) -> None:
    settings = canary_settings(driftloop_settings)
    announce(settings, "champion", "v1", 100)
    announce(settings, "challenger", "v2", 0)
    with controller(settings):
        made = step_through(settings, 0.05, lambda us: us[-1].status in ("promoted", "rolled_back"))
    assert [(u.status, u.traffic_percent) for u in made] == [
        ("canary_step", 5.0), ("canary_step", 25.0), ("canary_step", 50.0), ("promoted", 100.0),
    ]  # fmt: skip
    last = made[-1]
    assert last.champion_version == "v2" and last.evidence["challenger"]["labels"] >= 300
    assert last.evidence["brier_difference"] < 0


@pytest.mark.integration
def test_a_worse_challenger_is_rolled_back_and_traffic_returns_to_the_champion(
    driftloop_settings: Settings,
) -> None:
    from streaming.control.follower import current_plan

    settings = canary_settings(driftloop_settings)
    announce(settings, "champion", "v1", 100)
    announce(settings, "challenger", "v2", 0)
    with controller(settings):
        made = step_through(settings, 0.45, lambda us: us[-1].status in ("promoted", "rolled_back"))
    assert [u.status for u in made] == ["canary_step", "rolled_back"]
    assert made[-1].evidence["verdict"] == "worse"
    plan = current_plan(settings)
    assert (plan.champion, plan.challenger) == ("v1", None)


@pytest.mark.integration
def test_a_challenger_that_never_gathers_labels_times_out(driftloop_settings: Settings) -> None:
    settings = canary_settings(driftloop_settings, step_timeout_s=3)
    announce(settings, "champion", "v1", 100)
    announce(settings, "challenger", "v2", 0)
    with controller(settings):
        made = decisions(settings, 2)
    assert [u.status for u in made] == ["canary_step", "rolled_back"]
    assert made[-1].reasons[0].startswith("timeout")


@pytest.mark.integration
def test_a_restarted_controller_continues_the_same_canary(driftloop_settings: Settings) -> None:
    settings = canary_settings(driftloop_settings)
    announce(settings, "champion", "v1", 100)
    announce(settings, "challenger", "v2", 0)
    with controller(settings):
        made = step_through(settings, 0.05, lambda us: len(us) >= 2)  # at 25%
    assert made[-1].traffic_percent == 25.0
    outcomes(settings, 0.05)  # the step's evidence arrives while no controller runs
    with controller(settings) as restarted:
        made = decisions(settings, 3)
    # Read once the controller has stopped: it applies a decision after publishing it, so
    # the topic can show the decision a moment before the controller's state does.
    assert restarted.controller.state.percent == 50.0
    assert [u.traffic_percent for u in made] == [5.0, 25.0, 50.0]
