"""The drift monitors inside `driftloop score`, against the real broker."""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from streaming.config import Settings, TopicNames
from streaming.control.updates import champion_update
from streaming.events import DriftEvent, encode_event
from streaming.kafka.clients import ensure_topics
from streaming.kafka.publishing import publish_model_update
from streaming.models.first_champion import open_registry, train_and_register
from streaming.models.training import TrainingParams
from streaming.monitoring.service import DriftMonitor
from streaming.outcomes.service import JoinService
from streaming.simulation.generator import SCENARIOS, TransactionSimulator, to_labels, to_transactions
from streaming.topics import topic_catalogue
from tests.kafka_helpers import (
    decode_all,
    produce,
    read_topic,
    running,
    scorer_thread,
    start_scorer_process,
    wait_for_checkpoint,
)
from tests.waiting import eventually

pytestmark = pytest.mark.integration


def labels_monitored(monitor: DriftMonitor, partition: int = 0) -> int:
    """Outcomes (labelled predictions) the partition's label and error monitors have seen."""
    suite = monitor.suite(partition)
    return 0 if suite is None else suite.labelled


def publish_champion(settings: Settings, history: pd.DataFrame) -> None:
    manifest = train_and_register(settings, history, params=TrainingParams(max_iter=20))
    assert manifest.reference is not None
    publish_model_update(settings, champion_update(manifest))


def stream(settings: Settings, frame: pd.DataFrame) -> None:
    """The transactions, then their labels (keyed by transaction_id, as `driftloop join` needs)."""
    transactions = list(to_transactions(frame))
    produce(
        settings,
        settings.topics.transactions,
        [(t.account_id.encode(), encode_event(t)) for t in transactions],
    )
    produce(
        settings,
        settings.topics.labels,
        [
            (t.transaction_id.encode(), encode_event(label))
            for t, label in zip(transactions, to_labels(frame), strict=True)
        ],
    )


def drift_events(
    settings: Settings, until: Callable[[list[DriftEvent]], bool], timeout_s: float = 120
) -> list[DriftEvent]:
    records = read_topic(
        settings,
        settings.topics.drift_events,
        until=lambda rs: until(decode_all(rs, DriftEvent)),
        timeout_s=timeout_s,
    )
    return decode_all(records, DriftEvent)


def scored(settings: Settings, at_least: int, timeout_s: float = 120) -> None:
    read_topic(settings, settings.topics.scores, until=lambda rs: len(rs) >= at_least, timeout_s=timeout_s)


def test_a_covariate_shift_produces_one_feature_event_not_a_storm(
    one_partition_settings: Settings, history: pd.DataFrame
) -> None:
    settings = one_partition_settings
    publish_champion(settings, history)
    simulator = TransactionSimulator(seed=5)
    stream(settings, simulator.generate(15_000))
    stream(settings, simulator.generate(10_000, SCENARIOS["covariate"]))
    registry = open_registry(settings)
    monitor = DriftMonitor(settings, registry)
    with scorer_thread(settings, registry, [monitor]):
        scored(settings, 25_000)
        events = drift_events(settings, lambda es: any(e.signal == "feature" for e in es))
        wait_for_checkpoint(settings, 25_000)  # every drift event of those rows has landed
        events = drift_events(settings, lambda es: False, timeout_s=3)
    per_signal = Counter(e.signal for e in events)
    assert per_signal["feature"] == 1, per_signal
    assert all(count == 1 for count in per_signal.values()), per_signal
    feature = next(e for e in events if e.signal == "feature")
    assert feature.partition == 0 and feature.model_version == "v1"
    assert feature.offset_end is not None and 15_000 <= feature.offset_end < 17_000, feature
    assert feature.before is not None and feature.after is not None
    assert all(e.offset_end is not None and e.offset_end >= 15_000 for e in events), (
        "a false alarm before the shift"
    )


