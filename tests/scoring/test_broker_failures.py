"""When Kafka fails: a broker of the test's own, killed under a running scorer process."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from streaming.config import KAFKA_VERSION, KafkaSettings, ScoringSettings, Settings, load_settings
from streaming.control.updates import champion_update
from streaming.events import Score, encode_event
from streaming.kafka.clients import ensure_topics
from streaming.kafka.local_broker import LocalBroker
from streaming.kafka.publishing import publish_model_update
from streaming.models.first_champion import train_and_register
from streaming.models.training import TrainingParams
from streaming.simulation.generator import TransactionSimulator, to_transactions
from streaming.topics import topic_catalogue
from tests.conftest import free_port
from tests.kafka_helpers import decode_all, produce, read_topic, records_written, sasl_ssl_broker
from tests.processes import Command

pytestmark = pytest.mark.integration


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    broker = LocalBroker(tmp_path / "kafka", KAFKA_VERSION, port=free_port(), controller_port=free_port())
    broker.start(timeout_s=120)
    try:
        yield broker
    finally:
        broker.stop()


def _scores_written(settings: Settings) -> int:
    return records_written(settings.kafka, settings.topics.scores)


@pytest.mark.parametrize("client", ["kafka-python", "confluent-kafka"])
def test_a_90_second_broker_outage_ends_the_scorer_with_one_line_and_loses_nothing(
    own_broker: LocalBroker, history: pd.DataFrame, tmp_path: Path, client: str
) -> None:
    settings = load_settings(
        home=tmp_path / "home",
        kafka=KafkaSettings(bootstrap_servers=own_broker.bootstrap_servers, client=client),
        scoring=ScoringSettings(group_id="outage", metrics_port=0, delivery_timeout_s=20),
    )
    ensure_topics(settings.kafka, topic_catalogue(settings.topics, partitions=2))
    publish_model_update(
        settings, champion_update(train_and_register(settings, history, params=TrainingParams(max_iter=20)))
    )
    frame = TransactionSimulator(seed=8).generate(80_000)
    messages = [(t.account_id.encode(), encode_event(t)) for t in to_transactions(frame)]
    produce(settings, settings.topics.transactions, messages)

    scorer = Command(settings, tmp_path / "score.log", "score")
    scorer.wait_for(lambda: _scores_written(settings) > 1000, "the first scores")
    pid = own_broker.status().pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # an outage, not a controlled shutdown
    killed = time.monotonic()
    try:
        code = scorer.process.wait(timeout=90)
    except Exception:
        scorer.process.kill()
        raise AssertionError(f"the scorer still runs 90 s into the outage:\n{scorer.tail()}") from None
    ended = time.monotonic() - killed
    stderr = scorer.log.read_text()
    assert code == 1, stderr[-3000:]
    *logged, last = stderr.strip().splitlines()
    assert all(line.startswith("{") for line in logged), "only JSON log lines, no raw traceback"
    assert last.startswith("error: Kafka at ") and "offsets not committed" in last, last
    assert ended < 60, f"ended {ended:.0f} s into the outage (delivery_timeout_s is 20)"

    # The broker back: a restarted scorer scores every transaction (again, for the records
    # since the last checkpoint).
    own_broker.start(timeout_s=120)
    again = Command(settings, tmp_path / "score-again.log", "score")
    try:
        expected = {t.transaction_id for t in to_transactions(frame)}
        scores = decode_all(
            read_topic(
                settings,
                settings.topics.scores,
                lambda rs: len({r.key for r in rs}) >= len(expected),
                timeout_s=240,
            ),
            Score,
        )
    finally:
        code, _ = again.stop()
    assert code == 0, again.tail()
    assert {s.transaction_id for s in scores} == expected, "nothing is lost across the outage"


def test_a_missing_ca_and_a_wrong_password_are_each_named_in_one_line_within_seconds(tmp_path: Path) -> None:
    """A SASL_SSL listener (TLS with a CA of its own, SCRAM-SHA-512 users), as a secured
    cluster's; `driftloop topics create` without the CA, then with a wrong password."""
    import subprocess
    import sys

    with sasl_ssl_broker(tmp_path / "kafka", {"driftloop": "the-right-one"}) as broker:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DRIFTLOOP_", "KAFKA_"))}
        env.update(
            DRIFTLOOP_HOME=str(tmp_path / "home"),
            DRIFTLOOP_KAFKA__BOOTSTRAP_SERVERS=broker.bootstrap_servers,
            DRIFTLOOP_KAFKA__SECURITY_PROTOCOL="SASL_SSL",
            DRIFTLOOP_KAFKA__SASL_MECHANISM="SCRAM-SHA-512",
            DRIFTLOOP_KAFKA__SASL_PLAIN_USERNAME="driftloop",
        )

        def topics_create(**settings: str) -> tuple[subprocess.CompletedProcess[str], float]:
            started = time.monotonic()
            done = subprocess.run(
                [sys.executable, "-m", "streaming.cli", "topics", "create"],
                env={**env, **{f"DRIFTLOOP_KAFKA__{k.upper()}": v for k, v in settings.items()}},
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            return done, time.monotonic() - started

        no_ca, took = topics_create(sasl_plain_password="the-right-one")
        assert no_ca.returncode == 1 and took < 12, (took, no_ca.stderr)
        (line,) = no_ca.stderr.strip().splitlines()
        assert line.startswith("error: TLS: the handshake with") and "unknown CA" in line, line

        ca = str(broker.ca_file)
        refused, took = topics_create(ssl_cafile=ca, sasl_plain_password="a-wrong-one")
        assert refused.returncode == 1 and took < 12, (took, refused.stderr)
        (line,) = refused.stderr.strip().splitlines()
        assert line.startswith("error: authentication failed for user 'driftloop' (SCRAM-SHA-512)"), line

        created, _ = topics_create(ssl_cafile=ca, sasl_plain_password="the-right-one")
        assert created.returncode == 0, created.stderr
        assert created.stdout.startswith("created: transactions"), created.stdout
