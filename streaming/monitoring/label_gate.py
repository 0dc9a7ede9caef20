"""When a delayed label may reach the monitors: the release rule of their outcome stream,
without Kafka.

Labels reach the monitors as outcomes (labelled predictions), read from a topic
co-partitioned with the transactions, so outcome partition p belongs to whoever scores
transaction partition p. An outcome read from p is *held* until the transactions of p have
been scored past its timestamp (the watermark): a backlog then replays in the order it
happened, and the label and error monitors see the stream's time in the same order as the
feature monitors. Two things release a held outcome earlier:

- the partition is *idle*: no transaction scored on it for ``idle_release_s`` (it is
  caught up; nothing older is coming), so everything held goes;
- more than ``max_held`` are held: the oldest go, so memory stays bounded.

The gate tracks, per partition, the next offset to fetch and the next one handed on (what
a state snapshot records, so a restore re-reads exactly the unhanded outcomes)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol


class Timestamped(Protocol):
    """A label record as read from Kafka: only its offset and timestamp matter here."""

    @property
    def offset(self) -> int: ...

    @property
    def timestamp(self) -> int: ...


class LabelGate:
    """Held labels, watermarks and label offsets, per owned partition (see the module)."""

    def __init__(
        self, idle_release_s: float, max_held: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.idle_release_s = idle_release_s
        self.max_held = max_held
        self._clock = clock
        self._held: dict[int, deque[Any]] = {}
        self._fetched: dict[int, int] = {}  # next labels offset to fetch
        self._handed: dict[int, int] = {}  # next labels offset handed on
        self._watermark: dict[int, int] = {}  # newest scored transaction timestamp (ms)
        self._last_scored: dict[int, float] = {}  # clock() at the newest scored batch

    def own(self, partition: int, labels_offset: int) -> None:
        """Start gating ``partition``'s labels from ``labels_offset``."""
        self._fetched[partition] = self._handed[partition] = labels_offset

    def forget(self, partition: int) -> None:
        """``partition`` is no longer owned: drop what is held (its next owner re-reads it)."""
        for owned in (self._held, self._fetched, self._handed, self._watermark, self._last_scored):
            owned.pop(partition, None)

    def owned(self) -> list[int]:
        return sorted(self._fetched)

    def fetch_offset(self, partition: int) -> int:
        """The next labels offset to read for ``partition``."""
        return self._fetched[partition]

    def handed_offset(self, partition: int) -> int:
        """The next labels offset not yet handed on (0 before any)."""
        return self._handed.get(partition, 0)

    def held(self, partition: int) -> int:
        return len(self._held.get(partition, ()))

    def scored(self, partition: int, newest_timestamp_ms: int) -> None:
        """Transactions of ``partition`` were scored, the newest stamped ``newest_timestamp_ms``."""
        self._watermark[partition] = max(self._watermark.get(partition, 0), newest_timestamp_ms)
        self._last_scored[partition] = self._clock()

    def fetched(self, partition: int, records: Iterable[Timestamped]) -> None:
        """Label records read from ``partition``, in offset order. Unowned partitions are ignored."""
        if partition not in self._fetched:
            return
        held = self._held.setdefault(partition, deque())
        held.extend(records)
        if held:
            self._fetched[partition] = max(self._fetched[partition], held[-1].offset + 1)

    def idle(self, partition: int) -> bool:
        """No transaction scored on ``partition`` for ``idle_release_s``."""
        now = self._clock()
        return now - self._last_scored.get(partition, now) > self.idle_release_s

    def holding(self) -> list[int]:
        """The partitions with labels held."""
        return [p for p, held in self._held.items() if held]

    def release(self, partition: int, caught_up: bool = False) -> list[Any]:
        """The held records of ``partition`` that may join now, oldest first (see the module);
        ``caught_up`` releases everything held."""
        held = self._held.get(partition)
        if not held:
            return []
        watermark = 2**62 if caught_up else self._watermark.get(partition, -1)
        released = []
        while held and (held[0].timestamp <= watermark or len(held) > self.max_held):
            released.append(held.popleft())
        if released:
            self._handed[partition] = released[-1].offset + 1
        return released
