"""Delivery of outputs: every send counted, every failure recorded, one check at the flush.

Send futures are not kept: the producer's errback records a failure, so an acknowledged
output is freed at once. (Holding a checkpoint's worth of futures, ~20k a second, had the
garbage collector scan them again and again: twice the GC time per event.)

>>> flushed = []
>>> tracker = DeliveryTracker(flushed.append, timeout_s=5, describe=lambda problem: f"lost: {problem}")
>>> tracker.sent(3)
>>> tracker.flush(); flushed, tracker.unflushed
([5], 0)
>>> tracker.sent(1); tracker.errback(TimeoutError("no ack"))
>>> tracker.flush()
Traceback (most recent call last):
...
streaming.errors.DeliveryError: lost: 1 refused, the first: TimeoutError('no ack')
>>> tracker.failing
True
"""

from __future__ import annotations

import time
from collections.abc import Callable

from streaming.errors import DeliveryError


class DeliveryTracker:
    """Outputs sent since the last flush, and the failures the producer reported.

    Parameters
    ----------
    flush
        Waits (at most the given seconds) until every output sent so far is acknowledged;
        the errbacks of failed sends have run when it returns. It raises on a timeout.
    timeout_s
        How long a flush may wait.
    describe
        Turns the problem into the :class:`~streaming.errors.DeliveryError`'s message (which
        outputs, what a restart does).
    """

    def __init__(
        self, flush: Callable[[float], object], timeout_s: float, describe: Callable[[str], str]
    ) -> None:
        self._flush = flush
        self.timeout_s = timeout_s
        self._describe = describe
        self._failures: list[BaseException] = []  # appended by the producer's I/O thread
        self.unflushed = 0
        #: A delivery failed: nothing more is flushed or committed, nothing waits on Kafka again.
        self.failing = False
        self.last_flush_at: float | None = None  # time.monotonic() after the latest good flush
        #: Pass to each send future's ``add_errback``.
        self.errback = self._failures.append

    def sent(self, count: int) -> None:
        self.unflushed += count

    def send_failed(self, problem: BaseException) -> DeliveryError:
        """The error to raise when a send itself failed (its buffer stayed full: Kafka is gone)."""
        self.failing = True
        return DeliveryError(self._describe(f"send: {problem!r}"))

    def flush(self) -> None:
        """Wait until every output sent so far is acknowledged; raise if one failed."""
        if not self.unflushed:
            return
        self.unflushed = 0
        problems: list[str] = []
        try:
            self._flush(self.timeout_s)
        except Exception as exc:  # a timeout, or the producer gave up on a batch
            problems.append(f"flush: {exc!r}")
        if self._failures:
            problems.append(f"{len(self._failures)} refused, the first: {self._failures[0]!r}")
        if problems:
            self.failing = True
            raise DeliveryError(self._describe("; ".join(problems)))
        self.last_flush_at = time.monotonic()
