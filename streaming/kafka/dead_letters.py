"""Dead letters: a record that cannot be processed is kept, with why, on a ``*.dlq`` topic."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from streaming.errors import DecodeError
from streaming.events import DeadLetter


def dead_letter(record: Any, error: Exception, consumer: str) -> DeadLetter:
    """A DeadLetter for a kafka-python ``ConsumerRecord`` that failed with ``error``."""
    reason = error.reason if isinstance(error, DecodeError) else type(error).__name__
    return DeadLetter(
        reason=reason,
        error=str(error),
        source_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        consumer=consumer,
        failed_at=datetime.now(UTC),
    )
