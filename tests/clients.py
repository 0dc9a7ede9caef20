"""Run a directory's tests on both Kafka clients (``kafka.client``).

A ``conftest.py`` that imports :func:`kafka_settings` from here (or a module marked with
:data:`ON_BOTH_CLIENTS`) overrides the suite's
kafka-python-only fixture with this one, parametrized: every test that reaches Kafka through
``kafka_settings`` (or ``driftloop_settings`` and the other fixtures built on it) runs once per
client, its id ending in ``[kafka-python]`` or ``[confluent-kafka]``.
"""

from __future__ import annotations

import uuid

import pytest

from streaming.config import KafkaSettings

CLIENTS = ["kafka-python", "confluent-kafka"]

#: For one module: ``pytestmark = [..., ON_BOTH_CLIENTS]`` (the suite's ``kafka_settings``
#: takes the client as its parameter).
ON_BOTH_CLIENTS = pytest.mark.parametrize("kafka_settings", CLIENTS, indirect=True)


@pytest.fixture(params=CLIENTS)
def kafka_settings(kafka_bootstrap: str, request: pytest.FixtureRequest) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=kafka_bootstrap, client_id=f"test-{uuid.uuid4().hex[:8]}", client=request.param
    )
