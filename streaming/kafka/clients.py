"""kafka-python clients built from driftloop's settings.

Every client gets the same connection and security options (:meth:`KafkaSettings.client_options`);
consumers never auto-commit (driftloop commits after its outputs are flushed) and use
cooperative-sticky assignment so scaling out moves as few partitions as possible.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.errors import (
    AuthorizationError,
    CommitFailedError,
    KafkaError,
    RebalanceInProgressError,
    TopicAlreadyExistsError,
)
from kafka.structs import OffsetAndMetadata

from streaming.config import KafkaSettings
from streaming.errors import ConfigError, KafkaUnavailableError, NoBroker, NotAuthorizedError
from streaming.logs import get_logger
from streaming.topics import TopicSpec

log = get_logger(__name__)

#: Consumer options for micro-batching: fetch large chunks per round trip.
BATCH_FETCH_OPTIONS: dict[str, Any] = {"fetch_max_bytes": 52_428_800, "max_partition_fetch_bytes": 10_485_760}
#: Producer options for micro-batching: a short linger, large record batches.
BATCH_PRODUCE_OPTIONS: dict[str, Any] = {"linger_ms": 5, "batch_size": 262_144}


def close_all(*closers: Callable[[], object]) -> None:
    """Call every closer, even when one raises; a failure to close is logged, not raised.

    For ``finally`` blocks: an error raised while closing would replace the one that ended
    the loop (kafka-python's ``producer.close()`` flushes first, and after a refused send
    or a broker outage that flush raises again), and one client that fails to close must
    not keep the others open. Outputs a failed close did not deliver were not committed
    either, so they are produced again after a restart.
    """
    for close in closers:
        try:
            close()
        except Exception as exc:
            log.warning("closing at shutdown failed (%r): %r", close, exc)


def kafka_python_options(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` for kafka-python: an OAUTHBEARER token provider that is not a subclass of
    kafka-python's ``AbstractTokenProvider`` (any object with ``token()``) is wrapped in one."""
    provider: Any = options.get("sasl_oauth_token_provider")
    if provider is None:
        return options
    from kafka.net.sasl.oauth import AbstractTokenProvider

    if isinstance(provider, AbstractTokenProvider):
        return options

    class Delegate(AbstractTokenProvider):
        def token(self) -> str:
            return str(provider.token())

        def extensions(self) -> dict[str, str]:
            more = getattr(provider, "extensions", None)
            return dict(more()) if callable(more) else {}

    return {**options, "sasl_oauth_token_provider": Delegate()}


def make_producer(kafka: KafkaSettings, **overrides: Any) -> KafkaProducer:
    """An idempotent producer (acks=all) with a short linger for micro-batches."""
    options: dict[str, Any] = {
        **kafka_python_options(kafka.client_options()),
        "acks": "all",
        "linger_ms": 5,
        "max_in_flight_requests_per_connection": 5,
    }
    options.update(overrides)
    try:
        return KafkaProducer(**options)
    except KafkaError as exc:
        raise KafkaUnavailableError(f"cannot create a producer for {kafka.bootstrap_servers}: {exc}") from exc


def make_consumer(
    kafka: KafkaSettings, group_id: str | None, *topics: str, **overrides: Any
) -> KafkaConsumer:
    """A consumer-group member with auto-commit off and cooperative-sticky assignment; it
    reads only committed records (``read_committed``: a transactional scorer's aborted outputs
    are skipped, and nothing is lost on a topic without transactions)."""
    options: dict[str, Any] = {
        **kafka_python_options(kafka.client_options()),
        "group_id": group_id,
        "enable_auto_commit": False,
        "isolation_level": "read_committed",
        "auto_offset_reset": "earliest",
        "partition_assignment_strategy": [CooperativeStickyAssignor],
    }
    options.update(overrides)
    try:
        return KafkaConsumer(*topics, **options)
    except KafkaError as exc:
        raise KafkaUnavailableError(f"cannot create a consumer for {kafka.bootstrap_servers}: {exc}") from exc


def make_admin(kafka: KafkaSettings, **overrides: Any) -> KafkaAdminClient:
    try:
        return KafkaAdminClient(**{**kafka_python_options(kafka.client_options()), **overrides})
    except KafkaError as exc:
        raise KafkaUnavailableError(f"no Kafka broker answered at {kafka.bootstrap_servers}: {exc}") from exc


