import io
import logging

from streaming.logs import JsonFormatter, configure_logging


def _transport_log_of(error: BaseException) -> str:
    root = logging.getLogger()
    saved = root.handlers[:], root.level, logging.getLogger("kafka").level
    configure_logging("INFO")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root.handlers[:] = [handler]
    try:
        raise error
    except BaseException:
        logging.getLogger("kafka.net.transport").exception("Error receiving network data closing socket")
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        logging.getLogger("kafka").setLevel(saved[2])
    return stream.getvalue()


def test_kafka_pythons_read_after_its_own_close_is_not_logged_as_an_error() -> None:
    assert _transport_log_of(AttributeError("'NoneType' object has no attribute 'recv'")) == ""


def test_a_real_receive_error_is_still_logged_with_its_traceback() -> None:
    text = _transport_log_of(ConnectionResetError(104, "Connection reset by peer"))
    assert '"level":"error"' in text and "Traceback" in text
