"""One exception tree for driftloop.

Every error driftloop raises on purpose derives from :class:`DriftloopError`; third-party
errors are wrapped (``raise ... from exc``) so a caller catches one type per area. The tree:

- :class:`RejectedInputError` ``(reason, detail)``: an input was refused and is data, not a
  crash: a message (:class:`DecodeError`, dead-lettered), a model version
  (:class:`ModelRejectedError`, refused while the last good one serves), a drift-monitor
  snapshot (:class:`StateRejectedError`, ignored and rebuilt);
- :class:`StateStoreError`: a partition's on-disk state store (the outcome join's);
- :class:`ConfigError`: the configuration (environment, config file, feature spec);
- Kafka: :class:`KafkaUnavailableError` (no broker, or one that fails us),
  :class:`DeliveryError` (outputs not acknowledged, offsets not committed),
  :class:`BrokerError` (the local broker of `driftloop kafka`);
- models and data: :class:`TrainingError`, :class:`RegistryError`,
  :class:`RegistryCommandError`, :class:`DatasetError`, :class:`BacktestError`;
- the demo and benchmarks: :class:`PrefectServerError`, :class:`NothingToReportError`,
  :class:`BenchmarkError`.

>>> error = DecodeError("invalid_json", "expected ',' at byte 12")
>>> isinstance(error, RejectedInputError), error.reason, str(error)
(True, 'invalid_json', "invalid_json: expected ',' at byte 12")
"""

from __future__ import annotations

from dataclasses import dataclass, field


class DriftloopError(Exception):
    """Root of every error driftloop raises on purpose."""


# -- rejected inputs: data with a machine-readable reason, never a crash ----------------


class RejectedInputError(DriftloopError):
    """An input was refused; ``reason`` is a short machine-readable cause, ``detail`` says
    what was wrong in words (naming the offending field where there is one)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class DecodeError(RejectedInputError):
    """A message could not be decoded into a driftloop event.

    Reasons: ``empty``, ``too_large``, ``too_deep``, ``invalid_json``, ``validation``,
    ``missing_field``, ``unsupported_schema_version``, ``non_finite``, ``id_too_long``,
    ``value_too_long``, ``feature_spec``... A consumer turns this into a dead-letter record.
    """


class ModelRejectedError(RejectedInputError):
    """A model version failed verification or loading; ``reason`` says which check."""


class StateRejectedError(RejectedInputError):
    """A drift-monitor snapshot failed verification or decoding; ``reason`` says which."""


# -- configuration ------------------------------------------------------------------------


class StateStoreError(DriftloopError):
    """A partition's on-disk state store could not be opened or written (disk full, a
    database another process holds, corruption)."""


class ConfigError(DriftloopError):
    """The configuration (environment, config file, feature spec) is invalid."""


# -- Kafka --------------------------------------------------------------------------------


class KafkaUnavailableError(DriftloopError):
    """No Kafka broker answered at the configured bootstrap servers, or it failed us."""


@dataclass(frozen=True)
class NoBroker:
    """Why no broker at the bootstrap servers could be used, as a Kafka client reported it
    (what :class:`KafkaUnavailableError`'s one line is made from)."""

    causes: list[str] = field(default_factory=list)  # the client's own words, most telling first
    refused_credentials: str | None = None  # the broker refused the SASL credentials: why
    closed_by_broker: bool = False  # it closed the connection before speaking Kafka with us


class NotAuthorizedError(KafkaUnavailableError):
    """The cluster's ACLs refused a request: the configured user may not do it. Retrying does
    not help; its ACLs must change (`driftloop topics acls` lists what each component needs)."""


class DeliveryError(DriftloopError):
    """Outputs (scores, dead letters, drift events, state) could not be written; the offsets of
    the records they came from are not committed, so a restart processes those records again."""


class BrokerError(DriftloopError):
    """The local Kafka broker could not be fetched, formatted, started or stopped."""


# -- models and data ------------------------------------------------------------------------


class TrainingError(DriftloopError):
    """The training data cannot produce a model (too few rows, one class, bad columns)."""


class TrainingCodeError(DriftloopError):
    """The team's own training code (``[training]``) raised, or returned what cannot serve as a
    binary classifier of the feature spec's columns. Not a property of the data: a retraining
    run fails on it (it is not a candidate skipped)."""


class RegistryError(DriftloopError):
    """The registry store cannot be read or written."""


class RegistryCommandError(DriftloopError):
    """A registry command cannot do what was asked; the message says why."""


class DatasetError(DriftloopError):
    """A training-window snapshot cannot be written or read."""


class BacktestError(DriftloopError):
    """The input cannot be backtested; the message names the column or row."""


# -- demo and benchmarks ----------------------------------------------------------------------


class PrefectServerError(DriftloopError):
    """The demo's Prefect server did not start."""


class NothingToReportError(DriftloopError):
    """The demo was interrupted before there was anything to report."""


class BenchmarkError(DriftloopError):
    """A benchmark could not measure what it set out to (records missing before a deadline, a
    service that did not start); the message says which and where its log is."""
