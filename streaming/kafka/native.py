"""A producer in C (confluent-kafka, librdkafka) for the stages that write many records per
input record.

kafka-python's ``send`` costs about 32 µs a record on this project's machines (a future, a
lock, Python record encoding); the outcome join writes an outcome and up to six changelog
records per transaction, so its sends took three quarters of its time (``driftloop bench
labels``). librdkafka's ``produce`` is a few microseconds. The consumers stay on
kafka-python, whose group protocol, rebalance listeners and error reporting the rest of
the project is built on.

:class:`NativeProducer` is idempotent with ``acks=all``, partitions keys as the Java client
and kafka-python do (murmur2), and reports each failed delivery to ``on_failure``. It
remembers, per topic partition, the offset after the last record delivered, which the
changelog needs as its position.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from streaming.config import KafkaSettings
from streaming.errors import KafkaUnavailableError

_SERVE_EVERY = 1000  # sends between two polls for delivery reports


class NativeDeliveryError(Exception):
    """librdkafka reported a record as not delivered (or the producer itself failed)."""


#: kafka-python's option names (:meth:`KafkaSettings.client_options`) in librdkafka's.
_LIBRDKAFKA_NAMES = {
    "client_id": "client.id",
    "security_protocol": "security.protocol",
    "request_timeout_ms": "socket.timeout.ms",
    "ssl_cafile": "ssl.ca.location",
    "ssl_certfile": "ssl.certificate.location",
    "ssl_keyfile": "ssl.key.location",
    "ssl_password": "ssl.key.password",
    "sasl_mechanism": "sasl.mechanism",
    "sasl_plain_username": "sasl.username",
    "sasl_plain_password": "sasl.password",
}


#: How long librdkafka keeps a bearer token before it asks the provider again.
OAUTH_REFRESH_S = 300.0


def librdkafka_config(kafka: KafkaSettings) -> dict[str, Any]:
    """:class:`~streaming.config.KafkaSettings` as librdkafka properties: the options the
    kafka-python clients get (:meth:`~streaming.config.KafkaSettings.client_options`, which
    decides which settings apply), under librdkafka's names."""
    options = kafka.client_options()
    provider = options.pop("sasl_oauth_token_provider", None)
    config: dict[str, Any] = {"bootstrap.servers": ",".join(options.pop("bootstrap_servers"))}
    check_hostname = options.pop("ssl_check_hostname", None)
    if check_hostname is not None:
        config["ssl.endpoint.identification.algorithm"] = "https" if check_hostname else "none"
    config.update((_LIBRDKAFKA_NAMES[name], value) for name, value in options.items())
    config["security.protocol"] = config["security.protocol"].lower()
    if provider is not None:  # librdkafka asks for a token (and its expiry) when it needs one
        config["oauth_cb"] = lambda _config: (provider.token(), time.time() + OAUTH_REFRESH_S)
    return config


def librdkafka_offsets(offsets: Mapping[Any, Any]) -> list[Any]:
    r"""kafka-python's ``{TopicPartition: OffsetAndMetadata or offset}`` as the list of
    confluent-kafka ``TopicPartition``\ s (with offsets) that librdkafka's calls take."""
    from confluent_kafka import TopicPartition

    return [TopicPartition(tp.topic, tp.partition, getattr(o, "offset", o)) for tp, o in offsets.items()]


def produce_waiting(
    producer: Any, block_s: float, full: Callable[[], Exception], *args: Any, **kwargs: Any
) -> None:
    """``producer.produce(*args, **kwargs)``; while librdkafka's local queue is full, serve
    delivery reports to let it ship some, and raise ``full()`` after ``block_s``."""
    waited = 0.0
    while True:
        try:
            producer.produce(*args, **kwargs)
            return
        except BufferError:
            if waited >= block_s:
                raise full() from None
            producer.poll(0.1)
            waited += 0.1


def queue_full(kafka: KafkaSettings, block_s: float, last_error: str | None) -> str:
    return (
        f"the producer's queue stayed full for {block_s:g}s: "
        f"{kafka.bootstrap_servers} is not taking records ({last_error})"
    )


