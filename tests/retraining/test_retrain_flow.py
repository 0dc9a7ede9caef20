"""The retraining flow and the trigger, with a real broker and a real (temporary) Prefect server."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from streaming.config import KAFKA_VERSION, RetrainingSettings, Settings, TriggerSettings
from streaming.control.updates import champion_update
from streaming.events import DriftEvent, ModelUpdate, encode_event
from streaming.kafka.clients import ensure_topics, make_consumer
from streaming.kafka.publishing import publish_model_update
from streaming.models.first_champion import open_registry, train_and_register
from streaming.models.training import TrainingParams
from streaming.retraining.datasets import load_dataset
from streaming.retraining.flow_entrypoint import run_in_process
from streaming.retraining.trigger import RetrainTrigger
from streaming.simulation.generator import SCENARIOS, TransactionSimulator
from streaming.topics import topic_catalogue
from tests.conftest import free_port
from tests.kafka_helpers import committed_total, decode_all, produce, read_topic, running, stream_labelled
from tests.waiting import eventually

pytestmark = pytest.mark.integration

FAST = RetrainingSettings(
    min_rows=500, max_iter=30, retries=1, retry_delays_s=[0.2], min_holdout_positives=10
)


@pytest.fixture(scope="module", autouse=True)
def prefect_server() -> Iterator[None]:
    """A real Prefect API (temporary server, SQLite) for every flow run of this module."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def settings(driftloop_settings: Settings, history: pd.DataFrame) -> Settings:
    """A champion in the registry and on model.updates, and 6,000 labelled transactions in Kafka."""
    settings = driftloop_settings.model_copy(update={"retraining": FAST})
    manifest = train_and_register(settings, history, params=TrainingParams(max_iter=20))
    publish_model_update(settings, champion_update(manifest))
    simulator = TransactionSimulator(seed=21)
    stream_labelled(settings, simulator, 3000, SCENARIOS["baseline"])
    stream_labelled(settings, simulator, 3000, SCENARIOS["concept"])
    return settings


def updates(settings: Settings, until: Any = lambda us: False, timeout_s: float = 5) -> list[ModelUpdate]:
    records = read_topic(
        settings, settings.topics.model_updates, lambda rs: until(decode_all(rs, ModelUpdate)), timeout_s
    )
    return decode_all(records, ModelUpdate)


def concept_onset() -> datetime:
    """When the ``settings`` fixture's new fraud pattern begins (same seed, same chunks)."""
    simulator = TransactionSimulator(seed=21)
    for _ in range(3):
        simulator.generate(1000, SCENARIOS["baseline"])
    return simulator.generate(1000, SCENARIOS["concept"])["event_time"].iloc[0].to_pydatetime()


def drift_event(
    event_id: str,
    partition: int = 0,
    signal: str = "error",
    severity: str = "high",
    window_start: datetime | None = None,
) -> DriftEvent:
    return DriftEvent(
        window_start=window_start,
        event_id=event_id,
        model_name="fraud",
        model_version="v1",
        signal=signal,  # type: ignore[arg-type]
        detector="adwin",
        partition=partition,
        severity=severity,  # type: ignore[arg-type]
        detected_at=datetime.now(UTC),
    )


