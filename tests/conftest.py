"""Shared fixtures: one real Kafka broker per test session, unique names per test.

The broker comes from, in order:

1. ``KAFKA_BOOTSTRAP_SERVERS`` when set (CI sets it to the broker `.ci/run` started);
2. a testcontainers Kafka container when a Docker engine answers;
3. the local broker of `driftloop kafka start`, started on free loopback ports in a
   temporary home and stopped at the end of the session.

A test that needs Kafka and cannot reach it fails; it never skips.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from streaming.config import KAFKA_VERSION, JoinSettings, KafkaSettings, ScoringSettings, Settings, TopicNames
from streaming.kafka.clients import broker_answers, ensure_topics
from streaming.simulation.generator import TransactionSimulator
from streaming.topics import TopicSpec, topic_catalogue


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _docker_engine_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:  # no engine, no socket, no permission: all mean "no Docker here"
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap servers of a real, reachable Kafka broker."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        if not broker_answers(configured, timeout_s=15):
            pytest.fail(f"KAFKA_BOOTSTRAP_SERVERS={configured} is set but no broker answers there")
        yield configured
        return
    if _docker_engine_answers():
        from testcontainers.community.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    from streaming.kafka.local_broker import LocalBroker

    broker = LocalBroker(
        tmp_path_factory.mktemp("kafka-home"), KAFKA_VERSION, port=free_port(), controller_port=free_port()
    )
    try:
        broker.start(timeout_s=120)
    except Exception as exc:
        pytest.fail(f"no Docker engine and the local broker did not start: {exc}")
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture
def kafka_settings(kafka_bootstrap: str, request: pytest.FixtureRequest) -> KafkaSettings:
    """kafka-python, or the client a test's indirect parameter names (tests/clients.py)."""
    return KafkaSettings(
        bootstrap_servers=kafka_bootstrap,
        client_id=f"test-{uuid.uuid4().hex[:8]}",
        client=getattr(request, "param", "kafka-python"),
    )


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """``unique_name("transactions")`` -> ``transactions-test_x-1a2b3c4d``: no test shares a name."""
    test = request.node.name.replace("[", "-").replace("]", "")[:40]

    def make(prefix: str) -> str:
        return f"{prefix}-{test}-{uuid.uuid4().hex[:8]}"

    return make


@pytest.fixture
def topic_factory(kafka_settings: KafkaSettings, unique_name: Callable[[str], str]) -> Callable[..., str]:
    """Create a uniquely named topic on the real broker and return its name."""

    def create(prefix: str = "topic", partitions: int = 1, configs: dict[str, str] | None = None) -> str:
        name = unique_name(prefix)
        spec = TopicSpec(name, None, "", "test topic", partitions, 1, configs or {})
        ensure_topics(kafka_settings, [spec])
        return name

    return create


@pytest.fixture
def group_id(unique_name: Callable[[str], str]) -> str:
    return unique_name("group")


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep a developer's DRIFTLOOP_* variables and config file out of the tests."""
    for name in list(os.environ):
        if name.startswith("DRIFTLOOP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DRIFTLOOP_HOME", str(tmp_path / "home"))


@pytest.fixture
def driftloop_settings(
    kafka_settings: KafkaSettings, unique_name: Callable[[str], str], tmp_path: Path
) -> Settings:
    """Settings with every topic uniquely named and created on the real broker."""
    names = TopicNames(**{field: unique_name(field.replace("_", "-")) for field in TopicNames.model_fields})
    settings = Settings(
        home=tmp_path / "home",
        kafka=kafka_settings,
        topics=names,
        scoring=ScoringSettings(group_id=unique_name("scorer"), metrics_port=0, max_wait_ms=20),
        join=JoinSettings(
            group_id=unique_name("join"), metrics_port=0, checkpoint_interval_s=0.5, session_timeout_ms=10_000
        ),
    )
    ensure_topics(kafka_settings, topic_catalogue(names, partitions=4))
    return settings


@pytest.fixture
def one_partition_settings(
    kafka_settings: KafkaSettings, unique_name: Callable[[str], str], tmp_path: Path
) -> Settings:
    """Single-partition topics, so offsets count rows of the stream."""
    names = TopicNames(**{field: unique_name(field.replace("_", "-")) for field in TopicNames.model_fields})
    ensure_topics(kafka_settings, topic_catalogue(names, partitions=1))
    return Settings(
        home=tmp_path / "home",
        kafka=kafka_settings,
        topics=names,
        scoring=ScoringSettings(group_id=unique_name("scorer"), metrics_port=0, max_wait_ms=20),
        join=JoinSettings(
            group_id=unique_name("join"), metrics_port=0, checkpoint_interval_s=0.5, session_timeout_ms=10_000
        ),
    )


@pytest.fixture(scope="session")
def history() -> pd.DataFrame:
    """Labeled simulated history to train models on."""
    return TransactionSimulator(seed=42).generate(6000)
