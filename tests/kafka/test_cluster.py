"""A three-node KRaft cluster on loopback: replicated topics, and a broker lost mid-run."""

from __future__ import annotations

import random
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from streaming.config import KAFKA_VERSION, KafkaSettings, Settings, load_settings
from streaming.control.updates import champion_update
from streaming.kafka.clients import ensure_topics, make_admin
from streaming.kafka.local_broker import LocalCluster
from streaming.kafka.publishing import publish_model_update
from streaming.topics import topic_catalogue
from tests.clients import CLIENTS
from tests.kafka_helpers import produce, read_topic, start_scorer_process
from tests.scoring.test_service import ids_of, register, transactions, wait_for_scores

pytestmark = pytest.mark.integration


def free_port_range(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports, below Linux's ephemeral range
    (32768-60999): a port there can be taken by any outgoing connection between this check
    and the broker's bind (CI once failed so: "Address already in use")."""
    for _ in range(200):
        base = random.randrange(20_000, 32_768 - count)
        sockets = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no free range of loopback ports")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    base = free_port_range(6)
    cluster = LocalCluster(
        tmp_path_factory.mktemp("cluster"), KAFKA_VERSION, nodes=3, port=base, controller_port=base + 3
    )
    try:
        cluster.start(timeout_s=180)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=CLIENTS)
def settings(cluster: LocalCluster, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    kafka = KafkaSettings(
        bootstrap_servers=cluster.bootstrap_servers,
        replication_factor=3,
        min_insync_replicas=2,
        client=request.param,
    )
    settings = load_settings(home=tmp_path / "home", kafka=kafka)
    ensure_topics(settings.kafka, topic_catalogue(settings.topics, partitions=6))
    return settings


def test_driftloops_topics_are_replicated_three_times_with_two_in_sync_required(settings: Settings) -> None:
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = make_admin(settings.kafka)
    try:
        [described] = admin.describe_topics([settings.topics.transactions])
        assert len(described["partitions"]) == 6
        assert all(len(p["replica_nodes"]) == 3 for p in described["partitions"]), described
        found = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, settings.topics.scores)])
        assert found["topic"][settings.topics.scores]["min.insync.replicas"]["value"] == "2", found
    finally:
        admin.close()


def test_one_broker_of_three_killed_mid_run_and_restarted_later_leaves_no_transaction_without_a_score(
    cluster: LocalCluster, settings: Settings, history: pd.DataFrame, tmp_path: Path
) -> None:
    publish_model_update(settings, champion_update(register(settings, history)))
    messages = transactions(20_000, seed=11)
    produce(settings, settings.topics.transactions, messages[:10_000])
    scorer = start_scorer_process(settings, tmp_path / "scorer.log")
    try:
        partial = read_topic(settings, settings.topics.scores, lambda rs: len(rs) >= 2000, timeout_s=120)
        assert len(partial) >= 2000, (tmp_path / "scorer.log").read_text()[-3000:]
        assert cluster.kill(2), "node 2 was running"  # SIGKILL: no controlled shutdown
        produce(settings, settings.topics.transactions, messages[10_000:])  # acks=all: 2 replicas in sync
        time.sleep(5)
        assert scorer.poll() is None, "the scorer keeps running with two brokers of three"
        cluster.start_node(2, timeout_s=120)
        scores = wait_for_scores(settings, ids_of(messages), timeout_s=240)
        assert {s.transaction_id for s in scores} == ids_of(messages), (tmp_path / "scorer.log").read_text()[
            -3000:
        ]
        assert scorer.poll() is None
    finally:
        scorer.send_signal(signal.SIGTERM)
        scorer.wait(timeout=60)
