"""A secured three-node cluster (`driftloop kafka start --nodes 3 --security sasl_ssl`):
TLS, SCRAM users and ACLs per component. Each component does its job as its own user; a
client without credentials, one with a wrong password and one whose ACLs forbid a write are
refused fast, with one clear line; the demo's whole loop runs as the `driftloop` user."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from kafka.errors import TopicAuthorizationFailedError
from pydantic import SecretStr

from streaming.config import KafkaSettings, Settings, TopicNames, load_settings
from streaming.control.updates import champion_update
from streaming.errors import KafkaUnavailableError, NotAuthorizedError
from streaming.kafka import transport
from streaming.kafka.clients import make_producer, require_broker
from streaming.kafka.local_security import LocalSecurity
from streaming.kafka.publishing import publish_model_update
from tests.clients import CLIENTS
from tests.kafka.test_cluster import free_port_range
from tests.kafka_helpers import produce, start_scorer_process
from tests.scoring.test_service import ids_of, register, transactions, wait_for_scores

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class SecuredCluster:
    home: Path
    bootstrap_servers: str
    env: dict[str, str]  # DRIFTLOOP_HOME and the local_kafka ports, no credentials

    def cli(
        self, *args: str, user: str | None = None, timeout: float = 120, **more_env: str
    ) -> subprocess.CompletedProcess[str]:
        """`driftloop <args>` as ``user`` (its env file; "broker": the brokers' own user, who
        may alter ACLs), or without credentials."""
        env = dict(self.env)
        if user == "broker":
            env.update(line.split("=", 1) for line in self.env_file("driftloop").read_text().splitlines())
            env.update(
                DRIFTLOOP_KAFKA__SASL_PLAIN_USERNAME="broker",
                DRIFTLOOP_KAFKA__SASL_PLAIN_PASSWORD_FILE=str(self.home / "kafka" / "broker.secret"),
            )
        elif user is not None:
            env.update(line.split("=", 1) for line in self.env_file(user).read_text().splitlines())
        env.update(more_env)
        return subprocess.run(
            [sys.executable, "-m", "streaming.cli", *args],
            env=env, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def env_file(self, user: str) -> Path:
        return LocalSecurity(self.home).env_file(user)

    def kafka(self, user: str) -> KafkaSettings:
        return LocalSecurity(self.home).client_settings(user, self.bootstrap_servers, replicas=3)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredCluster]:
    home = tmp_path_factory.mktemp("secured") / "home"
    base = free_port_range(6)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DRIFTLOOP_") and k != "KAFKA_BOOTSTRAP_SERVERS"
    }
    env.update(
        DRIFTLOOP_HOME=str(home),
        DRIFTLOOP_LOCAL_KAFKA__PORT=str(base),
        DRIFTLOOP_LOCAL_KAFKA__CONTROLLER_PORT=str(base + 3),
    )
    cluster = SecuredCluster(home, ",".join(f"127.0.0.1:{base + i}" for i in range(3)), env)
    started = cluster.cli("kafka", "start", "--nodes", "3", "--security", "sasl_ssl", timeout=300)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert "secured: SASL_SSL, SCRAM-SHA-512" in started.stdout, started.stdout
        yield cluster
    finally:
        stopped = cluster.cli("kafka", "stop", timeout=120)
        assert stopped.returncode == 0, stopped.stderr


def settings_as(secured: SecuredCluster, user: str, tmp_path: Path) -> Settings:
    return load_settings(home=tmp_path / "home", kafka=secured.kafka(user))


def test_status_knows_the_secured_cluster_and_a_plaintext_restart_is_refused(secured: SecuredCluster) -> None:
    status = secured.cli("kafka", "status")
    assert status.returncode == 0 and status.stdout.count("is up at") == 3, status.stdout
    again = secured.cli("kafka", "start", "--security", "plaintext")
    assert again.returncode != 0 and "was set up sasl_ssl" in again.stderr, again.stderr


@pytest.mark.parametrize("client", CLIENTS)
def test_clients_without_credentials_or_with_a_wrong_password_are_refused_fast(
    secured: SecuredCluster, client: str
) -> None:
    started = time.monotonic()
    with pytest.raises(KafkaUnavailableError, match="another security_protocol than PLAINTEXT"):
        require_broker(
            KafkaSettings(bootstrap_servers=secured.bootstrap_servers, client=client), timeout_s=10
        )
    wrong = secured.kafka("scorer").model_copy(
        update={
            "client": client,
            "sasl_plain_password_file": None,
            "sasl_plain_password": SecretStr("not-the-password"),
        }
    )
    with pytest.raises(KafkaUnavailableError, match="authentication failed for user 'scorer'"):
        require_broker(wrong, timeout_s=10)
    unknown_ca = secured.kafka("scorer").model_copy(update={"client": client, "ssl_cafile": None})
    with pytest.raises(KafkaUnavailableError, match=r"TLS: the handshake .* failed \(unknown CA"):
        require_broker(unknown_ca, timeout_s=5)
    require_broker(secured.kafka("scorer").model_copy(update={"client": client}), timeout_s=10)
    assert time.monotonic() - started < 40
    # Nothing secret in what `config show` prints: the password stays in its file.
    shown = secured.cli("config", "show", user="scorer")
    password = LocalSecurity(secured.home).password_file("scorer").read_text().strip()
    assert shown.returncode == 0 and password not in shown.stdout and "scorer.password" in shown.stdout


def test_each_component_may_do_its_job_and_nothing_else(
    secured: SecuredCluster, history: pd.DataFrame, tmp_path: Path
) -> None:
    created = secured.cli("topics", "create", "--partitions", "4", user="operator")
    assert created.returncode == 0, created.stderr
    refused = secured.cli("topics", "create", user="scorer")
    assert refused.returncode != 0 and refused.stderr.count("\n") <= 2, refused.stderr
    assert "not authorized: user 'scorer' may not create topics" in refused.stderr, refused.stderr

    operator = settings_as(secured, "operator", tmp_path)
    manifest = register(operator, history)
    publish_model_update(operator, champion_update(manifest))
    started = time.monotonic()
    with pytest.raises(NotAuthorizedError, match=r"user 'scorer' may not write model\.updates"):
        publish_model_update(
            settings_as(secured, "scorer", tmp_path), champion_update(manifest), timeout_s=20
        )
    trigger = make_producer(secured.kafka("trigger"))
    try:  # nor may the trigger write scores
        with pytest.raises(TopicAuthorizationFailedError):
            trigger.send(operator.topics.scores, key=b"k", value=b"v").get(timeout=20)
    finally:
        trigger.close(timeout=5)
    assert time.monotonic() - started < 30, "refusals are immediate, not retried"

    # The scorer, as its own user, exactly-once: transactions in (from the producer user),
    # scores out, read back by the operator.
    producer = settings_as(secured, "producer", tmp_path)
    messages = transactions(2000, seed=3)
    produce(producer, producer.topics.transactions, messages)
    scorer = settings_as(secured, "scorer", tmp_path)
    scorer = scorer.model_copy(
        update={
            "scoring": scorer.scoring.model_copy(update={"delivery": "exactly_once"}),
            "registry": operator.registry.model_copy(update={"path": operator.registry_path}),
        }
    )
    log = tmp_path / "scorer.log"
    process = start_scorer_process(scorer, log)
    try:
        scores = wait_for_scores(operator, ids_of(messages), timeout_s=120)
        assert {s.transaction_id for s in scores} == ids_of(messages), log.read_text()[-3000:]
    finally:
        process.terminate()
        process.wait(timeout=60)
    password = LocalSecurity(secured.home).password_file("scorer").read_text().strip()
    assert password not in log.read_text(), "the scorer's log shows no secret"


@pytest.mark.parametrize(("client", "user"), [("kafka-python", "join"), ("confluent-kafka", "monitor")])
def test_acls_applied_through_either_client_let_a_user_do_what_it_was_refused(
    secured: SecuredCluster, client: str, user: str
) -> None:
    """`driftloop topics acls --user USER=producer --apply`, as the brokers' own user through
    ``client``: ``user`` (which reads, but may not write, labels) may then write labels."""
    created = secured.cli("topics", "create", "--partitions", "4", user="operator")
    assert created.returncode == 0, created.stderr
    kafka = secured.kafka(user).model_copy(update={"client": client})
    labels = TopicNames().labels

    def write_a_label() -> None:
        producer = transport.make_producer(kafka)
        try:
            producer.send(labels, key=b"acl-probe", value=b"{}").get(timeout=20)
        finally:
            producer.close(timeout=5)

    with pytest.raises(TopicAuthorizationFailedError):
        write_a_label()
    refused = secured.cli("topics", "acls", "--user", f"{user}=producer", "--apply", user=user)
    assert refused.returncode != 0 and "were refused" in refused.stderr, refused.stderr
    applied = secured.cli(
        "topics", "acls", "--user", f"{user}=producer", "--apply",
        user="broker", DRIFTLOOP_KAFKA__CLIENT=client,
    )  # fmt: skip
    assert applied.returncode == 0 and "applied 2 ACLs" in applied.stdout, applied.stdout + applied.stderr
    deadline = time.monotonic() + 30  # every broker learns of new ACLs from the metadata log
    while True:
        try:
            write_a_label()
            break
        except TopicAuthorizationFailedError:
            assert time.monotonic() < deadline, "the applied ACL never took effect"
            time.sleep(1)


def test_the_demo_loop_runs_on_the_secured_cluster_as_the_driftloop_user(
    secured: SecuredCluster, tmp_path: Path
) -> None:
    report = tmp_path / "report.html"
    done = secured.cli("demo", "--short", "--report", str(report), user="driftloop", timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    shown = f"{json.dumps(summary)}\n{done.stderr[-3000:]}"  # the whole summary, not pytest's cut
    assert summary["drift_events_after_onset"] >= 1, shown
    assert summary["challengers"] >= 1 and summary["promotions"] >= 1, shown
    password = LocalSecurity(secured.home).password_file("driftloop").read_text().strip()
    assert password not in done.stdout + done.stderr + report.read_text()
