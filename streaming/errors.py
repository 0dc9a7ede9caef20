"""One exception tree for driftloop.

Every error driftloop raises derives from :class:`DriftloopError`; third-party errors
are wrapped (``raise ... from exc``) so callers catch one type per area.
"""

from __future__ import annotations


class DriftloopError(Exception):
    """Root of every error driftloop raises on purpose."""


class ConfigError(DriftloopError):
    """The configuration (environment, config file, feature spec) is invalid."""


class DecodeError(DriftloopError):
    """A message could not be decoded into a driftloop event.

    ``reason`` is a short machine-readable cause (``invalid_json``, ``validation``,
    ``unsupported_schema_version``, ``non_finite``, ``feature_spec``) and the message
    names the offending field where there is one. A consumer turns this into a
    dead-letter record; it never crashes on it.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class BrokerError(DriftloopError):
    """The local Kafka broker could not be fetched, formatted, started or stopped."""


class KafkaUnavailableError(DriftloopError):
    """No Kafka broker answered at the configured bootstrap servers."""


class DeliveryError(DriftloopError):
    """Outputs (scores, dead letters, drift events, state) could not be written; the offsets of
    the records they came from are not committed, so a restart processes those records again."""
