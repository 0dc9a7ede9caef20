"""Read every partition of one topic outside any consumer group.

For tools that look at a topic rather than process it (``driftloop events tail``): no
group, no commits, every partition assigned, starting at the beginning or the end.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Literal

from kafka import TopicPartition

from streaming.config import KafkaSettings
from streaming.kafka.clients import make_consumer, wait_for_topic

Start = Literal["beginning", "end"]


class TopicReader:
    """Records of ``topic`` from ``start``, partition by partition in offset order.

    ``ends`` are the partitions' end offsets when the reader opened: :meth:`caught_up`
    says whether everything that existed then has been read.
    """

    def __init__(self, kafka: KafkaSettings, topic: str, start: Start = "beginning") -> None:
        self.topic = topic
        self._consumer = make_consumer(kafka, None, enable_auto_commit=False)
        try:
            partitions = wait_for_topic(self._consumer, topic, timeout_s=10)
            self._partitions = [TopicPartition(topic, p) for p in sorted(partitions)]
            self._consumer.assign(self._partitions)
            if start == "beginning":
                self._consumer.seek_to_beginning(*self._partitions)
            else:
                self._consumer.seek_to_end(*self._partitions)
            self.ends: dict[TopicPartition, int] = self._consumer.end_offsets(self._partitions)
        except BaseException:
            self._consumer.close(autocommit=False)
            raise

    def poll(self, timeout_ms: int = 500) -> list[Any]:
        """The records that arrived, ordered by partition then offset."""
        polled = self._consumer.poll(timeout_ms=timeout_ms)
        return [record for tp in sorted(polled, key=lambda tp: tp.partition) for record in polled[tp]]

    def caught_up(self) -> bool:
        return all(self._consumer.position(tp) >= end for tp, end in self.ends.items())

    def records(self, follow: bool, stop_after_s: float | None = None) -> Iterator[Any]:
        """Every record from the start; with ``follow``, keep waiting for new ones (until
        ``stop_after_s``, if given); without, stop at the ends seen when the reader opened."""
        deadline = None if stop_after_s is None else time.monotonic() + stop_after_s
        while follow or not self.caught_up():
            if deadline is not None and time.monotonic() > deadline:
                return
            yield from self.poll()

    def close(self) -> None:
        self._consumer.close(autocommit=False)

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
