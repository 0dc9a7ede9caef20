"""The scorer's tests run on both Kafka clients (``kafka.client``)."""

from __future__ import annotations

import uuid

import pytest

from streaming.config import KafkaSettings


@pytest.fixture(params=["kafka-python", "confluent-kafka"])
def kafka_settings(kafka_bootstrap: str, request: pytest.FixtureRequest) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=kafka_bootstrap, client_id=f"test-{uuid.uuid4().hex[:8]}", client=request.param
    )
