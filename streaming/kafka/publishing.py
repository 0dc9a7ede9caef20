"""Publish events and wait for the broker's acknowledgement."""

from __future__ import annotations

from kafka.errors import KafkaError

from streaming.config import Settings
from streaming.errors import KafkaUnavailableError
from streaming.events import ModelUpdate, encode_event
from streaming.kafka.clients import not_authorized
from streaming.kafka.transport import make_producer


def publish_model_update(settings: Settings, update: ModelUpdate, timeout_s: float = 30.0) -> None:
    """Write ``update`` to ``model.updates`` keyed by model name; raise unless acknowledged."""
    producer = make_producer(settings.kafka)
    try:
        future = producer.send(
            settings.topics.model_updates, key=update.model_name.encode(), value=encode_event(update)
        )
        future.get(timeout=timeout_s)
    except KafkaError as exc:
        refused = not_authorized(settings.kafka, exc, f"write {settings.topics.model_updates}")
        if refused is not None:
            raise refused from exc
        raise KafkaUnavailableError(f"publishing {update.status} {update.version} failed: {exc}") from exc
    finally:
        producer.close(timeout=10)
