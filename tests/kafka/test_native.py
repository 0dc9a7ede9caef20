"""The join's C producer (librdkafka) on the settings the kafka-python clients use."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from streaming.config import KafkaSettings
from streaming.errors import ConfigError
from streaming.kafka.native import NativeDeliveryError, NativeProducer, librdkafka_config
from streaming.kafka.reading import TopicReader
from tests.kafka_helpers import sasl_ssl_broker


def test_the_security_settings_map_to_librdkafka_properties(tmp_path: Path) -> None:
    kafka = KafkaSettings(
        bootstrap_servers="a:9093, b:9093",
        security_protocol="SASL_SSL",
        ssl_cafile=tmp_path / "ca.pem",
        ssl_check_hostname=False,
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username="driftloop",
        sasl_plain_password=SecretStr("s3cret"),
    )
    config = librdkafka_config(kafka)
    assert config["bootstrap.servers"] == "a:9093,b:9093"
    assert config["security.protocol"] == "sasl_ssl"
    assert config["ssl.ca.location"] == str(tmp_path / "ca.pem")
    assert config["ssl.endpoint.identification.algorithm"] == "none"
    assert (config["sasl.mechanism"], config["sasl.username"], config["sasl.password"]) == (
        "SCRAM-SHA-512",
        "driftloop",
        "s3cret",
    )
    assert "ssl.ca.location" not in librdkafka_config(KafkaSettings())


def test_oauthbearer_needs_a_token_provider_named_in_the_configuration_and_both_clients_use_it() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="OAUTHBEARER needs sasl_oauth_token_provider"):
        KafkaSettings(security_protocol="SASL_SSL", sasl_mechanism="OAUTHBEARER")
    with pytest.raises(ValidationError, match=r"package\.module:factory"):
        KafkaSettings(sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider="no_colon")
    kafka = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_mechanism="OAUTHBEARER",
        sasl_oauth_token_provider="streaming.kafka.local_broker:UnsecuredJwt",
    )
    token, expiry = librdkafka_config(kafka)["oauth_cb"]("")
    assert token.count(".") == 2 and expiry > time.time()
    from kafka.net.sasl.oauth import AbstractTokenProvider

    from streaming.kafka.clients import kafka_python_options

    provider = kafka_python_options(kafka.client_options())["sasl_oauth_token_provider"]
    assert isinstance(provider, AbstractTokenProvider) and provider.token().count(".") == 2
    missing = KafkaSettings(sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider="nowhere.at_all:Tokens")
    with pytest.raises(ConfigError, match=r"kafka\.sasl_oauth_token_provider = 'nowhere\.at_all:Tokens'"):
        missing.client_options()


@pytest.mark.integration
def test_both_clients_work_against_an_oauthbearer_broker_and_the_cli_too(tmp_path: Path) -> None:
    import subprocess
    import sys

    from streaming.config import KAFKA_VERSION
    from streaming.kafka.local_broker import LocalBroker
    from tests.conftest import free_port

    broker = LocalBroker(
        tmp_path / "kafka", KAFKA_VERSION, port=free_port(), controller_port=free_port(), oauth=True
    )
    broker.start(timeout_s=120)
    try:
        env = {
            "PATH": "/usr/bin:/bin",
            "DRIFTLOOP_HOME": str(tmp_path / "home"),
            "DRIFTLOOP_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "DRIFTLOOP_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "DRIFTLOOP_KAFKA__SASL_MECHANISM": "OAUTHBEARER",
            "DRIFTLOOP_KAFKA__SASL_OAUTH_TOKEN_PROVIDER": "streaming.kafka.local_broker:UnsecuredJwt",
        }
        done = subprocess.run(
            [sys.executable, "-m", "streaming.cli", "topics", "create"],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0 and "created: transactions" in done.stdout, done.stderr[-2000:]
        kafka = KafkaSettings(
            bootstrap_servers=broker.bootstrap_servers,
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="OAUTHBEARER",
            sasl_oauth_token_provider="streaming.kafka.local_broker:UnsecuredJwt",
        )
        failures: list[BaseException] = []
        producer = NativeProducer(kafka, failures.append)  # librdkafka, its token from oauth_cb
        producer.send("transactions", b"k", b"v")
        producer.flush(30)
        producer.close()
        assert not failures
        with TopicReader(kafka, "transactions") as reader:  # kafka-python, its token from the provider
            records = []
            deadline = time.monotonic() + 30
            while not records and time.monotonic() < deadline:
                records += reader.poll(timeout_ms=300)
        assert [r.value for r in records] == [b"v"]
    finally:
        broker.stop()


@pytest.mark.integration
def test_it_delivers_over_sasl_ssl_and_names_a_wrong_password(tmp_path: Path) -> None:
    with sasl_ssl_broker(tmp_path / "kafka", {"driftloop": "the-right-one"}) as broker:

        def kafka(password: str) -> KafkaSettings:
            return KafkaSettings(
                bootstrap_servers=broker.bootstrap_servers,
                security_protocol="SASL_SSL",
                ssl_cafile=broker.ca_file,
                sasl_mechanism="SCRAM-SHA-512",
                sasl_plain_username="driftloop",
                sasl_plain_password=SecretStr(password),
            )

        failures: list[BaseException] = []
        producer = NativeProducer(kafka("the-right-one"), failures.append, delivery_timeout_s=30)
        for i in range(100):
            producer.send("native", f"k{i}".encode(), f"v{i}".encode(), partition=0)
        producer.flush(30)
        assert failures == [] and producer.next_offset("native", 0) == 100
        with TopicReader(kafka("the-right-one"), "native", topic_timeout_s=30.0) as reader:
            values = [r.value for r in reader.read_to_end(timeout_s=30)]
        assert values == [f"v{i}".encode() for i in range(100)]
        librdkafka = kafka("the-right-one").model_copy(update={"client": "confluent-kafka"})
        with TopicReader(librdkafka, "native", topic_timeout_s=30.0) as reader:  # its consumer too
            assert [r.value for r in reader.read_to_end(timeout_s=30)] == values

        refused = NativeProducer(kafka("a-wrong-one"), failures.append, delivery_timeout_s=5)
        refused.send("native", b"k", b"v", partition=0)
        started = time.monotonic()
        refused.flush(15)  # the record fails within its delivery timeout, and is reported
        assert time.monotonic() - started < 10
        (failure,) = failures
        assert isinstance(failure, NativeDeliveryError) and refused.failures == 1
        assert "timed out" in str(failure) and "Authentication failed" in str(failure), str(failure)


@pytest.mark.integration
@pytest.mark.parametrize("path", ["send", "poll"])
def test_a_fenced_transactional_producer_fails_its_next_send_or_poll_saying_it_was_fenced(
    kafka_settings: KafkaSettings, topic_factory: Any, unique_name: Any, path: str
) -> None:
    """librdkafka learns of the fence in the background; a send after it fails with a bare
    "Fatal error", and a poll raises librdkafka's own exception. Both become
    NativeDeliveryError with the reason (what the scorer's one line about a fenced scorer is
    made from)."""
    topic = topic_factory("fenced")
    transactional_id = unique_name(f"txn-{path}")

    def producer() -> NativeProducer:
        made = NativeProducer(
            kafka_settings,
            lambda exc: None,
            30,
            transactional_id=transactional_id,
            transaction_timeout_ms=60_000,
        )
        made.init_transactions()
        return made

    first = producer()
    first.begin_transaction()
    first.send(topic, b"k", b"v")
    first.flush(10)
    second = producer()  # the same transactional id: fences the first
    try:
        first.send(topic, b"k", b"v")  # refused in the background
        deadline = time.monotonic() + 20
        with pytest.raises(NativeDeliveryError, match="fenced"):
            while time.monotonic() < deadline:
                if path == "send":
                    first.send(topic, b"k", b"v")
                else:
                    first.poll()
                time.sleep(0.2)
    finally:
        first.close(0)
        second.close(5)
