"""The events driftloop reads and writes, defined once.

Every event is a frozen msgspec Struct carrying a ``schema_version``. The JSON Schema files
in ``schemas/`` are generated from these definitions (``driftloop schemas generate``) and a
test fails when the two disagree. Decoding goes through :class:`EventCodec`, which turns every
failure (garbage bytes, wrong types, missing fields, NaN/inf, unknown schema versions) into
one :class:`~streaming.errors.DecodeError` that names the reason.

>>> from datetime import datetime, timezone
>>> codec = EventCodec(Label)
>>> raw = codec.encode(Label(transaction_id="t1", label=1,
...                          label_time=datetime(2026, 1, 2, tzinfo=timezone.utc)))
>>> raw
b'{"schema_version":1,"transaction_id":"t1","label":1,"label_time":"2026-01-02T00:00:00Z"}'
>>> codec.decode(raw).label
1
>>> codec.decode(b'{"schema_version":9,"transaction_id":"t1","label":1,"label_time":"2026-01-02T00:00:00Z"}')
Traceback (most recent call last):
...
streaming.errors.DecodeError: unsupported_schema_version: Label: Invalid enum value 9 - at `$.schema_version` (this build reads schema_version 1)
"""

from __future__ import annotations

import functools
import math
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar, cast

import msgspec

from streaming.errors import DecodeError
from streaming.features import FeatureSpec

#: The schema version this build writes and reads, per event type.
SCHEMA_VERSION = 1

AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True, description="RFC 3339 time with zone")]
Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
NonNegative = Annotated[int, msgspec.Meta(ge=0)]
FeatureValue = float | str

ModelRole = Literal["champion", "challenger", "shadow"]
DriftSignal = Literal["feature", "prediction", "label", "error", "performance"]
Severity = Literal["low", "medium", "high"]
DriftStatus = Literal["opened", "ongoing", "resolved"]
ModelUpdateStatus = Literal[
    "champion",  # this version serves all traffic
    "challenger",  # validated candidate, ready for a canary
    "rejected",  # failed validation; never loaded
    "started",  # a retraining run started
    "failed",  # a retraining run failed
    "canary_step",  # the challenger's traffic share changed
    "promoted",  # the challenger became champion
    "rolled_back",  # the challenger was withdrawn; champion serves all traffic
]


