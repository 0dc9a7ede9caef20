"""The command line as a user meets it: errors in one line, `events tail`, quick start-up."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest

from streaming.config import Settings, child_env
from streaming.events import DeadLetter, DriftEvent, ModelUpdate, encode_event
from tests.conftest import free_port
from tests.kafka_helpers import produce

DRIFTLOOP = [sys.executable, "-m", "streaming.cli"]


def driftloop(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DRIFTLOOP, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.parametrize(
    ("client", "command"),
    [
        *[
            ("kafka-python", command)
            for command in (
                ["score"],
                ["trigger"],
                ["canary"],
                ["topics", "create"],
                ["events", "tail", "drift.events"],
            )
        ],
        ("confluent-kafka", ["score"]),
        ("confluent-kafka", ["topics", "create"]),
    ],
)
def test_without_a_broker_a_command_fails_within_seconds_in_one_line(client: str, command: list[str]) -> None:
    import os

    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLOOP_")}
    env.update(KAFKA_BOOTSTRAP_SERVERS=address, DRIFTLOOP_KAFKA__CLIENT=client)
    started = time.monotonic()
    done = driftloop(env, *command)
    took = time.monotonic() - started
    assert done.returncode == 1
    assert took < 12, f"took {took:.1f} s"
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert address in lines[0] and "driftloop kafka start" in lines[0]
    assert "ECONNREFUSED" in lines[0] or "Connection refused" in lines[0], lines[0]


def test_help_starts_in_under_a_second() -> None:
    timings = []
    for _ in range(3):
        started = time.monotonic()
        subprocess.run([*DRIFTLOOP, "--help"], capture_output=True, check=True)
        timings.append(time.monotonic() - started)
    assert min(timings) < 1.0, timings


def test_score_help_shows_every_default() -> None:
    done = subprocess.run(
        [*DRIFTLOOP, "score", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={"COLUMNS": "200", "PATH": ""},
    )
    text = " ".join(done.stdout.split())
    for default in (
        "scoring.max_batch = 1000",
        "scoring.max_wait_ms = 20",
        "scoring.metrics_port = 9108",
        "[default: INFO]",
    ):
        assert default in text, text


@pytest.mark.integration
def test_events_tail_shows_drift_events_updates_and_dead_letters_readable_or_as_json(
    driftloop_settings: Settings,
) -> None:
    settings = driftloop_settings
    now = datetime.now(UTC)
    drift = DriftEvent(
        event_id="e-1",
        model_name="fraud",
        model_version="v1",
        signal="error",
        detector="adwin",
        severity="high",
        partition=1,
        detected_at=now,
    )
    update = ModelUpdate(
        model_name="fraud",
        version="v2",
        status="canary_step",
        traffic_percent=25.0,
        champion_version="v1",
        created_at=now,
    )
    letter = DeadLetter(
        reason="invalid_json",
        error="JSON is malformed",
        source_topic=settings.topics.transactions,
        partition=0,
        offset=7,
        value=b"{",
        consumer="c",
        failed_at=now,
    )
    produce(
        settings, settings.topics.drift_events, [(b"fraud", encode_event(drift)), (b"fraud", b"not json")]
    )
    produce(settings, settings.topics.model_updates, [(b"fraud", encode_event(update))])
    produce(settings, settings.topics.transactions_dlq, [(b"k", encode_event(letter))])
    env = child_env(settings)

    readable = driftloop(env, "events", "tail", "drift-events", "--no-follow")
    assert readable.returncode == 0, readable.stderr
    lines = readable.stdout.splitlines()
    assert len(lines) == 2
    assert "drift error" in lines[0] and "severity=high" in lines[0] and "id=e-1" in lines[0]
    assert "undecodable: invalid_json" in lines[1], "a bad record is shown, never skipped"

    as_json = driftloop(env, "events", "tail", settings.topics.model_updates, "--no-follow", "--json")
    (record,) = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert record["value"]["status"] == "canary_step" and record["value"]["traffic_percent"] == 25.0
    assert record["topic"] == settings.topics.model_updates and record["key"] == "fraud"

    dead = driftloop(env, "events", "tail", "transactions_dlq", "--no-follow")
    assert f"from={settings.topics.transactions}/0@7" in dead.stdout and "reason=invalid_json" in dead.stdout

    # Following: a record published after the tail caught up is shown as it arrives. The
    # first line (the update already on the topic) says the tail is reading.
    follower = subprocess.Popen(
        [*DRIFTLOOP, "events", "tail", "model_updates", "--limit", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None
        assert "canary_step fraud v2" in follower.stdout.readline()
        promoted = ModelUpdate(
            model_name="fraud", version="v2", status="promoted", created_at=datetime.now(UTC)
        )
        produce(settings, settings.topics.model_updates, [(b"fraud", encode_event(promoted))])
        assert "promoted fraud v2" in follower.stdout.readline()
        assert follower.wait(timeout=30) == 0, follower.stderr.read() if follower.stderr else ""
    finally:
        follower.kill()
