"""`driftloop simulate`: stream simulated transactions (and their delayed labels) to Kafka."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from streaming.config import Settings
from streaming.events import Label, encode_event
from streaming.kafka.clients import make_producer
from streaming.simulator import Regime, TransactionSimulator, to_labels, to_transactions


@dataclass
class SimulationStats:
    transactions: int = 0
    labels: int = 0
    seconds: float = 0.0


def stream_transactions(
    settings: Settings,
    simulator: TransactionSimulator,
    count: int,
    regime: Regime,
    rate: float | None = None,
    label_delay: int = 0,
    chunk: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> SimulationStats:
    """Produce ``count`` transactions (at ``rate`` per second, or as fast as possible).

    Each label is published ``label_delay`` transactions after its transaction (0: at once);
    the labels still pending at the end are flushed last.
    """
    producer = make_producer(settings.kafka, linger_ms=20, batch_size=262_144)
    topics = settings.topics
    pending: deque[tuple[bytes, Label]] = deque()
    stats = SimulationStats()
    started = time.monotonic()

    def send_label(key: bytes, label: Label) -> None:
        # Keyed like its transaction: the labels topic is co-partitioned with the transactions.
        producer.send(topics.labels, key=key, value=encode_event(label))
        stats.labels += 1

    try:
        while stats.transactions < count:
            frame = simulator.generate(min(chunk, count - stats.transactions), regime)
            for transaction, label in zip(to_transactions(frame), to_labels(frame), strict=True):
                key = transaction.account_id.encode()
                producer.send(topics.transactions, key=key, value=encode_event(transaction))
                stats.transactions += 1
                pending.append((key, label))
                while len(pending) > label_delay:
                    send_label(*pending.popleft())
                if rate:
                    ahead = stats.transactions / rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
            if progress is not None:
                progress(len(frame))
        while pending:
            send_label(*pending.popleft())
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)
    stats.seconds = time.monotonic() - started
    return stats