def close_dropping(producer: Any, timeout: float) -> None:
    """Deliver what is queued within ``timeout``; then drop what is left, so that freeing the
    client does not wait out its delivery timeout."""
    if producer.flush(timeout):
        producer.purge()
        producer.flush(0)


class LibrdkafkaLog:
    """librdkafka's log lines, on to the ``kafka.native`` logger; the latest critical one
    (a fatal error, such as a transactional producer fenced by a newer instance) is kept:
    librdkafka may fail a flush without an error that says why."""

    def __init__(self) -> None:
        self._logger = logging.getLogger("kafka.native")
        self.last_fatal: str | None = None

    def log(self, level: int, message: str, *args: Any) -> None:
        if level >= logging.CRITICAL:
            self.last_fatal = message % args if args else message
        self._logger.log(level, message, *args)


class NativeProducer:
    """An idempotent librdkafka producer with kafka-python's keyed partitioning.

    Parameters
    ----------
    kafka
        The brokers and their security settings.
    on_failure
        Called (from :meth:`send`, :meth:`poll` or :meth:`flush`, in the caller's thread)
        with a :class:`NativeDeliveryError` for every record that was not delivered.
    delivery_timeout_s
        How long a record may take to be acknowledged (retries included) before it fails,
        and how long :meth:`send` waits for room in a full local queue.
    linger_ms
        How long a batch waits for more records.
    track_offsets
        Keep :meth:`next_offset` (a Python callback per delivered record). Without it,
        librdkafka reports failed deliveries only (the scorer's outputs: a few µs less per
        record).
    transactional_id, transaction_timeout_ms
        Make it transactional (exactly-once): then call :meth:`init_transactions` first, and
        send inside :meth:`begin_transaction` ... :meth:`commit_transaction`. The transaction
        methods take kafka-python's arguments and raise kafka-python's errors.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        on_failure: Callable[[BaseException], object],
        delivery_timeout_s: float = 30.0,
        linger_ms: int = 20,
        transactional_id: str | None = None,
        transaction_timeout_ms: int = 60_000,
        track_offsets: bool = True,
    ) -> None:
        import confluent_kafka

        self._on_failure = on_failure
        self._block_s = delivery_timeout_s
        self._kafka = kafka
        self.failures = 0
        self._last_error: str | None = None  # the latest client-level error (refused credentials...)
        self._log = LibrdkafkaLog()
        self._next: dict[tuple[str, int], int] = {}
        self._unserved = 0
        config = {
            **librdkafka_config(kafka),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": linger_ms,
            "delivery.timeout.ms": int(delivery_timeout_s * 1000),
            "partitioner": "murmur2_random",  # the Java (and kafka-python) default for keys
            "on_delivery": self._delivered,
            "delivery.report.only.error": not track_offsets,
            "error_cb": self._client_error,
            "logger": self._log,
        }
        if transactional_id is not None:
            config.update(
                {"transactional.id": transactional_id, "transaction.timeout.ms": transaction_timeout_ms}
            )
        self._timeout_s = max(30.0, delivery_timeout_s)
        self._ck = confluent_kafka
        try:
            self._producer = confluent_kafka.Producer(config)
        except confluent_kafka.KafkaException as exc:
            raise KafkaUnavailableError(
                f"cannot create a producer for {kafka.bootstrap_servers}: {exc}"
            ) from exc
        self._refused = confluent_kafka.KafkaException

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        timestamp_ms: int = 0,
    ) -> None:
        """Queue one record (``partition`` None: by its key; ``timestamp_ms`` 0: now).

        Raises :class:`NativeDeliveryError` if librdkafka refuses it (too large, say) or its
        local queue stays full for ``delivery_timeout_s`` (the brokers take nothing)."""
        where = -1 if partition is None else partition
        try:
            produce_waiting(
                self._producer,
                self._block_s,
                lambda: NativeDeliveryError(queue_full(self._kafka, self._block_s, self.last_error)),
                topic,
                value,
                key,
                where,
                timestamp=timestamp_ms,
            )
        except self._refused as exc:
            why = None
            if exc.args and exc.args[0].code() == self._ck.KafkaError._FATAL:
                # The producer is dead (e.g. fenced by a newer one with its transactional id),
                # and says why only when its queue is served: poll raises the fatal error.
                try:
                    self.poll()
                except NativeDeliveryError as fatal:
                    why = str(fatal)
            why = why or self.last_error
            cause = f" (the client's last error: {why})" if why else ""
            raise NativeDeliveryError(f"{topic}: {exc}{cause}") from exc
        self._unserved += 1
        if self._unserved >= _SERVE_EVERY:
            self.poll()

    def poll(self) -> None:
        """Serve the delivery reports that came in; raise :class:`NativeDeliveryError` when
        the producer failed for good (librdkafka raises its fatal error here: e.g. fenced by
        a newer producer with the same transactional id)."""
        self._unserved = 0
        try:
            self._producer.poll(0)
        except self._refused as exc:
            error = exc.args[0].str() if exc.args else str(exc)
            raise NativeDeliveryError(f"the producer failed: {error}") from exc

    def flush(self, timeout: float) -> None:
        """Wait until every record sent so far is acknowledged or failed (their reports
        served); raise :class:`NativeDeliveryError` if some are still out after ``timeout``."""
        self._unserved = 0
        remaining = self._producer.flush(timeout)
        if remaining:
            cause = f": {self.last_error}" if self.last_error else ""
            raise NativeDeliveryError(
                f"{remaining} records not acknowledged by {self._kafka.bootstrap_servers} "
                f"within {timeout:g}s{cause}"
            )

    def next_offset(self, topic: str, partition: int) -> int | None:
        """The offset after the last record delivered to the partition (None: none yet)."""
        return self._next.get((topic, partition))

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued, within ``timeout`` (0: the caller is failing); then drop
        what is left, so that freeing the client does not wait out its delivery timeout."""
        close_dropping(self._producer, timeout)

    # -- transactions (kafka-python's signatures and errors) ------------------------------

    def init_transactions(self) -> None:
        self._transactional(self._producer.init_transactions, self._timeout_s)

    def begin_transaction(self) -> None:
        self._transactional(self._producer.begin_transaction)

    def send_offsets_to_transaction(self, offsets: Mapping[Any, Any], group_metadata: Any) -> None:
        """``offsets``: ``{TopicPartition: OffsetAndMetadata or offset}`` (kafka-python's)."""
        self._transactional(
            self._producer.send_offsets_to_transaction,
            librdkafka_offsets(offsets),
            group_metadata,
            self._timeout_s,
        )

    def commit_transaction(self) -> None:
        self._unserved = 0
        self._transactional(self._producer.commit_transaction, self._timeout_s)

    def abort_transaction(self) -> None:
        self._transactional(self._producer.abort_transaction, self._timeout_s)

    def _transactional(self, call: Callable[..., Any], *args: Any) -> None:
        try:
            call(*args)
        except self._ck.KafkaException as exc:
            from kafka.errors import KafkaError, TransactionalIdAuthorizationFailedError

            error = exc.args[0]
            if error.code() == self._ck.KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
                raise TransactionalIdAuthorizationFailedError(error.str()) from exc
            raise KafkaError(f"{call.__name__}: {error.str()}") from exc

    def _delivered(self, error: Any, message: Any) -> None:
        if error is not None:
            self.failures += 1
            cause = f" (the client's last error: {self.last_error})" if self.last_error else ""
            self._on_failure(
                NativeDeliveryError(f"{message.topic()}[{message.partition()}]: {error.str()}{cause}")
            )
            return
        place = (message.topic(), message.partition())
        offset = message.offset() + 1
        if offset > self._next.get(place, 0):
            self._next[place] = offset

    @property
    def last_error(self) -> str | None:
        """The latest fatal error librdkafka logged, else the latest client-level error."""
        return self._log.last_fatal or self._last_error

    def _client_error(self, error: Any) -> None:
        self._last_error = error.str()  # librdkafka logs it too (``logger``)