def test_labels_reach_the_monitors_as_outcomes_of_the_join_and_bad_ones_are_dead_lettered(
    one_partition_settings: Settings, history: pd.DataFrame
) -> None:
    settings = one_partition_settings
    publish_champion(settings, history)
    frame = TransactionSimulator(seed=6).generate(2000)
    stream(settings, frame)
    produce(settings, settings.topics.labels, [(b"acct", b"not json"), (b"acct", b'{"schema_version":1}')])
    registry = open_registry(settings)
    monitor = DriftMonitor(settings, registry)
    with scorer_thread(settings, registry, [monitor]), running(JoinService(settings)):
        scored(settings, 2000)
        letters = read_topic(settings, settings.topics.labels_dlq, until=lambda rs: len(rs) >= 2)
        eventually(lambda: labels_monitored(monitor) >= 2000, "2,000 outcomes monitored", timeout_s=60)
        assert labels_monitored(monitor) == 2000
    assert len(letters) == 2
    assert {r.key for r in letters} == {b"acct"}


def test_a_scorer_killed_mid_stream_restores_its_monitors_and_detects_a_later_drift_on_time(
    one_partition_settings: Settings, history: pd.DataFrame, tmp_path: Path
) -> None:
    interrupted = one_partition_settings
    # An uninterrupted twin reads the same topics in its own group, with its own drift topic.
    twin_topic = interrupted.topics.drift_events + "-twin"
    ensure_topics(
        interrupted.kafka,
        [s for s in topic_catalogue(TopicNames(drift_events=twin_topic)) if s.name == twin_topic],
    )
    twin = interrupted.model_copy(
        update={
            "topics": interrupted.topics.model_copy(update={"drift_events": twin_topic}),
            "scoring": interrupted.scoring.model_copy(
                update={"group_id": interrupted.scoring.group_id + "-twin"}
            ),
        }
    )
    publish_champion(interrupted, history)
    simulator = TransactionSimulator(seed=7)
    stream(interrupted, simulator.generate(12_000))

    log = tmp_path / "scorer.log"
    first = start_scorer_process(interrupted, log)
    try:
        scored(interrupted, 12_000)
        wait_for_checkpoint(interrupted, 12_000)  # state, then offsets, have landed
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    stream(interrupted, simulator.generate(8000))  # more baseline, arriving while it is down
    stream(interrupted, simulator.generate(8000, SCENARIOS["covariate"]))  # the drift, at row 20,000

    second = start_scorer_process(interrupted, log)
    try:
        events = drift_events(interrupted, lambda es: any(e.signal == "feature" for e in es))
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=60)
    registry = open_registry(twin)
    with scorer_thread(twin, registry, [DriftMonitor(twin, registry)]):
        twin_events = drift_events(twin, lambda es: any(e.signal == "feature" for e in es))

    assert "monitors restored" in log.read_text(), "the restarted scorer started from scratch"
    after_kill = next(e for e in events if e.signal == "feature")
    uninterrupted = next(e for e in twin_events if e.signal == "feature")
    assert after_kill.offset_end is not None and uninterrupted.offset_end is not None
    assert after_kill.offset_end >= 20_000 and uninterrupted.offset_end >= 20_000
    delay, twin_delay = after_kill.offset_end - 20_000, uninterrupted.offset_end - 20_000
    assert abs(delay - twin_delay) <= 250, (delay, twin_delay)


def test_a_forged_or_too_new_snapshot_is_not_restored(
    one_partition_settings: Settings, history: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    from streaming.monitoring.state import seal, state_key

    settings = one_partition_settings
    publish_champion(settings, history)
    key = state_key(settings.scoring.group_id, settings.topics.transactions, 0)
    registry = open_registry(settings)
    common = {"group": settings.scoring.group_id, "topic": settings.topics.transactions, "partition": 0}
    forged = seal({"x": 1}, b"not-the-registry-key", offset=0, labels_offset=0, model_version="v1", **common)
    too_new = seal(
        {"x": 1}, registry.signing_key, offset=10**9, labels_offset=0, model_version="v1", **common
    )
    produce(settings, settings.topics.state, [(key, forged), (key, too_new)])
    stream(settings, TransactionSimulator(seed=12).generate(1000))
    caplog.set_level("INFO", logger="driftloop.monitor")
    monitor = DriftMonitor(settings, registry)
    with scorer_thread(settings, registry, [monitor]):
        scored(settings, 1000)
        suite = monitor.suite(0)
        assert suite is not None and suite.scored == 1000  # a fresh suite saw every transaction
    messages = [r.getMessage() for r in caplog.records if r.name == "driftloop.monitor"]
    assert "ignoring a state snapshot newer than the committed offset" in messages
    assert any(m.startswith("state snapshot refused: bad_signature") for m in messages), messages
    assert "monitors restored" not in messages