def ensure_topics(kafka: KafkaSettings, topics: list[TopicSpec], timeout_ms: int = 30_000) -> list[str]:
    """Create the topics that do not exist yet; return the names created. Each gets the larger
    of its own replication factor and ``kafka.replication_factor``, and
    ``kafka.min_insync_replicas`` (when above 1). The admin calls go through ``kafka.client``."""
    try:
        existing = list_topic_names(kafka)
        missing = [t for t in topics if t.name not in existing]
        if not missing:
            return []
        request = {
            t.name: {
                "num_partitions": t.partitions,
                "replication_factor": max(t.replication_factor, kafka.replication_factor),
                "configs": dict(t.configs)
                | (
                    {"min.insync.replicas": str(kafka.min_insync_replicas)}
                    if kafka.min_insync_replicas > 1
                    else {}
                ),
            }
            for t in missing
        }
        try:
            _create_topics(kafka, request, timeout_ms)
        except TopicAlreadyExistsError:
            log.info("topics were created concurrently by another process")
        return [t.name for t in missing]
    except KafkaError as exc:
        refused = not_authorized(kafka, exc, "create topics")
        if refused is not None:
            raise refused from exc
        raise KafkaUnavailableError(f"creating topics on {kafka.bootstrap_servers} failed: {exc}") from exc


def list_topic_names(kafka: KafkaSettings) -> set[str]:
    """The names of the cluster's topics (that this client may see)."""
    if kafka.client == "confluent-kafka":
        from streaming.kafka import confluent

        return confluent.list_topics(kafka)
    admin = make_admin(kafka)
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def _create_topics(kafka: KafkaSettings, request: dict[str, dict[str, Any]], timeout_ms: int) -> None:
    """Create ``request``'s topics and wait until every partition has a leader."""
    if kafka.client == "confluent-kafka":
        from streaming.kafka import confluent

        confluent.create_topics(kafka, request, timeout_ms / 1000)
        return
    admin = make_admin(kafka)
    try:
        admin.create_topics(request, timeout_ms=timeout_ms)
        # Until every partition has a leader, with our timeout (kafka-python's own wait,
        # through create_topics(wait_for_metadata=True), gives up after a fixed 10 s: too
        # short for a fresh broker on a busy machine).
        admin.wait_for_topics(list(request), timeout_ms=timeout_ms)
    finally:
        admin.close()


def delete_topics(kafka: KafkaSettings, names: list[str], timeout_ms: int = 30_000) -> list[str]:
    """Delete those of ``names`` that exist; return the names deleted."""
    try:
        present = list_topic_names(kafka)
        existing = [name for name in names if name in present]
        if existing:
            if kafka.client == "confluent-kafka":
                from streaming.kafka import confluent

                confluent.delete_topics(kafka, existing, timeout_ms / 1000)
            else:
                admin = make_admin(kafka)
                try:
                    admin.delete_topics(existing, timeout_ms=timeout_ms)
                finally:
                    admin.close()
        return existing
    except KafkaError as exc:
        raise KafkaUnavailableError(f"deleting topics on {kafka.bootstrap_servers} failed: {exc}") from exc


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _kafka_logs_held() -> Iterator[list[str]]:
    """Hold back kafka-python's own log lines for the block and hand them to the caller."""
    logger = logging.getLogger("kafka")
    recorder = _Recorder()
    handlers, propagate, level = logger.handlers[:], logger.propagate, logger.level
    logger.handlers[:], logger.propagate = [recorder], False
    logger.setLevel(logging.INFO)  # which step a connection reached is logged at INFO
    try:
        yield recorder.messages
    finally:
        logger.handlers[:], logger.propagate = handlers, propagate
        logger.setLevel(level)


def require_broker(kafka: KafkaSettings, timeout_s: float = 5.0) -> None:
    """Fail within ``timeout_s``, in one line, when no broker answers at the bootstrap servers.

    Called by the commands before they build their clients: without it a missing broker
    shows as a minute of the client's reconnect warnings before any error. The line says
    why where the client's log does: refused credentials, a TLS handshake that failed, a
    connection refused or closed. The probe goes through ``kafka.client``.
    """
    if kafka.client == "confluent-kafka":
        from streaming.kafka import confluent

        why = confluent.probe(kafka, timeout_s)
    else:
        why = _probe(kafka, timeout_s)
    if why is not None:
        raise KafkaUnavailableError(_unreachable(kafka, why, timeout_s))


