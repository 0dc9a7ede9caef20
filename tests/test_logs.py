import errno
import io
import logging

from kafka.errors import Cancelled, KafkaTimeoutError

from streaming.logs import JsonFormatter, configure_logging


def _kafka_log_of(logger: str, message: str, *args: object, error: BaseException | None = None) -> str:
    root = logging.getLogger()
    saved = root.handlers[:], root.level, logging.getLogger("kafka").level
    configure_logging("INFO")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root.handlers[:] = [handler]
    try:
        if error is None:
            logging.getLogger(logger).error(message, *args)
        else:
            try:
                raise error
            except BaseException:
                logging.getLogger(logger).exception(message, *args)
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        logging.getLogger("kafka").setLevel(saved[2])
    return stream.getvalue()


_READ = ("kafka.net.transport", "Error receiving network data closing socket")


def test_kafka_pythons_read_after_its_own_close_is_not_logged_as_an_error() -> None:
    assert _kafka_log_of(*_READ, error=AttributeError("'NoneType' object has no attribute 'recv'")) == ""
    assert _kafka_log_of(*_READ, error=OSError(errno.EBADF, "Bad file descriptor")) == ""


def test_a_metadata_request_cancelled_by_a_close_is_not_logged_as_an_error() -> None:
    assert _kafka_log_of("kafka.cluster", "Metadata refresh: failed %s", Cancelled()) == ""


def test_real_network_errors_are_still_logged() -> None:
    text = _kafka_log_of(*_READ, error=ConnectionResetError(104, "Connection reset by peer"))
    assert '"level":"error"' in text and "Traceback" in text
    text = _kafka_log_of("kafka.cluster", "Metadata refresh: failed %s", KafkaTimeoutError())
    assert "Metadata refresh: failed" in text
