"""Read every partition of one topic outside any consumer group: the one "read a topic".

For everything that looks at a topic rather than processes it: the model-update follower
(from the beginning, then to the end, then follow), the monitors' state restore, the
retraining window (from a timestamp to the current end), the canary's evidence (from the
step's start), ``driftloop events tail``, the demo's outcome report, the benchmarks and the
tests. No group, no commits, every partition assigned.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator, Mapping
from typing import Any, Literal

from kafka import TopicPartition

from streaming.config import KafkaSettings
from streaming.errors import KafkaUnavailableError
from streaming.kafka.clients import wait_for_topic
from streaming.kafka.transport import make_consumer

Start = Literal["beginning", "end"] | int | Mapping[int, int]
"""Where a reader starts: the beginning, the end, a timestamp in epoch milliseconds (the
first record at or after it; the end of a partition that has none), or an offset per
partition (``{partition: offset}``)."""


class TopicReader:
    """Records of ``topic`` from ``start``, partition by partition in offset order.

    ``starts`` are the offsets each partition started at; ``ends`` its end offsets when the
    reader opened (refreshed by :meth:`read_to_end`): :meth:`caught_up` says whether
    everything that existed then has been read. ``partitions`` reads only those (all by
    default). Extra keywords go to the consumer.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        start: Start = "beginning",
        *,
        partitions: Collection[int] | None = None,
        topic_timeout_s: float = 10.0,
        **consumer_config: Any,
    ) -> None:
        self.topic = topic
        self._consumer = make_consumer(kafka, None, enable_auto_commit=False, **consumer_config)
        try:
            existing = wait_for_topic(self._consumer, topic, timeout_s=topic_timeout_s)
            chosen = existing if partitions is None else existing & set(partitions)
            self._partitions = [TopicPartition(topic, p) for p in sorted(chosen)]
            self._consumer.assign(self._partitions)
            self._ends: dict[TopicPartition, int] = self._consumer.end_offsets(self._partitions)
            if start == "beginning":
                self._consumer.seek_to_beginning(*self._partitions)
            elif start == "end":
                self._consumer.seek_to_end(*self._partitions)
            elif isinstance(start, Mapping):
                for tp in self._partitions:
                    self._consumer.seek(tp, min(max(0, start.get(tp.partition, 0)), self._ends[tp]))
            else:
                found = self._consumer.offsets_for_times({tp: max(0, int(start)) for tp in self._partitions})
                for tp in self._partitions:
                    at = found.get(tp)
                    self._consumer.seek(tp, at.offset if at is not None else self._ends[tp])
            self.starts = {tp.partition: int(self._consumer.position(tp)) for tp in self._partitions}
        except BaseException:
            self._consumer.close(autocommit=False)
            raise

    @property
    def partitions(self) -> list[int]:
        return [tp.partition for tp in self._partitions]

    @property
    def ends(self) -> dict[int, int]:
        """Each partition's end offset when the reader opened, or at the last :meth:`read_to_end`."""
        return {tp.partition: int(end) for tp, end in self._ends.items()}

    def poll(self, timeout_ms: int = 500, max_records: int | None = None) -> list[Any]:
        """The records that arrived, ordered by partition then offset."""
        polled = self._consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        return [record for tp in sorted(polled, key=lambda tp: tp.partition) for record in polled[tp]]

    def caught_up(self) -> bool:
        return all(self._consumer.position(tp) >= end for tp, end in self._ends.items())

    def read_to_end(self, timeout_s: float = 30.0, max_records: int | None = None) -> Iterator[Any]:
        """Every record from the current positions to the topic's end *now*, and no further
        (the reader stays at the end, ready to :meth:`poll` what comes next).

        Raises :class:`KafkaUnavailableError` when the end is not reached within ``timeout_s``.
        """
        self._ends = self._consumer.end_offsets(self._partitions)
        deadline = time.monotonic() + timeout_s
        while not self.caught_up():
            if time.monotonic() > deadline:
                raise KafkaUnavailableError(f"could not read {self.topic} to its end within {timeout_s:.0f}s")
            polled = self._consumer.poll(timeout_ms=200, max_records=max_records)
            for tp in sorted(polled, key=lambda tp: tp.partition):
                end = self._ends[tp]
                records = polled[tp]
                if records and records[-1].offset >= end:  # fetched past the end: leave those
                    records = [r for r in records if r.offset < end]
                    self._consumer.seek(tp, end)
                yield from records

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


def end_offsets(kafka: KafkaSettings, topic: str, topic_timeout_s: float = 10.0) -> dict[int, int]:
    """Each partition's end offset (what has been written to it so far)."""
    with TopicReader(kafka, topic, "end", topic_timeout_s=topic_timeout_s) as reader:
        return reader.ends
