"""Structured logs: one JSON object per line on stderr.

Get loggers with :func:`get_logger` and pass Kafka coordinates and other context through
``extra``; they become fields::

    log = get_logger("driftloop.score")
    log.warning("dead letter", extra={"topic": "transactions", "partition": 3, "offset": 17})

A field named like a ``LogRecord`` attribute (``thread``, ``name``, ``module``...) would make
the standard library raise ``KeyError`` at the call, crashing the caller over a log line;
:func:`get_logger`'s loggers append ``_`` to such a name instead (``thread_``).
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import msgspec

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_encoder = msgspec.json.Encoder()


class _FieldsAdapter(logging.LoggerAdapter[logging.Logger]):
    """Passes ``extra`` through, renaming the keys the standard library reserves."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        extra = kwargs.get("extra")
        if extra and not _STANDARD.isdisjoint(extra):
            kwargs["extra"] = {f"{k}_" if k in _STANDARD else k: v for k, v in extra.items()}
        return msg, kwargs


def get_logger(name: str) -> logging.LoggerAdapter[logging.Logger]:
    """A logger whose ``extra`` fields can never collide with a ``LogRecord`` attribute.

    >>> import io
    >>> stream = io.StringIO(); handler = logging.StreamHandler(stream)
    >>> handler.setFormatter(JsonFormatter()); logging.getLogger("doc").addHandler(handler)
    >>> get_logger("doc").warning("run started", extra={"thread": "retrain-1", "mode": "in-process"})
    >>> '"thread_":"retrain-1"' in stream.getvalue()
    True
    """
    return _FieldsAdapter(logging.getLogger(name), {})


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


def _not_a_close_race(record: logging.LogRecord) -> bool:
    """False for kafka-python 3.0's ERROR logs of its own close races, which are harmless.

    Closing a connection closes the transport's socket (and sets it to ``None``) while its
    read task may still be waiting on the selector; the task then reads from the closed
    socket and logs "Error receiving network data closing socket" with an
    ``AttributeError`` ('NoneType' ... 'recv') or ``OSError`` (EBADF) traceback. A metadata
    request in flight is failed with ``Cancelled`` and logged as "Metadata refresh:
    failed". The connection was being closed on purpose and nothing is lost (kafka-python's
    own fetcher logs a ``Cancelled`` at INFO).
    """
    error = record.exc_info[1] if record.exc_info else None
    if isinstance(error, AttributeError) and "'NoneType'" in str(error) and "recv" in str(error):
        return False
    if isinstance(error, OSError) and error.errno == errno.EBADF:
        return False
    cause = record.args[0] if isinstance(record.args, tuple) and record.args else None
    is_cancelled = type(cause).__name__ == "Cancelled" and type(cause).__module__.startswith("kafka")
    return not (record.msg == "Metadata refresh: failed %s" and is_cancelled)


def configure_logging(level: str = "INFO") -> None:
    """Send driftloop's logs to stderr as JSON lines; quieten kafka-python's and httpx's chatter
    (httpx logs every request Prefect's client makes at INFO) and drop kafka-python's errors
    about connections it is closing itself (see ``_not_a_close_race``)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for chatty in ("kafka", "httpx"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    for name in ("kafka.net.transport", "kafka.cluster"):
        racing = logging.getLogger(name)
        if _not_a_close_race not in racing.filters:
            racing.addFilter(_not_a_close_race)


@contextmanager
def stderr_into(path: Path) -> Iterator[TextIO]:
    """Send everything written to stderr, by this process and the ones it starts, to ``path``
    for the block; yield a stream on the terminal stderr was.

    For a live view: kafka-python's warnings, Prefect's logs, a library's traceback and a
    child process's output then land in the log file instead of breaking up the view.
    Works on file descriptor 2 itself, so output that bypasses ``sys.stderr`` (the
    temporary Prefect server's subprocess) is captured too.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    with path.open("ab") as log:
        os.dup2(log.fileno(), 2)
    terminal = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="replace")
    try:
        yield terminal
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        terminal.close()
