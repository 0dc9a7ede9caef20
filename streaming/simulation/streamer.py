"""`driftloop simulate`: stream simulated transactions (and their delayed labels) to Kafka."""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from streaming.config import Settings
from streaming.errors import KafkaUnavailableError
from streaming.events import encode_event
from streaming.kafka.clients import close_all
from streaming.kafka.transport import make_producer
from streaming.simulation.delays import LabelDelay
from streaming.simulation.generator import Regime, TransactionSimulator, to_labels, to_transactions


@dataclass
class SimulationStats:
    """Counts so far; ``transactions`` counts a transaction as it is handed to the producer."""

    transactions: int = 0
    labels: int = 0
    seconds: float = 0.0
    failed: int = 0  # records the brokers did not take (close() then raises)


class TransactionStreamer:
    """Produces frames of simulated transactions at a steady rate, and their labels late, on
    one producer.

    ``label_delay`` is a number of transactions, or a :class:`LabelDelay` (a count, or an
    event-time delay drawn per label: the label's ``label_time`` is its transaction's event
    time plus the delay, and it is sent once the stream's event time has passed that).

    The rate holds across frames (it is counted from the first transaction), so a stream
    can be fed frame by frame, with regime changes in between. Each label is keyed by its
    transaction_id, as a chargeback feed is: the labels topic is co-partitioned with the
    scores, which `driftloop join` needs. :attr:`stats`
    is updated as records are handed to the producer (another thread may read it).
    """

    def __init__(
        self,
        settings: Settings,
        rate: float | None = None,
        label_delay: int | LabelDelay = 0,
        seed: int = 0,
    ) -> None:
        self._topics = settings.topics
        self._producer = make_producer(settings.kafka, linger_ms=20, batch_size=262_144)
        self._rate = rate or None
        self._delay = (
            label_delay if isinstance(label_delay, LabelDelay) else LabelDelay(transactions=label_delay)
        )
        self._rng = np.random.default_rng(seed)
        self._pending: deque[tuple[bytes, bytes]] = deque()  # labels by count, oldest first
        self._due: list[tuple[datetime, int, bytes, bytes]] = []  # labels by label_time (a heap)
        self._started: float | None = None
        self._first_failure: BaseException | None = None
        self.stats = SimulationStats()

    def send(self, frame: pd.DataFrame, stop: Callable[[], bool] = lambda: False) -> np.ndarray:
        """Produce the frame's transactions (and the labels now due); return when each was
        sent (``time.time()``), NaN for the rows not sent because ``stop()`` became true."""
        if self._started is None:
            self._started = time.monotonic()
        sent_at = np.full(len(frame), np.nan)
        send, topics, stats = self._producer.send, self._topics, self.stats
        delay = self._delay
        labels = (
            to_labels(frame, delay.draw(self._rng, len(frame))) if delay.in_event_time else to_labels(frame)
        )
        for i, (transaction, label) in enumerate(zip(to_transactions(frame), labels, strict=True)):
            if stop():
                break
            key = transaction.account_id.encode()
            stats.transactions += 1
            send(topics.transactions, key=key, value=encode_event(transaction)).add_errback(self._failed)
            sent_at[i] = time.time()
            held = (transaction.transaction_id.encode(), encode_event(label))
            if delay.in_event_time:
                heapq.heappush(self._due, (label.label_time, stats.transactions, *held))
                while self._due and self._due[0][0] <= transaction.event_time:
                    self._send_label(*heapq.heappop(self._due)[2:])
            else:
                self._pending.append(held)
                while len(self._pending) > delay.transactions:
                    self._send_label(*self._pending.popleft())
            if self._rate:
                ahead = stats.transactions / self._rate - (time.monotonic() - self._started)
                if ahead > 0:
                    time.sleep(ahead)
        return sent_at

    def _send_label(self, key: bytes, value: bytes) -> None:
        self._producer.send(self._topics.labels, key=key, value=value).add_errback(self._failed)
        self.stats.labels += 1

    def _failed(self, exc: BaseException) -> None:
        self.stats.failed += 1
        if self._first_failure is None:
            self._first_failure = exc

    def close(self, flush_labels: bool = True) -> SimulationStats:
        """Send the labels still held back (unless told not to), flush, close; raise
        :class:`KafkaUnavailableError` if any record was not delivered."""
        try:
            while flush_labels and self._pending:
                self._send_label(*self._pending.popleft())
            while flush_labels and self._due:
                self._send_label(*heapq.heappop(self._due)[2:])
            self._producer.flush(timeout=60)
        finally:
            close_all(lambda: self._producer.close(timeout=10))
        if self._started is not None:
            self.stats.seconds = time.monotonic() - self._started
        if self._first_failure is not None:
            raise KafkaUnavailableError(
                f"{self.stats.failed} simulated records were not delivered: {self._first_failure}"
            )
        return self.stats


def stream_transactions(
    settings: Settings,
    simulator: TransactionSimulator,
    count: int,
    regime: Regime,
    rate: float | None = None,
    label_delay: int | LabelDelay = 0,
    chunk: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> SimulationStats:
    """Produce ``count`` transactions (at ``rate`` per second, or as fast as possible).

    Each label is published ``label_delay`` after its transaction (a number of transactions,
    0: at once, or a :class:`LabelDelay` in event time); the labels still pending at the end
    are flushed last.
    """
    streamer = TransactionStreamer(settings, rate, label_delay, seed=simulator.seed)
    try:
        while streamer.stats.transactions < count:
            frame = simulator.generate(min(chunk, count - streamer.stats.transactions), regime)
            streamer.send(frame)
            if progress is not None:
                progress(len(frame))
    finally:
        stats = streamer.close()
    return stats