def _probe(kafka: KafkaSettings, timeout_s: float) -> NoBroker | None:
    """kafka-python's answer to :func:`require_broker`: None when a broker answered."""
    timeout_ms = int(timeout_s * 1000)
    with _kafka_logs_held() as seen:
        try:
            admin = KafkaAdminClient(
                **{**kafka_python_options(kafka.client_options()), "request_timeout_ms": timeout_ms},
                bootstrap_timeout_ms=timeout_ms,
            )
        except KafkaError as exc:
            causes = [m.rsplit(">: ", 1)[-1] for m in seen if "Error" in m] or [repr(exc)]
            auth = next((c for c in causes if "Authentication" in c or "SaslAuthentication" in c), None)
            if auth is None and _closed_during_sasl(kafka, seen):
                # kafka-python sometimes reads the broker's close before the refusal it sent
                # first (one try in five against a local SASL_SSL listener): the same refusal.
                auth = "the broker closed the connection during SASL authentication"
            closed = any("socket disconnected" in c for c in causes)
            return NoBroker(causes, refused_credentials=auth, closed_by_broker=closed)
        admin.close()
    return None


def _unreachable(kafka: KafkaSettings, why: NoBroker, timeout_s: float) -> str:
    """The one line that says why no broker at ``kafka.bootstrap_servers`` could be used."""
    where = kafka.bootstrap_servers
    if why.refused_credentials is not None:
        return (
            f"authentication failed for user {kafka.sasl_plain_username!r} ({kafka.sasl_mechanism}) at "
            f"{where}: the broker refused the credentials; check kafka.sasl_plain_username and "
            f"kafka.sasl_plain_password ({why.refused_credentials})"
        )
    tls = next((c for c in why.causes if "SSL" in c or "CERTIFICATE" in c.upper()), None)
    if tls is not None:
        hint = (
            " (unknown CA: set kafka.ssl_cafile to the CA that signed the broker)"
            if "VERIFY" in tls.upper()
            else ""
        )
        return f"TLS: the handshake with {where} failed{hint}: {tls}"
    hint = "start the local one with `driftloop kafka start`, or point KAFKA_BOOTSTRAP_SERVERS at yours"
    if why.closed_by_broker:
        hint = (
            f"the broker closed the connection: does its listener expect another security_protocol "
            f"than {kafka.security_protocol}? Or {hint}"
        )
    return f"no Kafka broker answered at {where} within {timeout_s:g} s ({why.causes[0]}); {hint}"


def _closed_during_sasl(kafka: KafkaSettings, seen: list[str]) -> bool:
    """The broker answered in Kafka's protocol (its version was identified), then closed the
    connection before authenticating it, on a SASL listener: it refused the credentials (an
    unknown mechanism is refused with an error of its own)."""
    return (
        kafka.security_protocol.startswith("SASL_")
        and any("Broker version identified" in m for m in seen)
        and not any("Authenticated as" in m for m in seen)
        and any("socket disconnected" in m for m in seen)
    )


def not_authorized(kafka: KafkaSettings, exc: BaseException, doing: str) -> NotAuthorizedError | None:
    """A one-line :class:`NotAuthorizedError` when ``exc`` (or its cause) is an ACL refusal of
    what the client was ``doing`` (e.g. "create topics"), else None."""
    refusal: BaseException | None = exc
    while refusal is not None and not isinstance(refusal, AuthorizationError):
        refusal = refusal.__cause__
    if refusal is None:
        return None
    user = kafka.sasl_plain_username or "(no SASL user)"
    detail = str(refusal)
    detail = f"{type(refusal).__name__}: {detail}" if len(detail) < 160 else type(refusal).__name__
    return NotAuthorizedError(
        f"not authorized: user {user!r} may not {doing} at {kafka.bootstrap_servers} ({detail}); "
        "`driftloop topics acls` lists the ACLs each component needs"
    )


