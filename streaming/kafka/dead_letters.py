"""Dead letters: a record that cannot be processed is kept, with why, on a ``*.dlq`` topic.

A dead letter is always small enough to be written: it keeps at most
``messages.dead_letter_value_bytes`` of the original value (and 1 KiB of its key), with the
whole value's size and sha256, and the topic, partition and offset where the original
still is. A message too large to process can therefore never block its partition by
making its own dead letter too large to produce.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from streaming.errors import DecodeError
from streaming.events import DeadLetter

#: Bytes of the original key a dead letter keeps.
MAX_KEY_BYTES = 1024
#: Bytes of the original value a dead letter keeps unless told otherwise.
DEFAULT_VALUE_BYTES = 65_536


def dead_letter(
    record: Any, error: Exception, consumer: str, max_value_bytes: int = DEFAULT_VALUE_BYTES
) -> DeadLetter:
    """A DeadLetter for a kafka-python ``ConsumerRecord`` that failed with ``error``."""
    reason = error.reason if isinstance(error, DecodeError) else type(error).__name__
    return bounded_dead_letter(
        reason=reason,
        error=str(error),
        source_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        consumer=consumer,
        max_value_bytes=max_value_bytes,
    )


def bounded_dead_letter(
    *,
    reason: str,
    error: str,
    source_topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    consumer: str,
    max_value_bytes: int = DEFAULT_VALUE_BYTES,
) -> DeadLetter:
    """A DeadLetter that keeps at most ``max_value_bytes`` of ``value`` (and 1 KiB of ``key``).

    >>> letter = bounded_dead_letter(reason="too_large", error="...", source_topic="t", partition=0,
    ...                              offset=7, key=b"k", value=b"x" * 100, consumer="c", max_value_bytes=10)
    >>> letter.value, letter.value_size, letter.truncated, letter.value_sha256[:12]
    (b'xxxxxxxxxx', 100, True, '09ecb6ebc8bc')
    """
    value = bytes(value) if value is not None else None
    truncated = (value is not None and len(value) > max_value_bytes) or (
        key is not None and len(key) > MAX_KEY_BYTES
    )
    return DeadLetter(
        reason=reason,
        error=error[:2000],
        source_topic=source_topic,
        partition=partition,
        offset=offset,
        key=key[:MAX_KEY_BYTES] if key is not None else None,
        value=value[:max_value_bytes] if value is not None else None,
        value_size=len(value) if value is not None else None,
        value_sha256=hashlib.sha256(value).hexdigest() if value is not None else None,
        truncated=truncated,
        consumer=consumer,
        failed_at=datetime.now(UTC),
    )
