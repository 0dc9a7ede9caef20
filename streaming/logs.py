"""Structured logs: one JSON object per line on stderr.

Pass Kafka coordinates and other context through ``extra``; they become fields::

    log.warning("dead letter", extra={"topic": "transactions", "partition": 3, "offset": 17})
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import msgspec

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_encoder = msgspec.json.Encoder()


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", ...extra fields}``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        try:
            return _encoder.encode(entry).decode()
        except (TypeError, msgspec.EncodeError):  # an extra value JSON cannot hold: log its repr
            plain = (str, int, float, bool, type(None))
            return _encoder.encode(
                {k: v if isinstance(v, plain) else repr(v) for k, v in entry.items()}
            ).decode()


def configure_logging(level: str = "INFO") -> None:
    """Send driftloop's logs to stderr as JSON lines; quieten kafka-python's chatter."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("kafka").setLevel(logging.WARNING)