def broker_answers(bootstrap_servers: str, timeout_s: float = 5.0, **security: Any) -> bool:
    """True when a broker at ``bootstrap_servers`` answers a metadata request (``security``:
    kafka-python's security options, for a secured listener)."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap_servers.split(","),
            request_timeout_ms=int(timeout_s * 1000),
            bootstrap_timeout_ms=int(timeout_s * 1000),
            **kafka_python_options(security),
        )
    except Exception:  # any failure to connect means "not (yet) answering"
        return False
    try:
        admin.list_topics()
        return True
    except Exception:
        return False
    finally:
        admin.close()


def wait_for_topic(consumer: Any, topic: str, timeout_s: float = 30.0) -> set[int]:
    """Block until the consumer's metadata lists ``topic``'s partitions.

    A group member calls it after ``subscribe`` and before its first ``poll`` (which joins
    the group). Joining before the metadata lists the partitions makes the leader assign
    nothing until the next metadata refresh (minutes); fetching the metadata before
    subscribing makes kafka-python see it "change" right after the first assignment and
    rebalance at once, needlessly (one such rebalance in a few hundred left a member
    assigned nothing).
    """
    deadline = time.monotonic() + timeout_s
    while not (partitions := consumer.partitions_for_topic(topic)):
        cluster = getattr(getattr(consumer, "_client", None), "cluster", None)
        if topic in getattr(cluster, "unauthorized_topics", ()):
            user = consumer.config.get("sasl_plain_username") or "(no SASL user)"
            raise NotAuthorizedError(
                f"not authorized: user {user!r} may not read topic {topic!r} (its metadata was "
                "refused); `driftloop topics acls` lists the ACLs each component needs"
            )
        if time.monotonic() > deadline:
            raise KafkaUnavailableError(
                f"topic {topic!r} does not exist (or has no leader); run `driftloop topics create` first"
            )
        time.sleep(0.2)
    return set(partitions)


def require_co_partitioned(consumer: Any, topics: Sequence[str], why: str) -> int:
    """The partition count ``topics`` share; :class:`ConfigError` naming each count (and
    ``why`` they must agree) when they differ."""
    counts = {topic: len(wait_for_topic(consumer, topic)) for topic in topics}
    if len(set(counts.values())) != 1:
        raise ConfigError(
            ", ".join(f"{topic} has {n} partitions" for topic, n in counts.items()) + f"; {why}"
        )
    return next(iter(counts.values()))


def commit_or_defer(consumer: Any, offsets: Mapping[Any, int]) -> bool:
    """Commit ``{TopicPartition: next offset}``; False when a rebalance refused the commit.

    The :class:`~streaming.checkpointing.Checkpointer`'s ``commit``: a refused commit is
    deferred to the next one, not fatal (the outputs are already flushed, and a partition
    that moved meanwhile is re-read by its new owner).
    """
    try:
        consumer.commit({tp: OffsetAndMetadata(offset, "", -1) for tp, offset in offsets.items()})
    except (RebalanceInProgressError, CommitFailedError) as exc:
        log.warning(
            "commit deferred by a rebalance: %s",
            exc,
            extra={"partitions": sorted(tp.partition for tp in offsets)},
        )
        return False
    return True


def resume(consumer: Any, partitions: Sequence[Any]) -> None:
    """``consumer.resume(*partitions)``, with a work-around for kafka-python 3.0.12.

    Its fetcher parks the records it had already parsed for a partition that was paused,
    and gives them back on a later ``poll`` only while its "next records" slot is ``None``;
    once a partition's records have all been returned, that slot keeps the drained (empty,
    not ``None``) record set, and a partition with parked records is never fetched again.
    So a resumed partition could stay silent for ever (seen in ``driftloop bench labels``:
    its baseline, which pauses whichever of a partition's two streams runs ahead in event
    time, stopped for good after a few seconds without this). Here the parked
    records of the resumed partitions are dropped instead: they were never returned, the
    position is still at their first offset, and the next fetch reads them again.
    """
    if not partitions:
        return
    consumer.resume(*partitions)
    parked = getattr(getattr(consumer, "_fetcher", None), "_paused_partition_records", None)
    if isinstance(parked, dict):
        for tp in partitions:
            records = parked.pop(tp, None)
            if records is not None:
                records.drain()
