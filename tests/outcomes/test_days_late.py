"""A concept drift whose labels come three days late is caught from the outcomes as soon, in
labelled rows, as with labels that come at once: the whole path, on the real broker."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from streaming.config import (
    JoinSettings,
    KafkaSettings,
    MonitoringSettings,
    ScoringSettings,
    Settings,
    TopicNames,
)
from streaming.control.updates import champion_update
from streaming.kafka.clients import ensure_topics
from streaming.kafka.publishing import publish_model_update
from streaming.models.first_champion import open_registry, train_and_register
from streaming.models.training import TrainingParams
from streaming.monitoring.model_monitor import Seen
from streaming.monitoring.publisher import EvidencePublisher
from streaming.monitoring.service import MonitorService
from streaming.outcomes.service import JoinService
from streaming.simulation.delays import LabelDelay
from streaming.simulation.generator import BASELINE, SCENARIOS, TransactionSimulator
from streaming.simulation.streamer import TransactionStreamer
from streaming.topics import topic_catalogue
from tests.kafka_helpers import running, scorer_thread
from tests.waiting import eventually

pytestmark = pytest.mark.integration

BEFORE, AFTER = 10_000, 10_000  # transactions before and after the fraud pattern changes


def run_settings(kafka: KafkaSettings, name: Callable[[str], str], home: Path) -> Settings:
    names = TopicNames(**{field: name(field.replace("_", "-")) for field in TopicNames.model_fields})
    ensure_topics(kafka, topic_catalogue(names, partitions=1))
    return Settings(
        home=home,
        kafka=kafka,
        topics=names,
        scoring=ScoringSettings(group_id=name("scorer"), metrics_port=0, max_wait_ms=20),
        join=JoinSettings(group_id=name("join"), metrics_port=0, checkpoint_interval_s=0.5),
        monitoring=MonitoringSettings(group_id=name("monitor"), metrics_port=0, prefect_events=False),
    )


def labelled_rows_to_detect(settings: Settings, history: pd.DataFrame, delay: LabelDelay) -> int:
    """Outcomes the error monitor had seen, after the first post-drift one, when it fired."""
    publish_model_update(
        settings, champion_update(train_and_register(settings, history, params=TrainingParams()))
    )
    simulator = TransactionSimulator(seed=31, mean_gap_s=60.0)  # a transaction a minute
    registry = open_registry(settings)
    monitor = MonitorService(settings, registry)
    join = JoinService(settings)
    with (
        scorer_thread(settings, registry, [EvidencePublisher(settings, registry)]),
        running(join),
        running(monitor),
    ):
        # Live, at a rate the scorer keeps up with: each label comes after its score, 4,320
        # transactions (three days) later; the last ones when the stream ends.
        streamer = TransactionStreamer(settings, rate=2000, label_delay=delay, seed=32)
        try:
            streamer.send(simulator.generate(BEFORE, BASELINE))
            streamer.send(simulator.generate(AFTER, SCENARIOS["concept"]))
        finally:
            streamer.close()

        def state() -> str:
            merged = monitor.monitor
            seen = (merged.rows, merged.labelled) if merged else (0, 0)
            return f"an error drift alarm (scored, labelled: {seen}; join: {join.stats})"

        def first_error() -> Seen | None:  # an event, or a detection inside an open episode
            merged = monitor.monitor
            return next((d for d in merged.detections if d.signal == "error"), None) if merged else None

        alarm = eventually(first_error, state, timeout_s=300)
    return alarm.seen - BEFORE


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    """A longer history than the session's: a champion good enough that a new fraud pattern
    shows in its errors (a weak one misses most frauds either way)."""
    return TransactionSimulator(seed=42).generate(20_000)


def test_a_concept_drift_with_labels_three_days_late_is_caught_after_as_many_labelled_rows(
    kafka_settings: KafkaSettings, unique_name: Callable[[str], str], tmp_path: Path, history: pd.DataFrame
) -> None:
    at_once = labelled_rows_to_detect(
        run_settings(kafka_settings, lambda n: unique_name(f"now-{n}"), tmp_path / "now"),
        history,
        LabelDelay(),
    )
    three_days = LabelDelay(median_s=3 * 86_400, spread=0)  # 4,320 transactions later
    late = labelled_rows_to_detect(
        run_settings(kafka_settings, lambda n: unique_name(f"late-{n}"), tmp_path / "late"),
        history,
        three_days,
    )
    assert 0 < at_once < AFTER, at_once
    assert abs(late - at_once) <= 0.2 * at_once, f"{late} labelled rows with 3-day labels, {at_once} at once"
