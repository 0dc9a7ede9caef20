"""driftloop's one settings object.

Values come, highest priority first, from: keyword arguments, environment variables
(prefix ``DRIFTLOOP_``, nested fields joined by ``__``, e.g.
``DRIFTLOOP_KAFKA__BOOTSTRAP_SERVERS``), an optional config file (TOML or YAML, named by
``--config`` or ``DRIFTLOOP_CONFIG``), then the defaults below. ``KAFKA_BOOTSTRAP_SERVERS``
is honoured as a fallback for the bootstrap servers, as most Kafka tooling does.

>>> s = Settings()
>>> s.topics.transactions, s.topics.drift_events
('transactions', 'drift.events')
>>> s.feature_spec().names[:2]
('amount', 'hour_of_day')
"""

from __future__ import annotations

import difflib
import functools
import json
import os
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, get_origin

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

from streaming.errors import ConfigError
from streaming.events import DEFAULT_MAX_MESSAGE_BYTES, MessageLimits
from streaming.features import FeatureKind, FeatureSpec

#: The Apache Kafka release `driftloop kafka start` fetches from Maven Central.
KAFKA_VERSION = "4.1.1"

#: The features of the bundled card-transaction simulator; override with your own.
DEFAULT_FEATURES: dict[str, FeatureKind] = {
    "amount": "numeric",
    "hour_of_day": "numeric",
    "distance_from_home_km": "numeric",
    "txn_count_1h": "numeric",
    "amount_to_avg_ratio": "numeric",
    "merchant_category": "categorical",
    "channel": "categorical",
}

_config_file: ContextVar[Path | None] = ContextVar("driftloop_config_file", default=None)

#: ``DRIFTLOOP_*`` variables that are read but are not settings fields.
_NON_FIELD_VARIABLES = frozenset({"DRIFTLOOP_CONFIG"})