class _Event(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    # Checked by msgspec itself while decoding: an unknown version never becomes an event.
    schema_version: Literal[1] = 1  # = SCHEMA_VERSION


def _require_finite(event: str, **values: float | None) -> None:
    for name, value in values.items():
        if value is not None and not math.isfinite(value):
            raise ValueError(f"{event}.{name} must be finite, got {value}")


class Transaction(_Event, frozen=True, kw_only=True):
    """A scored event: an envelope plus the features named by the configured feature spec."""

    transaction_id: str
    account_id: str
    event_time: AwareDatetime
    features: dict[str, FeatureValue]


class Label(_Event, frozen=True, kw_only=True):
    """Delayed ground truth for one transaction: 1 is fraud, 0 is legitimate."""

    transaction_id: str
    label: Annotated[int, msgspec.Meta(ge=0, le=1)]
    label_time: AwareDatetime


class Score(_Event, frozen=True, kw_only=True):
    """One model's verdict on one transaction; keyed by transaction_id on the scores topic."""

    transaction_id: str
    account_id: str
    model_name: str
    model_version: str
    role: ModelRole
    score: Probability
    threshold: Probability
    decision: bool
    event_time: AwareDatetime
    scored_at: AwareDatetime
    latency_ms: Annotated[float, msgspec.Meta(ge=0.0)]

    def __post_init__(self) -> None:
        # One Score per transaction: the common case is checked without building kwargs.
        if not (math.isfinite(self.score) and math.isfinite(self.latency_ms)):
            _require_finite("Score", score=self.score, latency_ms=self.latency_ms)


class Outcome(_Event, frozen=True, kw_only=True):
    """A prediction and the label that closed it: what `driftloop join` writes on ``outcomes``,
    keyed by account_id (co-partitioned with the transactions).

    One per score: a transaction scored by a champion and a challenger has two. ``delay_s``
    is ``label_time - event_time``, the label's delay in event time.
    """

    transaction_id: str
    account_id: str
    model_name: str
    model_version: str
    role: ModelRole
    score: Probability
    threshold: Probability
    decision: bool
    label: Annotated[int, msgspec.Meta(ge=0, le=1)]
    event_time: AwareDatetime
    scored_at: AwareDatetime
    label_time: AwareDatetime
    delay_s: float
    latency_ms: Annotated[float, msgspec.Meta(ge=0.0)]

    def __post_init__(self) -> None:
        _require_finite("Outcome", score=self.score, delay_s=self.delay_s, latency_ms=self.latency_ms)

    @classmethod
    def of(cls, score: Score, label: Label) -> Outcome:
        return cls(
            transaction_id=score.transaction_id,
            account_id=score.account_id,
            model_name=score.model_name,
            model_version=score.model_version,
            role=score.role,
            score=score.score,
            threshold=score.threshold,
            decision=score.decision,
            label=label.label,
            event_time=score.event_time,
            scored_at=score.scored_at,
            label_time=label.label_time,
            delay_s=(label.label_time - score.event_time).total_seconds(),
            latency_ms=score.latency_ms,
        )


class WindowStats(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Summary of one window of a monitored signal."""

    count: NonNegative
    mean: float | None = None
    std: float | None = None

    def __post_init__(self) -> None:
        _require_finite("WindowStats", mean=self.mean, std=self.std)


class FeatureShift(msgspec.Struct, frozen=True, kw_only=True):
    """How much one monitored column moved: a line of a drift event's explanation.

    ``column`` is a feature name, or ``"__score__"`` for the model's scores; ``psi`` is the
    population stability index (the effect size) of the window against the reference (on the
    reference's quantile bins, or its categories); ``statistic`` and ``p_value`` are the
    chi-square test's. ``moved`` is true for a column a test or detector found moved during
    the episode (significant, and at least ``monitoring.window_min_psi``); the explanation may
    end with a few columns that did not, for context.
    """

    column: str
    psi: float
    p_value: Probability | None = None
    statistic: float | None = None
    moved: bool = False
    partition: NonNegative | None = None  # the partition whose own window it moved in, if not the pool
    before: WindowStats | None = None
    after: WindowStats | None = None

    def __post_init__(self) -> None:
        _require_finite("FeatureShift", psi=self.psi, statistic=self.statistic)


class OffsetRange(msgspec.Struct, frozen=True, kw_only=True):
    """Records ``start`` to ``end`` (inclusive) of one topic partition."""

    topic: str
    partition: NonNegative
    start: NonNegative
    end: NonNegative


class DriftEvent(_Event, frozen=True, kw_only=True):
    """A drift episode of a model, as it opens, persists and ends; ``event_id`` is
    deterministic for replays.

    `driftloop monitor` writes, per model and drift episode, on pooled evidence from every
    partition: one ``opened`` event at the first detection; ``ongoing`` events while the
    drift persists (at most one per ``monitoring.ongoing_every_s`` of event time); one
    ``resolved`` event when the signals are back within their reference band, or a new model
    took over (``resolution``). All carry the ``episode_id`` (the opening event's id).
    ``scope`` lists the source partitions that moved (all of them when the drift is
    everywhere), ``explanation`` every column that moved in the episode so far (largest effect
    first, then a few that did not, for context), ``evidence`` the ``drift.evidence`` records
    of the window that fired and the source offsets they summarize. ``partition`` is set when
    the drift was found in one partition's traffic alone.
    """

    event_id: str
    model_name: str
    model_version: str
    signal: DriftSignal
    detector: str
    feature: str | None = None
    partition: int | None = None
    offset_start: int | None = None
    offset_end: int | None = None
    row: int | None = None
    before: WindowStats | None = None
    after: WindowStats | None = None
    statistic: float | None = None
    p_value: Probability | None = None
    severity: Severity
    detected_at: AwareDatetime
    scope: list[NonNegative] = []
    partitions_seen: NonNegative | None = None
    explanation: list[FeatureShift] = []
    evidence: list[OffsetRange] = []
    event_time: AwareDatetime | None = None
    #: Event time of the first transaction of the window the detection fired on: the drift
    #: began at or after it (the retraining flow's "since the drift" window starts here).
    window_start: AwareDatetime | None = None
    status: DriftStatus = "opened"
    episode_id: str | None = None
    episode_started_at: AwareDatetime | None = None  # event time of the opening detection
    resolution: Literal["back_in_band", "new_model"] | None = None

    def __post_init__(self) -> None:
        _require_finite("DriftEvent", statistic=self.statistic)


class Evidence(_Event, frozen=True, kw_only=True):
    """What the drift monitors need from one micro-batch of one source partition, summarized.

    Written by `driftloop score` on ``drift.evidence`` (keyed by model name) at each
    checkpoint, before the offsets are committed; merged across partitions and scorers by
    `driftloop monitor`. Every part is a count or a sum, so records add up: histograms of each
    numeric feature and of the champion's scores on the reference's quantile bins (the bins
    named by ``bins``, a fingerprint of the model's reference), category counts in the
    reference's categories plus one bin for any other. ``offset_start``/``offset_end``
    (inclusive) make a record idempotent: a replay after a crash summarizes offsets the
    monitor has counted already, and it skips them.
    """

    model_name: str
    model_version: str
    bins: str
    topic: str
    partition: NonNegative
    offset_start: NonNegative
    offset_end: NonNegative
    rows: Annotated[int, msgspec.Meta(ge=1)]
    event_time_start_ms: int
    event_time_end_ms: int
    numeric: list[list[NonNegative]]
    numeric_sum: list[float]
    numeric_sum_squares: list[float]
    scores: list[NonNegative]
    score_sum: float
    score_sum_squares: float
    decisions: NonNegative
    categorical: list[list[NonNegative]]
    producer: str
    #: For the online performance estimate (empty when the model carries no calibration):
    #: the sums of the rows' calibrated fraud probabilities, in all, over the flagged rows and
    #: over the rows at or above the alert budget's score, and per bin of that probability.
    probability_sum: float = 0.0
    flagged_probability_sum: float = 0.0
    budget_flagged: NonNegative = 0
    budget_probability_sum: float = 0.0
    probability_counts: list[NonNegative] = []
    probability_sums: list[float] = []

    def __post_init__(self) -> None:
        for value in (*self.numeric_sum, *self.numeric_sum_squares, self.score_sum, self.score_sum_squares):
            if not math.isfinite(value):
                raise ValueError(f"Evidence sums must be finite, got {value}")


class ModelUpdate(_Event, frozen=True, kw_only=True):
    """A change in which model serves, or the outcome of a retraining run.

    Keyed by model name on the compacted ``model.updates`` topic. Models travel by
    reference: ``sha256`` and ``signature`` identify the artifact in the registry store.
    """

    model_name: str
    version: str
    status: ModelUpdateStatus
    sha256: str | None = None
    signature: str | None = None
    traffic_percent: Annotated[float, msgspec.Meta(ge=0.0, le=100.0)] | None = None
    champion_version: str | None = None
    drift_event_id: str | None = None
    reasons: list[str] = []
    evidence: dict[str, Any] = {}
    created_at: AwareDatetime


class DeadLetter(_Event, frozen=True, kw_only=True):
    """A message a consumer could not process, kept with its original bytes.

    ``key`` and ``value`` are the original bytes, or their first bytes when the original was
    too large to keep (``truncated``); ``value_size`` and ``value_sha256`` always describe the
    whole original value, and ``source_topic``/``partition``/``offset`` say where it still is.
    """

    reason: str
    error: str
    source_topic: str
    partition: int
    offset: int
    key: bytes | None = None
    value: bytes | None = None
    value_size: NonNegative | None = None
    value_sha256: str | None = None
    truncated: bool = False
    consumer: str
    failed_at: AwareDatetime


E = TypeVar("E", bound=msgspec.Struct)

#: Kafka's own default for a record (``message.max.bytes``, ``max_request_size``).
DEFAULT_MAX_MESSAGE_BYTES = 1_048_576


class MessageLimits(msgspec.Struct, frozen=True):
    """What driftloop accepts from the topics it reads (the ``messages`` settings).

    Every limit is checked while decoding, in C where msgspec can: no message can make a
    consumer hold, log or re-publish more than these bounds allow.
    """

    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES  # a message's value, before decoding
    max_id_length: int = 256  # transaction_id and account_id
    max_category_length: int = 256  # a categorical feature's value
    extra_features: Literal["ignore", "forbid"] = "ignore"  # features the spec does not name

    def id_type(self) -> Any:
        return Annotated[str, msgspec.Meta(min_length=1, max_length=self.max_id_length)]


def transaction_type(spec: FeatureSpec, limits: MessageLimits = MessageLimits()) -> type[Transaction]:
    """A Transaction whose ``features`` are typed by ``spec``: the scorer's decoder, and the
    source of the published Transaction schema.

    Same wire format as :class:`Transaction`; decoding validates every feature in C, so
    a missing feature, a string where a number belongs, or a number where a category
    belongs fails with a :class:`DecodeError` naming it, as do ids and categories longer
    than ``limits`` allow.
    """
    return _transaction_type(spec, limits)


@functools.lru_cache(maxsize=32)
def _transaction_type(spec: FeatureSpec, limits: MessageLimits) -> type[Transaction]:
    # A subclass that bounds the ids and narrows `features` to the spec's typed struct.
    ids = limits.id_type()
    features = spec.struct_type(limits.max_category_length, forbid_extra=limits.extra_features == "forbid")
    fields = [
        ("transaction_id", ids),
        ("account_id", ids),
        ("event_time", AwareDatetime),
        ("features", features),
    ]
    return _narrowed(Transaction, fields)


def label_type(limits: MessageLimits = MessageLimits()) -> type[Label]:
    """A Label whose transaction_id is bounded by ``limits``: the labels' decoder."""
    return _label_type(limits)


@functools.lru_cache(maxsize=8)
def _label_type(limits: MessageLimits) -> type[Label]:
    return _narrowed(Label, [("transaction_id", limits.id_type())])


def _narrowed(base: type[E], fields: list[tuple[str, Any]]) -> type[E]:
    """A subclass of ``base`` with ``fields`` retyped: the same wire format and name, stricter
    decoding (and the schema of what the consumers accept)."""
    typed = msgspec.defstruct(base.__name__, fields, bases=(base,), kw_only=True, frozen=True, gc=False)
    typed.__doc__ = base.__doc__
    return cast(type[E], typed)


#: Every event type, in the order the schema files and the AsyncAPI document list them.
EVENT_TYPES: tuple[type[msgspec.Struct], ...] = (
    Transaction,
    Label,
    Score,
    Outcome,
    Evidence,
    DriftEvent,
    ModelUpdate,
    DeadLetter,
)

_encoder = msgspec.json.Encoder()

#: Encode any event to its JSON bytes.
encode_event = _encoder.encode


class EventCodec(Generic[E]):
    """Typed JSON encoder/decoder for one event type; decoding errors become DecodeError.

    Every failure is a DecodeError with a reason, a message over ``max_bytes`` and one
    nested deeper than the decoder's recursion guard (``too_large``, ``too_deep``) included:
    nothing a producer writes makes :meth:`decode` raise anything else.
    """

    def __init__(self, event_type: type[E], max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self.event_type = event_type
        self.max_bytes = max_bytes
        self._decoder = msgspec.json.Decoder(event_type)

    def encode(self, event: E) -> bytes:
        return encode_event(event)

    def decode(self, raw: bytes | bytearray | memoryview | None) -> E:
        if not raw:
            raise DecodeError("empty", f"{self.event_type.__name__}: the message has no value")
        if len(raw) > self.max_bytes:
            raise DecodeError(
                "too_large",
                f"{self.event_type.__name__}: {len(raw):,} bytes, over the limit of {self.max_bytes:,} "
                "(messages.max_bytes)",
            )
        try:
            return self._decoder.decode(raw)
        except RecursionError as exc:
            raise DecodeError(
                "too_deep", f"{self.event_type.__name__}: nested deeper than the decoder allows"
            ) from exc
        except msgspec.ValidationError as exc:
            message = str(exc)
            if message.endswith("`$.schema_version`"):
                raise DecodeError(
                    "unsupported_schema_version",
                    f"{self.event_type.__name__}: {message} (this build reads schema_version {SCHEMA_VERSION})",
                ) from exc
            raise DecodeError(_validation_reason(message), message) from exc
        except msgspec.DecodeError as exc:
            raise DecodeError("invalid_json", str(exc)) from exc
        except (ValueError, TypeError, UnicodeDecodeError) as exc:  # defensive: stays ours
            raise DecodeError("invalid", str(exc)) from exc


def _validation_reason(message: str) -> str:
    if "must be finite" in message or "out of range" in message.lower():
        return "non_finite"
    if "of length <=" in message:
        return (
            "id_too_long" if message.endswith(("`$.transaction_id`", "`$.account_id`")) else "value_too_long"
        )
    if "`$.features" in message:
        return "feature_spec"
    return "validation"
