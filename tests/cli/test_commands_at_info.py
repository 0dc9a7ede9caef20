"""The long-running commands as a user runs them: a real process, the default log level (INFO).

Tests that run the services in a thread see only what their log level lets through; a bug in
an INFO log call (a field that collides with a LogRecord attribute crashed `driftloop
trigger` on its first drift event) hides there. Each command here handles the event it
exists for, logs about it at INFO, then stops cleanly on SIGTERM with exit code 0.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from streaming.config import CanarySettings, MonitoringSettings, RetrainingSettings, Settings
from streaming.control.updates import champion_update
from streaming.events import DriftEvent, ModelUpdate, Outcome, Score, encode_event
from streaming.kafka.publishing import publish_model_update
from streaming.models.first_champion import train_and_register
from streaming.models.training import TrainingParams
from streaming.simulation.generator import SCENARIOS, TransactionSimulator, to_labels, to_transactions
from tests.kafka_helpers import decode_all, produce, read_topic, stream_labelled
from tests.processes import Command

pytestmark = pytest.mark.integration


def messages(command: Command, level: str = "info") -> list[str]:
    return [e["message"] for e in command.logged() if e["level"] == level]


def assert_clean_exit(command: Command) -> str:
    code, stdout = command.stop()
    text = command.log.read_text()
    assert code == 0, text[-4000:]
    assert "Traceback" not in text, text[-4000:]
    return stdout


def test_score_and_monitor_at_info_score_swap_models_dead_letter_and_raise_a_drift_event(
    one_partition_settings: Settings, history: pd.DataFrame, tmp_path: Path
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
    v1 = train_and_register(settings, history, params=TrainingParams(max_iter=20))
    publish_model_update(settings, champion_update(v1))
    simulator = TransactionSimulator(seed=5)
    baseline, shifted = simulator.generate(15_000), simulator.generate(8000, SCENARIOS["covariate"])
    frame = pd.concat([baseline, shifted], ignore_index=True)
    transactions = [(t.account_id.encode(), encode_event(t)) for t in to_transactions(frame)]
    labels = [(label.transaction_id.encode(), encode_event(label)) for label in to_labels(frame)]

    scorer = Command(settings, tmp_path / "score.log", "score")
    monitor = Command(settings, tmp_path / "monitor.log", "monitor")
    try:
        produce(settings, settings.topics.transactions, [*transactions[:2000], (b"acct", b"not json")])
        scorer.wait_for(lambda: any(m.startswith("scoring ") for m in messages(scorer)), "scoring")
        v2 = train_and_register(settings, history, params=TrainingParams(max_iter=10))
        publish_model_update(settings, champion_update(v2))
        produce(settings, settings.topics.transactions, transactions[2000:])
        produce(settings, settings.topics.labels, labels)
        events = decode_all(
            read_topic(settings, settings.topics.drift_events, lambda rs: len(rs) >= 1, timeout_s=120),
            DriftEvent,
        )
        assert events, scorer.tail() + monitor.tail()
        read_topic(settings, settings.topics.scores, lambda rs: len(rs) >= len(transactions), timeout_s=120)
    finally:
        stdout = assert_clean_exit(scorer)
        monitored = assert_clean_exit(monitor)
    info = messages(scorer)
    assert "serving models changed" in info, info
    assert any(m.startswith("dead letter") for m in messages(scorer, "warning"))
    assert f"scored {len(transactions)} transactions" in stdout
    assert any(m.startswith("monitoring model") for m in messages(monitor)), messages(monitor)
    assert any(m.startswith("drift detected") for m in messages(monitor, "warning"))
    published = re.search(r"published (\d+) drift events", monitored)
    assert published is not None and int(published.group(1)) >= 1, monitored


def test_join_at_info_joins_labels_dead_letters_a_bad_one_and_stops_cleanly(
    driftloop_settings: Settings, tmp_path: Path
) -> None:
    settings = driftloop_settings
    frame = TransactionSimulator(seed=9).generate(500)
    now = datetime.now(UTC)
    scores = [
        Score(
            transaction_id=t.transaction_id, account_id=t.account_id, model_name="fraud", model_version="v1",
            role="champion", score=0.2, threshold=0.5, decision=False, event_time=t.event_time,
            scored_at=now, latency_ms=1.0,
        )
        for t in to_transactions(frame)
    ]  # fmt: skip
    produce(settings, settings.topics.scores, [(s.transaction_id.encode(), encode_event(s)) for s in scores])
    labels = [(label.transaction_id.encode(), encode_event(label)) for label in to_labels(frame)]
    join = Command(settings, tmp_path / "join.log", "join")
    try:
        produce(settings, settings.topics.labels, [*labels, (b"t-x", b"not json")])
        joined = read_topic(settings, settings.topics.outcomes, lambda rs: len(rs) >= 500, timeout_s=120)
        read_topic(settings, settings.topics.labels_dlq, lambda rs: len(rs) >= 1, timeout_s=60)
    finally:
        stdout = assert_clean_exit(join)
    assert len(decode_all(joined, Outcome)) == 500
    info = messages(join)
    assert any(m.startswith("joining ") for m in info) and "join store ready" in info, info
    assert "joined 500 outcomes from 500 scores and 501 labels; refused: 1 invalid_json" in stdout, stdout


def test_trigger_at_info_turns_a_drift_event_into_a_flow_run(
    driftloop_settings: Settings, history: pd.DataFrame, tmp_path: Path
) -> None:
    settings = driftloop_settings.model_copy(
        update={"retraining": RetrainingSettings(min_rows=500, max_iter=30, retries=1, retry_delays_s=[0.2])}
    )
    publish_model_update(
        settings, champion_update(train_and_register(settings, history, params=TrainingParams(max_iter=20)))
    )
    simulator = TransactionSimulator(seed=21)
    stream_labelled(settings, simulator, 3000, SCENARIOS["baseline"])
    stream_labelled(settings, simulator, 3000, SCENARIOS["concept"])

    trigger = Command(settings, tmp_path / "trigger.log", "trigger")
    try:
        trigger.wait_for(lambda: any(m.startswith("turning ") for m in messages(trigger)), "ready")
        event = DriftEvent(
            event_id="0b9c1f3e-0000-5000-8000-0000000000a1",
            model_name=settings.model_name,
            model_version="v1",
            signal="error",
            detector="adwin",
            severity="high",
            detected_at=datetime.now(UTC),
        )
        produce(settings, settings.topics.drift_events, [(b"fraud", encode_event(event))])
        outcomes = decode_all(
            read_topic(
                settings,
                settings.topics.model_updates,
                lambda rs: any(u.status in ("challenger", "rejected") for u in decode_all(rs, ModelUpdate)),
                timeout_s=240,
            ),
            ModelUpdate,
        )
    finally:
        assert_clean_exit(trigger)
    assert [u.status for u in outcomes][1:3] == ["started", "challenger"], outcomes
    started = next(e for e in trigger.logged() if e["message"] == "retraining run started")
    assert started["drift_event_id"] == event.event_id
    assert started["run"]["mode"] == "in-process" and started["run"]["thread"].startswith("retrain-")


def test_canary_at_info_decides_on_a_challenger(driftloop_settings: Settings, tmp_path: Path) -> None:
    settings = driftloop_settings.model_copy(
        update={"canary": CanarySettings(step_timeout_s=3, evaluate_every_s=0.5, min_labels=10)}
    )
    now = datetime.now(UTC)
    for update in (
        ModelUpdate(model_name="fraud", version="v1", status="champion", created_at=now),
        ModelUpdate(
            model_name="fraud",
            version="v2",
            status="challenger",
            traffic_percent=0.0,
            champion_version="v1",
            created_at=now,
        ),
    ):
        publish_model_update(settings, update)

    canary = Command(settings, tmp_path / "canary.log", "canary")
    try:
        # No labelled outcomes arrive: the step times out and the challenger is rolled back.
        decided = decode_all(
            read_topic(
                settings,
                settings.topics.model_updates,
                lambda rs: any(u.status == "rolled_back" for u in decode_all(rs, ModelUpdate)),
                timeout_s=90,
            ),
            ModelUpdate,
        )
    finally:
        assert_clean_exit(canary)
    assert [u.status for u in decided] == ["champion", "challenger", "canary_step", "rolled_back"], decided
    info = messages(canary)
    assert "canary controller ready" in info
    assert {"canary decision: canary_step v2 at 5.0%", "canary decision: rolled_back v2 at 0.0%"} <= set(info)