class _Section(BaseModel):
    """A section of the settings: an unknown key is an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class KafkaSettings(_Section):
    """How to reach the brokers; the security options are handed to kafka-python as is."""

    bootstrap_servers: str = "localhost:9092"
    client_id: str = "driftloop"
    client: Literal["kafka-python", "confluent-kafka"] = Field(
        default="kafka-python",
        description="The Kafka client of every component: kafka-python (pure Python) or "
        "confluent-kafka (librdkafka, several times faster per record); same semantics, same settings.",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_password: SecretStr | None = None
    ssl_check_hostname: bool = True
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: SecretStr | None = None
    sasl_plain_password_file: Path | None = Field(
        default=None,
        description="A file holding the SASL password (a mounted secret); read each time a client "
        "connects, in place of sasl_plain_password.",
    )
    sasl_oauth_token_provider: str = Field(
        default="",
        description="For sasl_mechanism OAUTHBEARER: package.module:factory, called once per process "
        "with no arguments, returning an object whose token() gives the current bearer token (as "
        "kafka-python's AbstractTokenProvider); both Kafka clients use it.",
    )
    request_timeout_ms: int = Field(default=30_000, gt=0)
    replication_factor: int = Field(
        default=1,
        ge=1,
        description="Replicas of every topic driftloop creates (3 on a production cluster).",
    )
    min_insync_replicas: int = Field(
        default=1,
        ge=1,
        description="min.insync.replicas of every topic driftloop creates (2 with 3 replicas: an "
        "acks=all write then survives the loss of one broker, and waits rather than be lost with two).",
    )

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL") and self.sasl_mechanism is None:
            raise ValueError(f"security_protocol {self.security_protocol} needs sasl_mechanism")
        if self.sasl_mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512") and (
            self.sasl_plain_username is None
            or (self.sasl_plain_password is None and self.sasl_plain_password_file is None)
        ):
            raise ValueError(
                f"sasl_mechanism {self.sasl_mechanism} needs sasl_plain_username and sasl_plain_password"
            )
        if self.sasl_mechanism == "OAUTHBEARER" and not self.sasl_oauth_token_provider:
            raise ValueError(
                "sasl_mechanism OAUTHBEARER needs sasl_oauth_token_provider = 'package.module:factory' "
                "(returning an object whose token() gives the bearer token)"
            )
        check_dotted_path(self.sasl_oauth_token_provider, "sasl_oauth_token_provider", "factory")
        if self.min_insync_replicas > self.replication_factor:
            raise ValueError(
                f"min_insync_replicas {self.min_insync_replicas} is more than replication_factor "
                f"{self.replication_factor}: no write could ever be acknowledged"
            )
        return self

    def sasl_password(self) -> str | None:
        """The SASL password: :attr:`sasl_plain_password_file`'s content (trailing newline
        dropped) when set, else :attr:`sasl_plain_password`. Raises :class:`ConfigError`
        naming the file (never its content) when it cannot be read."""
        if self.sasl_plain_password_file is not None:
            try:
                return self.sasl_plain_password_file.read_text().rstrip("\r\n")
            except OSError as exc:
                raise ConfigError(
                    f"kafka.sasl_plain_password_file: cannot read {self.sasl_plain_password_file} "
                    f"({exc.strerror or exc})"
                ) from exc
        return self.sasl_plain_password.get_secret_value() if self.sasl_plain_password else None

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments common to every kafka-python client."""
        options: dict[str, Any] = {
            "bootstrap_servers": [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()],
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.request_timeout_ms,
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            options["ssl_check_hostname"] = self.ssl_check_hostname
            for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
                value = getattr(self, name)
                if value is not None:
                    options[name] = str(value)
            if self.ssl_password is not None:
                options["ssl_password"] = self.ssl_password.get_secret_value()
        if self.sasl_mechanism is not None:
            options["sasl_mechanism"] = self.sasl_mechanism
            if self.sasl_plain_username is not None:
                options["sasl_plain_username"] = self.sasl_plain_username
            password = self.sasl_password()
            if password is not None:
                options["sasl_plain_password"] = password
            if self.sasl_mechanism == "OAUTHBEARER":
                options["sasl_oauth_token_provider"] = token_provider(self.sasl_oauth_token_provider)
        return options


def check_dotted_path(path: str, setting: str, what: str = "attribute") -> None:
    """Raise ValueError unless ``path`` is empty or ``package.module:<what>``."""
    if path and (":" not in path or not all(path.partition(":")[::2])):
        raise ValueError(f"{setting} must be package.module:{what}, not {path!r}")


def import_attribute(path: str, setting: str) -> Callable[..., Any]:
    """``package.module:attribute`` imported, or one :class:`ConfigError` line naming ``setting``."""
    import importlib

    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(f"{setting} = {path!r}: cannot import {module_name}: {exc}") from exc
    found: Any = module
    try:
        for part in attribute.split("."):
            found = getattr(found, part)
    except AttributeError:
        raise ConfigError(f"{setting} = {path!r}: {module_name} has no attribute {attribute!r}") from None
    if not callable(found):
        raise ConfigError(f"{setting} = {path!r}: {attribute} is a {type(found).__name__}, not callable")
    return found


@functools.cache
def token_provider(path: str) -> Any:
    """The OAUTHBEARER token provider ``package.module:factory`` names, made once per process;
    a :class:`ConfigError` naming the setting when it does not import or has no ``token()``."""
    factory = import_attribute(path, "kafka.sasl_oauth_token_provider")
    try:
        provider = factory()
    except Exception as exc:
        raise ConfigError(f"kafka.sasl_oauth_token_provider = {path!r}: {type(exc).__name__}: {exc}") from exc
    if not callable(getattr(provider, "token", None)):
        raise ConfigError(
            f"kafka.sasl_oauth_token_provider = {path!r} made a {type(provider).__name__}, which has no token()"
        )
    return provider


class TopicNames(_Section):
    """Topic names; see the topic table in the README and ``schemas/asyncapi.yaml``."""

    transactions: str = "transactions"
    labels: str = "labels"
    scores: str = "scores"
    outcomes: str = "outcomes"
    outcomes_changelog: str = "driftloop.outcomes.changelog"
    evidence: str = "drift.evidence"
    drift_events: str = "drift.events"
    model_updates: str = "model.updates"
    state: str = "driftloop.state"
    transactions_dlq: str = "transactions.dlq"
    labels_dlq: str = "labels.dlq"
    drift_events_dlq: str = "drift.events.dlq"
    model_updates_dlq: str = "model.updates.dlq"
    evidence_dlq: str = "drift.evidence.dlq"


class MessageSettings(_Section):
    """What driftloop accepts from the topics it reads, and keeps of what it refuses.

    A message over a limit is a dead letter with a reason (``too_large``, ``id_too_long``,
    ``value_too_long``, ``too_deep``), never a crash. The limits are part of the published
    Transaction schema (``driftloop schemas generate``).
    """

    max_bytes: int = Field(
        default=DEFAULT_MAX_MESSAGE_BYTES, ge=1024, description="Largest message value decoded, in bytes."
    )
    max_id_length: int = Field(
        default=256, ge=1, le=65_536, description="Longest transaction_id and account_id, in characters."
    )
    max_category_length: int = Field(
        default=256, ge=1, le=65_536, description="Longest value of a categorical feature, in characters."
    )
    extra_features: Literal["ignore", "forbid"] = Field(
        default="ignore",
        description="Features the spec does not name: ignored, or the transaction is a dead letter.",
    )
    dead_letter_value_bytes: int = Field(
        default=65_536,
        ge=0,
        le=262_144,
        description="A dead letter keeps at most this much of the original value (its size and sha256 always).",
    )

    def limits(self) -> MessageLimits:
        return MessageLimits(
            max_bytes=self.max_bytes,
            max_id_length=self.max_id_length,
            max_category_length=self.max_category_length,
            extra_features=self.extra_features,
        )


class ScoringSettings(_Section):
    """`driftloop score`: micro-batching, decision threshold, metrics endpoint."""

    group_id: str = "driftloop-scorer"
    max_batch: int = Field(default=1000, ge=1, description="Score at most this many records at once.")
    max_wait_ms: int = Field(
        default=20,
        ge=1,
        description="Wait for more records until a batch's first record is this old (by its Kafka timestamp).",
    )
    threshold: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Decision threshold; default: the one in the model's manifest.",
    )
    metrics_port: int = Field(default=9108, ge=0, le=65535, description="Prometheus port; 0 turns it off.")
    metrics_address: str = Field(
        default="0.0.0.0",
        description="Interface the metrics endpoint listens on (127.0.0.1: this host only).",
    )
    model_wait_s: float = Field(
        default=0.5, gt=0, description="Re-check for a champion this often while none."
    )
    checkpoint_interval_s: float = Field(
        default=1.0,
        ge=0,
        description="Snapshot monitor state and commit offsets at most this often (0: every batch).",
    )
    session_timeout_ms: int = Field(
        default=30_000,
        ge=6000,
        description="A scorer that stops heartbeating loses its partitions after this.",
    )
    heartbeat_interval_ms: int = Field(
        default=3000,
        ge=100,
        description="How often the scorer heartbeats to its group coordinator (a third of "
        "session_timeout_ms or less).",
    )
    idle_poll_ms: int = Field(
        default=500,
        ge=1,
        le=60_000,
        description="How long a poll waits while no batch is open; it returns as soon as records come, "
        "and a longer wait gives a group rejoin time to complete on a busy machine.",
    )
    updates_poll_interval_s: float = Field(
        default=0.05,
        gt=0,
        description="model.updates is read between batches at most this often (a model swap this much "
        "later than possible costs nothing; each read is a consumer poll).",
    )
    delivery_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="A checkpoint waits this long for Kafka to acknowledge the outputs, then the scorer "
        "stops with a DeliveryError and nothing committed (a broker outage longer than this ends it).",
    )
    group_instance_id: str | None = Field(
        default=None,
        min_length=1,
        description="A stable id per scorer process (static membership, KIP-345): restarted, it takes "
        "its partitions back at once instead of after session_timeout_ms. Unique per process.",
    )
    delivery: Literal["at_least_once", "exactly_once"] = Field(
        default="at_least_once",
        description="at_least_once: a crash re-sends the outputs since the last checkpoint (duplicates, "
        "deduplicated by key downstream). exactly_once: each checkpoint is one Kafka transaction (scores, "
        "dead letters, drift evidence and the consumed offsets together); read_committed readers see "
        "every output once. Costs throughput; see `driftloop bench throughput --delivery`.",
    )
    transactional_id: str | None = Field(
        default=None,
        min_length=1,
        description="With delivery exactly_once: the producer's transactional.id, stable across restarts "
        "so a restarted scorer fences its crashed predecessor and aborts its open transaction at once. "
        "Default: <group_id>-<group_instance_id or host name>; unique per process.",
    )
    transaction_timeout_ms: int = Field(
        default=60_000,
        ge=1000,
        description="With delivery exactly_once: the broker aborts a transaction left open this long "
        "(a scorer that died and is not restarted with the same transactional_id).",
    )

    def transactional_id_or_default(self) -> str:
        """:attr:`transactional_id`, or ``<group_id>-<group_instance_id or host name>``."""
        import socket

        return self.transactional_id or f"{self.group_id}-{self.group_instance_id or socket.gethostname()}"


