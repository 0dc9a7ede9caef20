"""`driftloop score` writing evidence and `driftloop monitor` merging it, on the real broker."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from kafka.partitioner.default import murmur2

from streaming.config import MonitoringSettings, ScoringSettings, Settings, TopicNames, child_env
from streaming.control.updates import champion_update
from streaming.events import DeadLetter, DriftEvent, encode_event
from streaming.kafka.clients import ensure_topics
from streaming.kafka.publishing import publish_model_update
from streaming.models.first_champion import open_registry, train_and_register
from streaming.models.training import TrainingParams
from streaming.monitoring.publisher import EvidencePublisher
from streaming.monitoring.service import MonitorService
from streaming.outcomes.service import JoinService
from streaming.simulation.generator import SCENARIOS, TransactionSimulator, to_labels, to_transactions
from streaming.topics import topic_catalogue
from tests.kafka_helpers import (
    decode_all,
    produce,
    read_topic,
    records_written,
    running,
    scorer_thread,
    start_scorer_process,
    wait_for_checkpoint,
)
from tests.waiting import eventually

pytestmark = pytest.mark.integration

PARTITIONS = 12


@pytest.fixture
def wide_settings(kafka_settings, unique_name: Callable[[str], str], tmp_path: Path) -> Settings:  # type: ignore[no-untyped-def]
    """Topics of 12 partitions; a monitor that checkpoints every second."""
    names = TopicNames(**{field: unique_name(field.replace("_", "-")) for field in TopicNames.model_fields})
    ensure_topics(kafka_settings, topic_catalogue(names, partitions=PARTITIONS))
    return Settings(
        home=tmp_path / "home",
        kafka=kafka_settings,
        topics=names,
        scoring=ScoringSettings(group_id=unique_name("scorer"), metrics_port=0, max_wait_ms=20),
        monitoring=MonitoringSettings(
            group_id=unique_name("monitor"), metrics_port=0, checkpoint_interval_s=1.0, prefect_events=False
        ),
    )


def publish_champion(settings: Settings, history: pd.DataFrame) -> None:
    manifest = train_and_register(settings, history, params=TrainingParams(max_iter=20))
    assert manifest.reference is not None
    publish_model_update(settings, champion_update(manifest))


def stream(settings: Settings, frame: pd.DataFrame, labels: bool = False) -> None:
    transactions = list(to_transactions(frame))
    produce(
        settings,
        settings.topics.transactions,
        [(t.account_id.encode(), encode_event(t)) for t in transactions],
    )
    if labels:
        produce(
            settings,
            settings.topics.labels,
            [
                (t.transaction_id.encode(), encode_event(label))
                for t, label in zip(transactions, to_labels(frame), strict=True)
            ],
        )


def drift_events(
    settings: Settings,
    until: Callable[[list[DriftEvent]], bool],
    timeout_s: float = 120,
    topic: str | None = None,
) -> list[DriftEvent]:
    records = read_topic(
        settings,
        topic or settings.topics.drift_events,
        until=lambda rs: until(decode_all(rs, DriftEvent)),
        timeout_s=timeout_s,
    )
    return decode_all(records, DriftEvent)


def partition_of(account_id: str, partitions: int = PARTITIONS) -> int:
    """The partition kafka-python's (and Java's) default partitioner gives the key."""
    return (murmur2(account_id.encode()) & 0x7FFFFFFF) % partitions


def start_monitor_process(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    log = open(log_path, "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "streaming.cli", "monitor"],
        env=child_env(settings),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


@contextmanager
def monitor_thread(settings: Settings) -> Iterator[MonitorService]:
    with running(MonitorService(settings, open_registry(settings))) as service:
        yield service


def test_twelve_partitions_three_scorers_one_drift_make_exactly_one_drift_event_with_its_scope(
    wide_settings: Settings, history: pd.DataFrame, tmp_path: Path
) -> None:
    settings = wide_settings
    publish_champion(settings, history)
    simulator = TransactionSimulator(seed=5)
    baseline = simulator.generate(15_000)
    drifted = simulator.generate(10_000, SCENARIOS["covariate"])
    stream(settings, baseline)
    stream(settings, drifted)
    produce(settings, settings.topics.evidence, [(b"fraud", b"not evidence")])  # from a stranger
    scorers = [start_scorer_process(settings, tmp_path / f"scorer-{i}.log") for i in range(3)]
    try:
        with monitor_thread(settings) as service:
            events = drift_events(settings, lambda es: len(es) >= 1)
            wait_for_checkpoint(settings, 25_000)  # every scorer's evidence of all rows has landed
            eventually(
                lambda: service.monitor is not None and service.monitor.rows >= 25_000, "all rows merged", 60
            )
            events = drift_events(settings, lambda es: False, timeout_s=4)
            monitor = service.monitor
            assert monitor is not None
            assert monitor.rows == 25_000, (monitor.rows, monitor.skipped)
            assert monitor.partitions_seen == set(range(PARTITIONS))
            late = monitor.evidence.late
    finally:
        for scorer in scorers:
            scorer.send_signal(signal.SIGTERM)
        for scorer in scorers:
            scorer.wait(timeout=60)
    opened = [e for e in events if e.status == "opened"]
    assert len(opened) == 1, [
        (e.status, e.signal, e.detector, e.feature, e.partition, e.event_time, late) for e in events
    ]
    event = opened[0]
    assert all(e.episode_id == event.event_id and e.status == "ongoing" for e in events[1:]), "one episode"
    assert event.model_name == settings.model_name and event.model_version == "v1"
    assert event.signal in ("feature", "prediction")
    assert event.event_time is not None and event.event_time >= drifted["event_time"].iloc[0], (
        "before the drift"
    )
    assert event.partitions_seen == PARTITIONS
    assert event.scope == list(range(PARTITIONS)), event.scope  # the shift is in every partition's traffic
    # The covariate scenario: spend x1.8, more online, holiday categories.
    moved = {"amount", "amount_to_avg_ratio", "merchant_category", "channel"}
    assert event.explanation and event.explanation[0].column in moved, event.explanation
    # The columns that moved come first, largest PSI first; then the others, for context (one
    # whose test did not reject may have a larger PSI than one that moved).
    shifted = [s for s in event.explanation if s.moved]
    assert shifted and event.explanation[: len(shifted)] == shifted, event.explanation
    assert [s.psi for s in shifted] == sorted((s.psi for s in shifted), reverse=True), "largest PSI first"
    assert {r.topic for r in event.evidence} == {settings.topics.evidence, settings.topics.transactions}
    letters = decode_all(
        read_topic(settings, settings.topics.evidence_dlq, until=lambda rs: len(rs) >= 1), DeadLetter
    )
    assert letters[0].value == b"not evidence" and letters[0].reason == "invalid_json"


def test_a_drift_in_one_partitions_traffic_is_found_and_scoped_to_it(
    wide_settings: Settings, history: pd.DataFrame
) -> None:
    settings = wide_settings
    publish_champion(settings, history)
    simulator = TransactionSimulator(seed=8)
    stream(settings, simulator.generate(24_000))
    normal = simulator.generate(24_000)
    drifted = simulator.generate(24_000, SCENARIOS["covariate"])
    # Partition 3's customers drift while the others' traffic goes on as before, at the same time.
    drifted["event_time"] -= drifted["event_time"].iloc[0] - normal["event_time"].iloc[0]
    mixed = pd.concat(
        [
            normal[normal["account_id"].map(partition_of) != 3],
            drifted[drifted["account_id"].map(partition_of) == 3],
        ]
    ).sort_values("event_time")
    stream(settings, mixed)
    registry = open_registry(settings)
    with scorer_thread(settings, registry, [EvidencePublisher(settings, registry)]), monitor_thread(settings):
        events = drift_events(settings, lambda es: len(es) >= 1)
    event = events[0]
    assert event.scope == [3], (event.scope, event.partition, event.signal, event.feature)
    assert event.event_time is not None and event.event_time >= mixed["event_time"].iloc[0]


def test_a_scorer_replaying_what_it_summarized_before_a_crash_is_not_counted_twice(
    wide_settings: Settings, history: pd.DataFrame, tmp_path: Path
) -> None:
    settings = wide_settings
    publish_champion(settings, history)
    simulator = TransactionSimulator(seed=7)
    stream(settings, simulator.generate(12_000))
    first = start_scorer_process(settings, tmp_path / "scorer.log")
    try:
        wait_for_checkpoint(settings, 6_000)
    finally:
        first.send_signal(signal.SIGKILL)  # mid-stream
        first.wait(timeout=30)
    drifted = simulator.generate(8_000, SCENARIOS["covariate"])
    stream(settings, drifted)  # the drift, from row 12,000
    # The restarted scorer lost its commits (a crash between the evidence and the commit, at
    # the extreme): it scores and summarizes everything again from the first offset.
    replay = settings.model_copy(
        update={
            "scoring": settings.scoring.model_copy(update={"group_id": settings.scoring.group_id + "-again"})
        }
    )
    second = start_scorer_process(replay, tmp_path / "scorer.log")
    try:
        with monitor_thread(settings) as service:
            events = drift_events(settings, lambda es: len(es) >= 1)
            wait_for_checkpoint(replay, 20_000)
            monitor = service.monitor
            assert monitor is not None
            ledger = monitor.ledger
            eventually(lambda: monitor.rows + ledger.overlap_rows >= 20_000, "every row merged once", 60)
            assert monitor.rows + ledger.overlap_rows == 20_000, (monitor.rows, ledger.overlap_rows)
            assert ledger.duplicates > 0, "the replay was not seen"
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=60)
    assert [e.status for e in events if e.status == "opened"] == ["opened"]
    assert all(e.episode_id == events[0].event_id for e in events), "one episode, its later reports"
    assert events[0].event_time is not None and events[0].event_time >= drifted["event_time"].iloc[0]


def test_a_monitor_killed_mid_stream_resumes_from_its_snapshot_and_finds_the_drift_on_time(
    wide_settings: Settings, history: pd.DataFrame, tmp_path: Path
) -> None:
    interrupted = wide_settings
    twin_topic = interrupted.topics.drift_events + "-twin"
    ensure_topics(
        interrupted.kafka,
        [s for s in topic_catalogue(TopicNames(drift_events=twin_topic)) if s.name == twin_topic],
    )
    twin = interrupted.model_copy(
        update={
            "topics": interrupted.topics.model_copy(update={"drift_events": twin_topic}),
            "monitoring": interrupted.monitoring.model_copy(
                update={"group_id": interrupted.monitoring.group_id + "-twin"}
            ),
        }
    )
    publish_champion(interrupted, history)
    simulator = TransactionSimulator(seed=9)
    stream(interrupted, simulator.generate(16_000))
    registry = open_registry(interrupted)
    log = tmp_path / "monitor.log"
    with scorer_thread(interrupted, registry, [EvidencePublisher(interrupted, registry)]):
        wait_for_checkpoint(interrupted, 16_000)
        first = start_monitor_process(interrupted, log)
        try:
            eventually(
                lambda: (
                    b"monitor restored" in log.read_bytes()
                    or records_written(interrupted.kafka, interrupted.topics.state) >= 2
                ),
                "a monitor snapshot",
                90,
            )
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
        drifted = simulator.generate(10_000, SCENARIOS["covariate"])
        stream(interrupted, drifted)
        second = start_monitor_process(interrupted, log)
        try:
            events = drift_events(interrupted, lambda es: len(es) >= 1)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=60)
        with monitor_thread(twin):
            twin_events = drift_events(twin, lambda es: len(es) >= 1, topic=twin_topic)
    assert "monitor restored" in log.read_text(), "the restarted monitor started from scratch"
    onset = drifted["event_time"].iloc[0]
    assert events[0].event_time is not None and twin_events[0].event_time is not None
    delay = (pd.Timestamp(events[0].event_time) - onset).total_seconds()
    twin_delay = (pd.Timestamp(twin_events[0].event_time) - onset).total_seconds()
    assert twin_delay >= 0 and delay >= 0
    assert abs(delay - twin_delay) <= 0.1 * twin_delay + 1.0, (delay, twin_delay)


def test_labels_reach_the_monitor_as_outcomes_of_the_join(
    one_partition_settings: Settings, history: pd.DataFrame
) -> None:
    settings = one_partition_settings.model_copy(
        update={
            "monitoring": MonitoringSettings(
                group_id=one_partition_settings.scoring.group_id + "-monitor",
                metrics_port=0,
                prefect_events=False,
            )
        }
    )
    publish_champion(settings, history)
    stream(settings, TransactionSimulator(seed=6).generate(2000), labels=True)
    registry = open_registry(settings)
    with (
        scorer_thread(settings, registry, [EvidencePublisher(settings, registry)]),
        running(JoinService(settings)),
        monitor_thread(settings) as service,
    ):
        eventually(
            lambda: service.monitor is not None and service.monitor.labelled >= 2000,
            "2,000 outcomes monitored",
            90,
        )
        assert service.monitor is not None and service.monitor.labelled == 2000


def test_a_standby_monitor_takes_over_when_the_active_one_dies_and_finds_the_drift_on_time(
    wide_settings: Settings, history: pd.DataFrame, tmp_path: Path
) -> None:
    from tests.conftest import free_port
    from tests.kafka_helpers import scraped

    settings = wide_settings.model_copy(
        update={"scoring": wide_settings.scoring.model_copy(update={"metrics_address": "127.0.0.1"})}
    )
    twin_topic = settings.topics.drift_events + "-twin"
    ensure_topics(
        settings.kafka,
        [s for s in topic_catalogue(TopicNames(drift_events=twin_topic)) if s.name == twin_topic],
    )
    twin = settings.model_copy(
        update={
            "topics": settings.topics.model_copy(update={"drift_events": twin_topic}),
            "monitoring": settings.monitoring.model_copy(
                update={"group_id": settings.monitoring.group_id + "-twin"}
            ),
        }
    )
    publish_champion(settings, history)
    simulator = TransactionSimulator(seed=10)
    stream(settings, simulator.generate(16_000))
    registry = open_registry(settings)
    ports = [free_port(), free_port()]
    monitors = [
        start_monitor_process(
            settings.model_copy(
                update={"monitoring": settings.monitoring.model_copy(update={"metrics_port": port})}
            ),
            tmp_path / f"monitor-{i}.log",
        )
        for i, port in enumerate(ports)
    ]

    def active() -> list[int]:
        return [i for i, port in enumerate(ports) if scraped(port).get("driftloop_monitor_active") == 1.0]

    try:
        with scorer_thread(settings, registry, [EvidencePublisher(settings, registry)]):
            wait_for_checkpoint(settings, 16_000)
            (leader,) = eventually(lambda: a if len(a := active()) == 1 else None, "one active monitor", 90)
            standby = 1 - leader
            assert scraped(ports[standby]).get("driftloop_monitor_active") == 0.0, "the other stands by"
            eventually(
                lambda: records_written(settings.kafka, settings.topics.state) >= 2,
                "the leader's snapshots",
                60,
            )
            monitors[leader].send_signal(signal.SIGKILL)
            monitors[leader].wait(timeout=30)
            drifted = simulator.generate(10_000, SCENARIOS["covariate"])
            stream(settings, drifted)
            events = drift_events(settings, lambda es: len(es) >= 1)
            assert active() == [standby]
            with monitor_thread(twin):
                twin_events = drift_events(twin, lambda es: len(es) >= 1, topic=twin_topic)
    finally:
        for process in monitors:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)
    assert "monitor restored" in (tmp_path / f"monitor-{standby}.log").read_text(), (
        "the standby started fresh"
    )
    onset = drifted["event_time"].iloc[0]
    assert events[0].event_time is not None and twin_events[0].event_time is not None
    delay = (pd.Timestamp(events[0].event_time) - onset).total_seconds()
    twin_delay = (pd.Timestamp(twin_events[0].event_time) - onset).total_seconds()
    assert twin_delay >= 0 and delay >= 0
    assert abs(delay - twin_delay) <= 0.1 * twin_delay + 1.0, (delay, twin_delay)