def test_a_drift_event_becomes_a_signed_challenger_with_lineage_and_a_dataset_snapshot(
    settings: Settings,
) -> None:
    onset = concept_onset()
    event = drift_event("0b9c1f3e-0000-5000-8000-000000000001", window_start=onset)
    with running(RetrainTrigger(settings), join_timeout_s=120):
        sent = time.monotonic()
        produce(settings, settings.topics.drift_events, [(b"fraud", encode_event(event))])
        published = updates(settings, lambda us: any(u.status == "challenger" for u in us), timeout_s=180)
        elapsed = time.monotonic() - sent
    statuses = [u.status for u in published]
    assert statuses[:1] == ["champion"] and "started" in statuses, statuses
    assert statuses.index("started") < statuses.index("challenger")
    challenger = next(u for u in published if u.status == "challenger")
    assert challenger.version == "v2" and challenger.champion_version == "v1"
    assert challenger.drift_event_id == event.event_id and challenger.traffic_percent == 0.0
    print(f"drift event -> published challenger: {elapsed:.1f}s")

    registry = open_registry(settings)
    manifest = registry.manifest("fraud", "v2")  # the signature checks out
    assert manifest.sha256 == challenger.sha256 and manifest.signature == challenger.signature
    lineage = manifest.lineage
    assert lineage["drift_event_id"] == event.event_id and lineage["champion_version"] == "v1"
    assert lineage["code_version"] and lineage["window"]["transactions"]["offsets"]
    # Candidates on three windows, judged on the newest rows since the drift began.
    assert lineage["drift_started_at"] == onset.isoformat()
    selection = lineage["selection"]
    windows = {c["name"]: c for c in selection["candidates"]}
    assert set(windows) == {"since_drift", "recent", "history"} and selection["winner"] in windows
    assert windows["since_drift"]["rows"] == 3000 - selection["holdout_rows"]
    assert all(c["skipped"] or "objective" in c["holdout"] for c in windows.values())
    assert selection["champion"]["objective"] >= windows[selection["winner"]]["holdout"]["objective"]
    assert manifest.decision is not None and manifest.decision.policy == "cost"
    assert manifest.threshold == manifest.decision.threshold and manifest.calibration is not None
    assert challenger.evidence["selection"]["winner"] == selection["winner"]
    dataset = load_dataset(settings.registry_path, "fraud", lineage["dataset"]["sha256"])
    assert len(dataset) == lineage["dataset"]["rows"] == 6000
    assert set(dataset["label"].unique()) == {0, 1}
    registry.load("fraud", "v2")  # a scorer could load it

    consumer = make_consumer(settings.kafka, settings.trigger.group_id)
    try:
        from kafka import TopicPartition

        assert consumer.committed(TopicPartition(settings.topics.drift_events, 0)) == 1
    finally:
        consumer.close(autocommit=False)