def _default_detector_params() -> dict[str, dict[str, float | int]]:
    # Tuned on `driftloop bench detection` (River's synthetic streams, 10 seeds per type).
    return {
        "feature": {"delta": 1e-5},
        "prediction": {"delta": 1e-5},
        "label": {"delta": 1e-4},
        "error": {"delta": 2e-3, "clock": 8},
    }


class MonitoringSettings(_Section):
    """Drift monitoring: the evidence `driftloop score` writes, and `driftloop monitor` (also the
    backtest's and the detection benchmark's monitor)."""

    enabled: bool = Field(
        default=True, description="Summarize every scored batch into drift evidence in `driftloop score`."
    )
    feature_detector: str = Field(default="adwin", description="Per-event detector on each numeric feature.")
    prediction_detector: str = Field(default="adwin", description="Per-event detector on the scores.")
    label_detector: str = Field(default="adwin", description="Per-event detector on arriving labels.")
    error_detector: str = Field(default="adwin", description="Per-event detector on the model's errors.")
    error_input: Literal["error", "brier"] = Field(
        default="error",
        description="What the error detector reads: 0/1 misclassification or the Brier loss (p - y)^2.",
    )
    detector_params: dict[str, dict[str, float | int]] = Field(
        default_factory=_default_detector_params,
        description="Keyword arguments per signal (feature, prediction, label, error) for its detector.",
    )
    window: int = Field(default=1000, ge=50, description="Rows per window test (KS / chi-square).")
    window_alpha: float = Field(
        default=0.001, gt=0, lt=1, description="Family-wise false-alarm level of one window's tests."
    )
    window_min_psi: float = Field(
        default=0.1,
        ge=0,
        description="Smallest effect (population stability index) a window test needs besides its p-value "
        "to count as a drift: on thousands of rows a chi-square test also rejects shifts too small to act "
        "on (PSI 0.03: a reference drawn from other customers than the live ones). 0.1 is the usual "
        "'moderate shift' mark; 0 turns the floor off.",
    )
    warmup: int = Field(default=500, ge=0, description="Events per signal before any alarm.")
    cooldown: int = Field(
        default=5000,
        ge=0,
        description="Pooled rows without a detection before a new drift episode (a new drift event) can "
        "open, counted from the slowest test's next chance to fire (each partition's own window test "
        "comes round every `window` x partitions pooled rows).",
    )
    performance_window: int = Field(
        default=5000,
        ge=100,
        description="Pooled rows per window of the online performance estimate (from the calibrated scores, "
        "before any label).",
    )
    performance_metric: Literal[
        "roc_auc", "recall_at_budget", "precision_at_budget", "recall", "precision"
    ] = Field(
        default="recall_at_budget",
        description="The estimated metric the `performance` drift signal watches.",
    )
    performance_max_drop: float = Field(
        default=0.1,
        ge=0,
        description="A window whose estimate of `performance_metric` is this much below the model's own "
        "estimate on its holdout is a `performance` detection.",
    )
    performance_min: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Or an absolute bound: a window's estimate below it is a `performance` detection.",
    )
    ongoing_every_s: float = Field(
        default=3600.0,
        gt=0,
        description="A drift episode that persists (new detections, or a label or error rate still out of "
        "its band) is re-reported as `ongoing` at most once per this many seconds of event time.",
    )
    reference_rows: int = Field(
        default=2000,
        ge=100,
        description="Each source partition's first rows, its own baseline for its own window tests (a "
        "partition keyed by account has its own customers, not a sample of the model's reference).",
    )
    evidence_bins: int = Field(
        default=16,
        ge=2,
        le=256,
        description="Quantile bins of the reference per numeric column (and the scores) that the scorer's "
        "drift evidence counts rows on.",
    )
    evidence_max_rows: int = Field(
        default=100,
        ge=1,
        description="Rows of one partition one evidence record summarizes at most (a batch's rows of a "
        "partition are cut into runs this long, so the monitor can interleave partitions in event time).",
    )
    lateness_s: float = Field(
        default=86_400.0,
        ge=0,
        description="How far (in event time) the slowest partition may hold back `driftloop monitor`'s "
        "watermark; evidence older than what was already merged is late: merged at once and counted.",
    )
    partition_idle_s: float = Field(
        default=5.0,
        gt=0,
        description="A partition with no new evidence for this long (wall clock) stops holding back the "
        "watermark (its scorer is down or rebalancing, or it has no traffic); its evidence that comes "
        "later is late. With every partition idle, everything held is merged.",
    )
    max_held_evidence: int = Field(
        default=200_000,
        ge=100,
        description="Evidence records the monitor holds waiting for the watermark; beyond, the oldest are "
        "merged at once (a bound on memory while partitions are far apart in event time).",
    )
    group_id: str = Field(
        default="driftloop-monitor",
        description="Consumer group of `driftloop monitor` on drift.evidence: one member is active per "
        "model, the others stand by and take over within the session timeout.",
    )
    session_timeout_ms: int = Field(
        default=10_000,
        ge=6000,
        description="How long a dead active monitor holds its model before a standby takes over.",
    )
    checkpoint_interval_s: float = Field(
        default=5.0,
        ge=0,
        description="`driftloop monitor` snapshots its state (with the evidence and outcomes offsets it "
        "covers) and commits this often.",
    )
    prefect_events: bool = Field(
        default=True,
        description="Also send each drift event to Prefect's event feed (when PREFECT_API_URL is set).",
    )
    metrics_port: int = Field(
        default=9110, ge=0, le=65535, description="`driftloop monitor`'s Prometheus port; 0 turns it off."
    )
    state_max_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024 * 1024,
        description="Largest drift-monitor snapshot written to driftloop.state (the producer's "
        "max_request_size; the topic is created with the same max.message.bytes).",
    )

    @model_validator(mode="before")
    @classmethod
    def _tuned_defaults_under_given_params(cls, data: Any) -> Any:
        """Parameters given for a signal add to (or override) the tuned ADWIN defaults while
        the signal keeps ADWIN; a signal switched to another detector gets only what is given."""
        if not isinstance(data, dict):
            return data
        given = data.get("detector_params") or {}
        merged: dict[str, Any] = {}
        for signal, defaults in _default_detector_params().items():
            detector = data.get(f"{signal}_detector", "adwin")
            own = dict(given.get(signal, {}))
            merged[signal] = {**defaults, **own} if detector == "adwin" else own
        return {**data, "detector_params": {**given, **merged}}

    @model_validator(mode="after")
    def _detectors_exist(self) -> MonitoringSettings:
        tuned = _default_detector_params()
        for signal in ("feature", "prediction", "label", "error"):
            name = getattr(self, f"{signal}_detector")
            params = self.detector_params.get(signal, {})
            if name == "adwin" and params == tuned[signal]:
                continue  # the tuned defaults: known good, and River need not be imported
            from streaming.detectors import check_detector

            binary_input = signal == "label" or (signal == "error" and self.error_input == "error")
            check_detector(name, params, binary_input)
        return self


