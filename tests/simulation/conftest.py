"""These tests run on both Kafka clients (``kafka.client``)."""

from tests.clients import kafka_settings  # noqa: F401