class RecordingLauncher:
    """Counts the runs the trigger starts (the flow itself is tested above)."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def launch(self, event: DriftEvent) -> dict[str, Any]:
        self.events.append(event.event_id)
        return {"mode": "recorded"}

    def close(self) -> None:
        pass


def run_trigger_over(settings: Settings, launcher: RecordingLauncher, expected_offset: int) -> RetrainTrigger:
    trigger = RetrainTrigger(settings, launcher)
    with running(trigger):
        group, topic = settings.trigger.group_id, settings.topics.drift_events
        eventually(
            lambda: committed_total(settings, group, topic) >= expected_offset,
            f"the trigger committing {expected_offset} drift events",
            timeout_s=60,
        )
    return trigger


def test_duplicate_burst_and_replayed_drift_events_start_one_run(driftloop_settings: Settings) -> None:
    settings = driftloop_settings.model_copy(update={"trigger": TriggerSettings(cooldown_s=600)})
    burst = [drift_event(f"e-{p}", partition=p) for p in range(4)]  # the same drift on every partition
    duplicate = burst[0]
    low = drift_event("e-low", severity="low")
    produce(
        settings,
        settings.topics.drift_events,
        [(b"fraud", encode_event(e)) for e in [*burst, duplicate, low]] + [(b"fraud", b"not an event")],
    )
    launcher = RecordingLauncher()
    run_trigger_over(settings, launcher, expected_offset=7)
    assert launcher.events == ["e-0"]
    started = [u for u in updates(settings) if u.status == "started"]
    assert [u.drift_event_id for u in started] == ["e-0"]
    [letter] = read_topic(settings, settings.topics.drift_events_dlq, lambda rs: len(rs) >= 1, timeout_s=10)
    assert letter.value is not None and b"invalid_json" in letter.value

    # A restarted trigger in a new group replays every event: its memory comes from model.updates.
    replay = settings.model_copy(
        update={"trigger": settings.trigger.model_copy(update={"group_id": "replayer"})}
    )
    again = RecordingLauncher()
    run_trigger_over(replay, again, expected_offset=7)
    assert again.events == []


def outcome_of(settings: Settings) -> list[ModelUpdate]:
    return [u for u in updates(settings) if u.status in ("challenger", "rejected", "failed")]


def test_a_candidate_below_the_bar_is_rejected_with_reasons_and_never_registered(settings: Settings) -> None:
    strict = settings.model_copy(
        update={"retraining": FAST.model_copy(update={"max_log_loss": 1e-12, "min_precision_at_budget": 1.0})}
    )
    outcome = run_in_process(strict, "e-strict")
    assert outcome["status"] == "rejected"
    assert any("log loss" in reason for reason in outcome["reasons"]), outcome["reasons"]
    [published] = outcome_of(settings)
    assert published.status == "rejected" and published.reasons == outcome["reasons"]
    assert published.champion_version == "v1"
    assert open_registry(settings).versions("fraud") == ["v1"]


def test_training_that_raises_fails_the_run_and_says_why(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.retrain

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise MemoryError("the training host ran out of memory")

    monkeypatch.setattr(flows.retrain, "select_candidate", broken)
    with pytest.raises(Exception, match="ran out of memory"):
        run_in_process(settings, "e-broken")
    [published] = outcome_of(settings)
    assert published.status == "failed" and "MemoryError" in published.reasons[0]
    assert open_registry(settings).versions("fraud") == ["v1"]


def test_the_teams_training_function_raising_fails_the_run_and_the_update_names_it(
    settings: Settings,
) -> None:
    """[training] names the team's own function; it raises: no candidate skipped, a failed run."""
    from streaming.config import TrainingSettings

    theirs = settings.model_copy(
        update={"training": TrainingSettings(function="tests.models.test_user_code:raises")}
    )
    with pytest.raises(Exception, match="ran out of memory"):
        run_in_process(theirs, "e-their-code")
    [published] = outcome_of(settings)
    assert published.status == "failed"
    assert "tests.models.test_user_code:raises raised MemoryError" in published.reasons[0], published.reasons
    assert open_registry(settings).versions("fraud") == ["v1"]