DriftSignalName = Literal["feature", "prediction", "label", "error", "performance"]
_SIGNALS: tuple[DriftSignalName, ...] = ("feature", "prediction", "label", "error", "performance")


class DecisionSettings(_Section):
    """How scores become decisions (send to review or not): the threshold each model is given
    at training time, from its holdout, and travels with it in the manifest."""

    policy: Literal["cost", "budget", "fixed"] = Field(
        default="cost",
        description="cost: the threshold with the least expected fp_cost*FP + fn_cost*FN on the holdout; "
        "budget: the one that flags alert_budget of the holdout; fixed: `threshold`.",
    )
    fp_cost: float = Field(
        default=1.0, gt=0, description="Cost of a false alert (a legitimate transaction reviewed)."
    )
    fn_cost: float = Field(default=5.0, gt=0, description="Cost of a missed fraud.")
    alert_budget: float = Field(
        default=0.01,
        gt=0,
        le=1,
        description="Share of transactions the review team can look at: the budget policy's target, and "
        "where precision and recall 'at the budget' are measured (validation, the performance estimate).",
    )
    threshold: float = Field(default=0.5, ge=0, le=1, description="The fixed policy's threshold.")


class TrainingSettings(_Section):
    """Whose code trains the model: driftloop's gradient-boosted trees (the default), or the
    team's own. `driftloop train`, the backtest's ``--retrain`` and the retraining flow all
    call the same code, and record it (its path, parameters and version) in the manifest."""

    function: str = Field(
        default="",
        description="Your training function as package.module:function, called as "
        "function(frame, spec, label_column, params) (plus sample_weight= if it takes it) and "
        "returning a fitted scikit-learn binary classifier that scores a DataFrame of the features.",
    )
    estimator: str = Field(
        default="",
        description="Or an estimator factory as package.module:factory, called as factory(**params); "
        "driftloop fits what it returns on the DataFrame of the features and the labels.",
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Keyword parameters for the function or factory (in the manifest)."
    )
    trusted_types: list[str] = Field(
        default_factory=list,
        description="Types your model's artifact may hold beyond driftloop's own (module.Class, e.g. "
        "sklearn.pipeline.Pipeline, mypackage.features.NightFlag). Anything else is refused at "
        "registration and at load: the list comes from here, never from the artifact.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> TrainingSettings:
        if self.function and self.estimator:
            raise ValueError("set training.function or training.estimator, not both")
        for name in ("function", "estimator"):
            check_dotted_path(getattr(self, name), f"training.{name}")
        return self


class RetrainingSettings(_Section):
    """The retraining flow: its training window and the bar a candidate must clear."""

    flow: str = Field(
        default="flows.retrain:retrain",
        description="The Prefect flow a drift event starts, as module:attribute (like a deployment's "
        "entrypoint); it is called with drift_event_id and model_name.",
    )

    window_s: float = Field(
        default=7 * 86_400.0, gt=0, description="Train on transactions of this many seconds before the run."
    )
    max_rows: int = Field(
        default=50_000, ge=100, description="Keep at most the newest this many labelled rows."
    )
    min_rows: int = Field(
        default=1000, ge=100, description="Fewer labelled rows in the window: no candidate."
    )
    min_roc_auc: float = Field(
        default=0.75, ge=0, le=1, description="Holdout ROC AUC a candidate must reach."
    )
    min_precision_at_budget: float = Field(
        default=0.0, ge=0, le=1, description="Holdout precision among the top `decision.alert_budget` scores."
    )
    max_log_loss: float = Field(
        default=0.5, gt=0, description="Holdout log loss a candidate must stay under."
    )
    champion_margin: float = Field(
        default=0.01,
        ge=0,
        description="A candidate's ROC AUC may trail the champion's on the same rows by at most this.",
    )
    max_iter: int = Field(default=100, ge=1, description="Boosting iterations of the candidate.")
    holdout_fraction: float = Field(
        default=0.2,
        gt=0,
        lt=1,
        description="The newest share of the labelled window: the holdout every candidate and the champion "
        "are judged on (never trained on); the winner's threshold, calibration and reference come from it.",
    )
    recent_rows: int = Field(
        default=10_000,
        ge=100,
        description="The 'recent' candidate trains on the newest this many labelled rows before the holdout.",
    )
    half_life_rows: int = Field(
        default=10_000,
        ge=100,
        description="The 'history' candidate trains on every labelled row before the holdout, a row's weight "
        "halving every this many rows back.",
    )
    min_candidate_rows: int = Field(
        default=300, ge=50, description="A training window with fewer labelled rows yields no candidate."
    )
    champion_confidence: float = Field(
        default=0.9,
        gt=0.5,
        lt=1,
        description="The winner must beat the champion on the holdout with this one-sided confidence (paired, "
        "row by row: cheaper decisions for the cost and fixed policies, more fraud caught for budget).",
    )
    min_holdout_positives: int = Field(
        default=20,
        ge=1,
        description="Fewer labelled frauds in the holdout: too few to judge the candidates, the run is "
        "rejected (a later drift event of the same episode tries again, with more labels).",
    )
    retries: int = Field(default=3, ge=0, description="Retries of each Kafka or registry step.")
    retry_delays_s: list[float] = Field(
        default_factory=lambda: [2.0, 10.0, 30.0], description="Backoff between those retries."
    )


class TriggerSettings(_Section):
    """`driftloop trigger`: which drift events start a retraining run, and how."""

    group_id: str = "driftloop-trigger"
    signals: list[DriftSignalName] = Field(
        default_factory=lambda: list(_SIGNALS),
        description="Drift signals that retrain.",
    )
    min_severity: Literal["low", "medium", "high"] = Field(
        default="medium", description="Lower-severity drift events are logged, not acted on."
    )
    cooldown_s: float = Field(
        default=3600.0, ge=0, description="At most one run per model per this many seconds of drift events."
    )
    labels_pending_retry_s: float = Field(
        default=900.0,
        ge=0,
        description="A run rejected only for labels still to come (too few since the drift began, too few "
        "frauds to judge) does not cost the cooldown: a drift event this many seconds after the rejected "
        "run's event starts another.",
    )
    max_run_s: float = Field(
        default=3600.0,
        gt=0,
        description="A run without an outcome after this long no longer blocks new ones.",
    )
    deployment: str | None = Field(
        default=None,
        description="Prefect deployment to run (e.g. 'retrain/driftloop', served by `driftloop worker`); "
        "unset: run the flow in-process.",
    )


class JoinSettings(_Section):
    """`driftloop join`: predictions wait on disk for their labels, in event time."""

    group_id: str = "driftloop-join"
    ttl_s: float = Field(
        default=120 * 86_400.0,
        gt=0,
        description="A prediction waits this long (event time) for its label; later labels are 'late'.",
    )
    label_wait_s: float = Field(
        default=3600.0,
        ge=0,
        description="A label that came before its score waits until the scores' event time passes "
        "its label time by this much; then it is 'unknown_transaction'.",
    )
    max_waiting_labels: int = Field(
        default=100_000,
        ge=2,
        description="Labels waiting for their score, per partition; when full, the partition's labels "
        "pause (they wait in Kafka) until half the room is free.",
    )
    state_dir: Path | None = Field(
        default=None, description="Where the partitions' RocksDB stores live; default <home>/state/join."
    )
    checkpoint_interval_s: float = Field(
        default=1.0,
        ge=0,
        description="Flush outcomes, write the changelog and the stores, commit, this often.",
    )
    max_batch: int = Field(default=5000, ge=1, description="Records (scores and labels) per poll.")
    delivery_timeout_s: float = Field(
        default=120.0,
        gt=0,
        description="How long a checkpoint waits for outcomes and changelog records to land.",
    )
    session_timeout_ms: int = Field(
        default=30_000, ge=6000, description="A join that stops heartbeating loses its partitions after this."
    )
    metrics_port: int = Field(default=9109, ge=0, le=65535, description="Prometheus port; 0 turns it off.")


class CanarySettings(_Section):
    """`driftloop canary`: the traffic schedule and the evidence a challenger needs."""

    schedule: list[float] = Field(
        default_factory=lambda: [5.0, 25.0, 50.0, 100.0],
        description="Challenger traffic percentages in order; reaching 100 promotes it.",
    )
    min_labels: int = Field(
        default=500, ge=10, description="Labelled outcomes per model before a step is judged."
    )
    margin: float = Field(
        default=0.005,
        ge=0,
        description="How much worse the challenger may be: in Brier loss, and in the cost of its decisions per "
        "transaction as a share of the mean of decision.fp_cost and decision.fn_cost.",
    )
    confidence: float = Field(default=0.95, gt=0.5, lt=1, description="One-sided confidence of each verdict.")
    latency_factor: float = Field(
        default=2.0, gt=1, description="Roll back above this x the champion's latency."
    )
    step_timeout_s: float = Field(
        default=6 * 3600.0, gt=0, description="Roll back when a step stays undecided this long."
    )
    evaluate_every_s: float = Field(default=2.0, gt=0, description="How often the evidence is weighed.")


class RegistrySettings(_Section):
    """Where signed model versions live, and the key that signs them."""

    path: Path | None = Field(default=None, description="Registry root; default <home>/registry.")
    signing_key: SecretStr | None = Field(
        default=None,
        description="HMAC-SHA256 key; default: a random key kept in <registry>/.signing-key.",
    )


class LocalKafkaSettings(_Section):
    """The broker `driftloop kafka start` runs on loopback when no Docker is at hand."""

    version: str = KAFKA_VERSION
    port: int = Field(default=9092, ge=1, le=65535)
    controller_port: int = Field(default=9093, ge=1, le=65535)
    heap: str = Field(
        default="1g",
        description="JVM heap of each local node. Every topic partition costs heap: a broker kept "
        "across many test runs (about 15 GB of topics) ran out of 512m.",
    )
    start_timeout_s: float = Field(default=90.0, gt=0)
    nodes: int = Field(
        default=1,
        ge=1,
        le=9,
        description="Nodes of the local cluster: node i listens on port+i-1, its controller on "
        "controller_port+i-1 (with more than one node and no controller_port set: port+100+i-1).",
    )


class Settings(BaseSettings):
    """Everything driftloop can be configured with."""

    model_config = SettingsConfigDict(
        env_prefix="DRIFTLOOP_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    home: Path = Field(
        default=Path(".driftloop"),
        description="Working folder for the local broker, the model registry and run state.",
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicNames = Field(default_factory=TopicNames)
    messages: MessageSettings = Field(default_factory=MessageSettings)
    local_kafka: LocalKafkaSettings = Field(default_factory=LocalKafkaSettings)
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    decision: DecisionSettings = Field(default_factory=DecisionSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    retraining: RetrainingSettings = Field(default_factory=RetrainingSettings)
    trigger: TriggerSettings = Field(default_factory=TriggerSettings)
    canary: CanarySettings = Field(default_factory=CanarySettings)
    join: JoinSettings = Field(default_factory=JoinSettings)
    features: dict[str, FeatureKind] = Field(default_factory=lambda: dict(DEFAULT_FEATURES))
    model_name: str = "fraud"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file.get()
        if config_file is not None:
            if config_file.suffix == ".toml":
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
            else:
                sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)

    def feature_spec(self) -> FeatureSpec:
        return FeatureSpec.from_mapping(self.features)

    @property
    def registry_path(self) -> Path:
        return self.registry.path or self.home / "registry"

    @property
    def join_state_dir(self) -> Path:
        return self.join.state_dir or self.home / "state" / "join"

    def to_env(self) -> dict[str, str]:
        """``DRIFTLOOP_*`` variables that give a child process exactly these settings."""
        env: dict[str, str] = {}
        for name, value in self.model_dump(mode="json").items():
            nested = getattr(self, name)
            if isinstance(nested, BaseModel):
                for field, item in value.items():
                    secret = getattr(nested, field)
                    if isinstance(secret, SecretStr):
                        item = secret.get_secret_value()
                    if item is not None:
                        text = item if isinstance(item, str) else json.dumps(item)
                        env[f"DRIFTLOOP_{name.upper()}__{field.upper()}"] = text
            elif value is not None:
                env[f"DRIFTLOOP_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
        return env


def child_env(settings: Settings) -> dict[str, str]:
    """This process's environment, with the ``DRIFTLOOP_*`` variables (and the
    ``KAFKA_BOOTSTRAP_SERVERS`` fallback) replaced by ``settings``: what a child process
    needs to run with exactly these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLOOP_")}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    return {**env, **settings.to_env()}


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Build the settings, reading ``config_file`` (or ``$DRIFTLOOP_CONFIG``) if given.

    Raises :class:`ConfigError` naming the offending field on any invalid value.
    """
    path = config_file or os.environ.get("DRIFTLOOP_CONFIG") or None
    file = Path(path) if path else None
    if file is not None:
        if not file.is_file():
            raise ConfigError(f"config file {file} does not exist")
        if file.suffix not in (".toml", ".yaml", ".yml"):
            raise ConfigError(f"config file {file} must end in .toml, .yaml or .yml")
    unknown = unknown_variables(os.environ)
    if unknown:
        raise ConfigError("invalid configuration: " + "; ".join(unknown))
    fallback = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if fallback and "DRIFTLOOP_KAFKA__BOOTSTRAP_SERVERS" not in os.environ:
        kafka = dict(overrides.pop("kafka", {}) or {})
        kafka.setdefault("bootstrap_servers", fallback)
        overrides["kafka"] = kafka
    token = _config_file.set(file)
    try:
        settings = Settings(**overrides)
        settings.feature_spec()  # validate the spec now, not at the first message
        return settings
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from exc
    except Exception as exc:  # malformed TOML/YAML surfaces as the parser's own error
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"cannot read configuration: {exc}") from exc
    finally:
        _config_file.reset(token)


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        where = ".".join(loc) or "settings"
        if error["type"] == "extra_forbidden":
            known = [".".join((*loc[:-1], name)) for name in _fields_at(loc[:-1])]
            problems.append(f"{where}: not a setting{_nearest(where, known)}")
        else:
            problems.append(f"{where}: {error['msg']}")
    return "invalid configuration: " + "; ".join(problems)


def _section(annotation: Any) -> type[BaseModel] | None:
    """The model of a settings field that is a section (``kafka``, ``scoring``...), else None."""
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _fields_at(loc: tuple[str, ...]) -> list[str]:
    """The field names of the settings section at ``loc`` (``()`` is the top level)."""
    model: type[BaseModel] | None = Settings
    for part in loc:
        field = model.model_fields.get(part) if model is not None else None
        model = _section(field.annotation) if field is not None else None
    return list(model.model_fields) if model is not None else []


def _nearest(name: str, candidates: list[str]) -> str:
    match = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f" (did you mean {match[0]}?)" if match else ""


def _variable_names() -> tuple[list[str], list[str]]:
    """Every ``DRIFTLOOP_*`` variable a setting reads, and the prefixes of the map-valued
    ones (``DRIFTLOOP_FEATURES__AMOUNT``: any key below a map is the map's own)."""
    names, map_prefixes = sorted(_NON_FIELD_VARIABLES), []
    for top, field in Settings.model_fields.items():
        name = f"DRIFTLOOP_{top.upper()}"
        names.append(name)
        section = _section(field.annotation)
        if section is not None:
            for sub, subfield in section.model_fields.items():
                names.append(f"{name}__{sub.upper()}")
                if get_origin(subfield.annotation) is dict:
                    map_prefixes.append(f"{name}__{sub.upper()}__")
        elif get_origin(field.annotation) is dict:
            map_prefixes.append(f"{name}__")
    return names, map_prefixes


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """One line per ``DRIFTLOOP_*`` variable that no setting reads, naming the nearest valid one.

    A typo (``DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS``, one underscore) would otherwise be
    ignored without a word, and the default used.

    >>> unknown_variables({"DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS": "b:9092", "DRIFTLOOP_HOME": "/x"})
    ['DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS is not a setting (did you mean DRIFTLOOP_KAFKA__BOOTSTRAP_SERVERS?)']
    """
    names, map_prefixes = _variable_names()
    known = set(names)
    problems = []
    for variable in sorted(environ):
        upper = variable.upper()
        if not upper.startswith("DRIFTLOOP_") or upper in known or upper.startswith(tuple(map_prefixes)):
            continue
        problems.append(f"{variable} is not a setting{_nearest(upper, names)}")
    return problems
