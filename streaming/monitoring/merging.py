"""Putting evidence from many partitions back into one stream: event-time order, once.

Evidence arrives on ``drift.evidence`` in publication order: each scorer's records in
checkpoint order, interleaved across scorers and partitions. Two small parts restore the
stream the monitors should see:

- :class:`OffsetLedger` makes evidence idempotent: per source partition it remembers the
  next offset not yet counted. A replay after a scorer crash summarizes offsets counted
  already: a record entirely below that mark is a duplicate and skipped; one that straddles
  it cannot be split (its counts are sums), so it is skipped too and its new rows are
  counted as lost (``overlap_rows``): never counted twice.
- :class:`EventTimeMerger` releases items in event-time order once the *watermark* has
  passed them. The watermark is the oldest of the active partitions' newest times (every
  active partition has reported past it), but never more than ``lateness_ms`` behind the
  newest time seen. A partition is active until it has sent nothing for ``idle_s`` (wall
  clock; a partition expected but not seen yet is waited for that long after the first
  item): a partition that stops, or whose scorer is down, does not stall the others. An
  item older than what was already released is *late*: it is released at once and
  counted (``late``). Without a clock (``now=None``: the backtest), every partition is
  active.

>>> ledger = OffsetLedger()
>>> [ledger.admit(0, start, end) for start, end in [(0, 9), (10, 19), (5, 9), (15, 24), (25, 30)]]
['new', 'new', 'duplicate', 'overlap', 'new']
>>> merger = EventTimeMerger(lateness_ms=100, partitions=2)
>>> merger.add(0, 10, "a"); merger.add(0, 20, "b"); merger.add(1, 15, "c")
>>> merger.release()
['a', 'c']
>>> merger.add(1, 30, "d"); merger.release()
['b']
>>> merger.add(0, 5, "late"); merger.release(), merger.late
(['late'], 1)
"""

from __future__ import annotations

import heapq
import itertools
from typing import Generic, Literal, TypeVar

T = TypeVar("T")

Admission = Literal["new", "duplicate", "overlap"]


class OffsetLedger:
    """Per source partition, the next offset not yet counted (see the module docstring)."""

    def __init__(self) -> None:
        self.next_offset: dict[int, int] = {}
        self.duplicates = 0
        self.overlaps = 0
        self.overlap_rows = 0
        self.gap_offsets = 0  # offsets skipped between records (retention, compaction, markers)

    def admit(self, partition: int, start: int, end: int) -> Admission:
        """Whether evidence of offsets ``start``..``end`` (inclusive) is new."""
        mark = self.next_offset.get(partition)
        if mark is not None and end < mark:
            self.duplicates += 1
            return "duplicate"
        if mark is not None and start < mark:
            self.overlaps += 1
            self.overlap_rows += end - mark + 1
            self.next_offset[partition] = end + 1
            return "overlap"
        if mark is not None and start > mark:
            self.gap_offsets += start - mark
        self.next_offset[partition] = end + 1
        return "new"


class EventTimeMerger(Generic[T]):
    """Items from many partitions, out in event-time order behind a watermark.

    Parameters
    ----------
    lateness_ms
        How far behind the newest time a slow partition may hold the watermark.
    partitions
        How many partitions are expected; until each has reported, the watermark waits for
        them (within ``lateness_ms``, and ``idle_s`` of wall clock). ``None``: the ones seen.
    idle_s
        A partition that has sent nothing for this long (wall clock) stops holding the watermark.
    max_held
        Items held at most; beyond, the oldest are released whatever the watermark (a bound
        on memory while one partition runs far ahead of another, e.g. catching up a backlog).
    """

    def __init__(
        self, lateness_ms: int, partitions: int | None = None, idle_s: float = 5.0, max_held: int = 200_000
    ) -> None:
        self.lateness_ms = lateness_ms
        self.partitions = partitions
        self.idle_s = idle_s
        self.max_held = max_held
        self.newest: dict[int, int] = {}  # partition -> its newest time
        self.heard: dict[int, float] = {}  # partition -> wall clock of its latest item
        self.first_heard: float | None = None
        self.released_to: int | None = None  # the newest time released
        self.late = 0
        self._heap: list[tuple[int, int, int, T]] = []
        self._late: list[T] = []
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._heap) + len(self._late)

    def __getstate__(self) -> dict[str, object]:
        # Wall-clock readings mean nothing in another process: a restored merger waits anew.
        return {**self.__dict__, "heard": {}, "first_heard": None, "_order": None}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._order = itertools.count(len(self._heap))

    def add(self, partition: int, time_ms: int, item: T, now: float | None = None) -> None:
        self.newest[partition] = max(time_ms, self.newest.get(partition, time_ms))
        if now is not None:
            self.heard[partition] = now
            if self.first_heard is None:
                self.first_heard = now
        if self.released_to is not None and time_ms < self.released_to:
            self.late += 1
            self._late.append(item)
            return
        heapq.heappush(self._heap, (time_ms, partition, next(self._order), item))

    def watermark(self, now: float | None = None) -> int | None:
        """Items at or before this time can be released; None before anything came."""
        if not self.newest:
            return None
        newest = max(self.newest.values())
        floor = newest - self.lateness_ms
        if now is None:
            active = list(self.newest)
            waiting = self.partitions is not None and len(self.newest) < self.partitions
        else:
            active = [p for p in self.newest if now - self.heard.get(p, now) < self.idle_s]
            started = self.first_heard if self.first_heard is not None else now
            waiting = (
                self.partitions is not None
                and len(self.newest) < self.partitions
                and now - started < self.idle_s
            )
        if waiting:
            return floor
        if not active:
            return newest
        return max(floor, min(self.newest[p] for p in active))

    def release(self, flush: bool = False, now: float | None = None) -> list[T]:
        """The late items, then every item at or before the watermark (all with ``flush``)."""
        out, self._late = self._late, []
        mark = self.watermark(now)
        heap = self._heap
        while heap and (flush or len(heap) > self.max_held or (mark is not None and heap[0][0] <= mark)):
            time_ms, _, _, item = heapq.heappop(heap)
            self.released_to = time_ms if self.released_to is None else max(self.released_to, time_ms)
            out.append(item)
        return out