def test_an_unwritable_registry_fails_the_run_and_publishes_nothing_loadable(
    settings: Settings, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the registry should be")
    broken = settings.model_copy(
        update={"registry": settings.registry.model_copy(update={"path": blocker / "registry"})}
    )
    with pytest.raises(Exception, match="not-a-folder"):
        run_in_process(broken, "e-registry")
    [published] = outcome_of(settings)
    assert published.status == "failed" and "not-a-folder" in published.reasons[0]
    assert published.sha256 is None


def test_kafka_going_away_mid_flow_fails_the_run_and_publishes_no_model(
    history: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broker of its own, stopped while the candidate trains (after the window was read)."""
    import flows.retrain
    from streaming.config import KafkaSettings, load_settings
    from streaming.kafka.local_broker import LocalBroker

    broker = LocalBroker(tmp_path / "kafka", KAFKA_VERSION, port=free_port(), controller_port=free_port())
    broker.start(timeout_s=120)
    try:
        settings = load_settings(
            home=tmp_path / "home",
            kafka=KafkaSettings(bootstrap_servers=broker.bootstrap_servers),
            # 3,000 rows leave a holdout of 600 with about 9 frauds: judged on 5 or more. No
            # retry: each publish attempt waits out its 30 s delivery timeout.
            retraining=FAST.model_copy(update={"min_holdout_positives": 5, "retries": 0}),
        )
        ensure_topics(settings.kafka, topic_catalogue(settings.topics))
        manifest = train_and_register(settings, history, params=TrainingParams(max_iter=20))
        publish_model_update(settings, champion_update(manifest))
        # A new fraud pattern: the candidate is clearly better than the champion, and is registered.
        stream_labelled(settings, TransactionSimulator(seed=5), 3000, SCENARIOS["concept"])
        real_select = flows.retrain.select_candidate

        def train_then_lose_kafka(*args: Any, **kwargs: Any) -> Any:
            broker.stop()
            return real_select(*args, **kwargs)

        monkeypatch.setattr(flows.retrain, "select_candidate", train_then_lose_kafka)
        with pytest.raises(Exception, match=r"publishing challenger v2 failed|Kafka|broker"):
            run_in_process(settings, "e-kafka")
    finally:
        broker.stop()
    # The candidate was registered, but no update names it: no scorer ever loads it.
    assert open_registry(settings).versions("fraud") == ["v1", "v2"]


def test_the_trigger_runs_a_served_deployment_once_per_drift_event(
    settings: Settings, tmp_path: Path
) -> None:
    """`driftloop worker` serves retrain/driftloop; the trigger creates runs through the Prefect API."""
    import subprocess
    import sys

    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL

    from streaming.config import child_env
    from streaming.retraining.trigger import DeploymentLauncher

    api_url = PREFECT_API_URL.value()
    log = (tmp_path / "worker.log").open("ab")
    worker = subprocess.Popen(
        [sys.executable, "-m", "streaming.cli", "worker"],
        env={**child_env(settings), "PREFECT_API_URL": api_url},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        with get_client(sync_client=True) as client:

            def served_deployment() -> bool:
                try:
                    client.read_deployment_by_name("retrain/driftloop")
                except ObjectNotFound:
                    return False
                return True

            def worker_alive() -> None:
                assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]

            eventually(served_deployment, "the worker serving retrain/driftloop", 90, 1.0, worker_alive)
            served = settings.model_copy(
                update={"trigger": settings.trigger.model_copy(update={"deployment": "retrain/driftloop"})}
            )
            # A fresh event id: the run's idempotency key, and the Prefect server outlives the test.
            event = drift_event(str(uuid.uuid4()), signal="feature")
            with running(RetrainTrigger(served)):
                produce(settings, settings.topics.drift_events, [(b"fraud", encode_event(event))])
                published = updates(
                    settings, lambda us: any(u.status == "challenger" for u in us), timeout_s=240
                )
            started = next(u for u in published if u.status == "started")
            run_id = started.evidence["flow_run_id"]
            run = client.read_flow_run(run_id)
            assert run.name == f"retrain-fraud-{event.event_id}"
            assert f"drift-event:{event.event_id}" in run.tags and "signal:feature" in run.tags
            # The challenger is the flow's last output; the run reports Completed just after.

            def finished() -> Any:
                polled = client.read_flow_run(run_id)
                return polled if polled.state is not None and polled.state.is_final() else None

            run = eventually(finished, f"flow run {run_id} finishing", timeout_s=60, every_s=0.5)
            assert run.state is not None and run.state.is_completed(), run.state
            # The same drift event again (a replay): the idempotency key returns the same run.
            assert DeploymentLauncher("retrain/driftloop").launch(event)["flow_run_id"] == run_id
        assert any(u.status == "challenger" and u.drift_event_id == event.event_id for u in published)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        log.close()


def test_no_run_starts_while_a_challenger_is_in_its_canary(driftloop_settings: Settings) -> None:
    settings = driftloop_settings
    publish_model_update(
        settings,
        ModelUpdate(
            model_name="fraud",
            version="v2",
            status="canary_step",
            traffic_percent=5.0,
            champion_version="v1",
            created_at=datetime.now(UTC),
        ),
    )
    produce(settings, settings.topics.drift_events, [(b"fraud", encode_event(drift_event("e-canary")))])
    launcher = RecordingLauncher()
    run_trigger_over(settings, launcher, expected_offset=1)
    assert launcher.events == []
