"""The checkpoint: outputs flushed → state written → offsets committed, in that order.

So a crash repeats at most the records since the last checkpoint (at-least-once), and
restored state matches the committed offsets. Offsets are ``{partition: next offset}``; the
partition keys are whatever the adapter uses (kafka-python's ``TopicPartition``).

>>> commits = []
>>> checkpoints = Checkpointer(
...     DeliveryTracker(lambda timeout: None, 5, str),
...     write_state=lambda offsets: None,
...     commit=lambda offsets: commits.append(dict(offsets)) or True,
...     owned=lambda: {"p0", "p1"},
...     interval_s=0,
... )
>>> checkpoints.done({"p0": 10}); checkpoints.done({"p0": 7, "p1": 3})
>>> checkpoints.checkpoint(); commits
[{'p0': 10, 'p1': 3}]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Hashable, Mapping

from streaming.checkpointing.delivery import DeliveryTracker

#: The next offset to read, per partition.
Offsets = dict[Hashable, int]


def highest(a: Mapping[Hashable, int], b: Mapping[Hashable, int]) -> Offsets:
    """Per partition, the later of two offsets to commit.

    >>> highest({"p0": 5, "p1": 9}, {"p0": 7})
    {'p0': 7, 'p1': 9}
    """
    merged = dict(a)
    for partition, offset in b.items():
        if offset > merged.get(partition, -1):
            merged[partition] = offset
    return merged


class Checkpointer:
    """Offsets of records done but not yet committed, and the checkpoint that commits them.

    Parameters
    ----------
    delivery
        The outputs' delivery (flushed first).
    write_state
        Writes the state that covers ``offsets`` (may raise, then nothing is committed).
    commit
        Commits ``offsets``; returns False when a rebalance refused it (the offsets are
        deferred to the next commit: the outputs are already flushed, and a partition that
        moved meanwhile is re-read by its new owner), None when it aborted a transaction and
        rewound the consumer (exactly-once: the records are read again, nothing is deferred).
    owned
        The partitions this consumer owns now; offsets of others are never committed.
    interval_s
        A checkpoint is :attr:`due` at most this often (0: after every batch).
    clock
        Seconds on a monotonic clock (``time.monotonic``; a test passes its own).
    """

    def __init__(
        self,
        delivery: DeliveryTracker,
        *,
        write_state: Callable[[Offsets], None],
        commit: Callable[[Offsets], bool | None],
        owned: Callable[[], Collection[Hashable]],
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.delivery = delivery
        self._clock = clock
        self._write_state = write_state
        self._commit = commit
        self._owned = owned
        self.interval_s = interval_s
        self._unchecked: Offsets = {}  # done, not yet committed
        self._deferred: Offsets = {}  # a commit a rebalance refused
        self._last = 0.0
        self.commits = 0
        self.deferrals = 0
        self.aborts = 0
        self.last_commit_at: float | None = None  # clock() after the latest commit

    def done(self, offsets: Mapping[Hashable, int]) -> None:
        """The records up to ``offsets`` are processed and their outputs sent."""
        self._unchecked = highest(self._unchecked, offsets)

    @property
    def due(self) -> bool:
        """Records are done (or a commit a rebalance refused waits: without new records it
        would wait for good) and ``interval_s`` has passed since the previous checkpoint."""
        return bool(self._unchecked or self._deferred) and self._clock() - self._last >= self.interval_s

    def checkpoint(self) -> None:
        """Flush, write the state, commit everything done (plus what was deferred)."""
        self.delivery.flush()
        offsets = self._take()
        self._last = self._clock()
        if not offsets:
            return
        self._write_state(offsets)
        committed = self._commit(offsets)
        if committed:
            self.commits += 1
            self.last_commit_at = self._clock()
        elif committed is None:
            self.aborts += 1  # a transaction aborted: the consumer was rewound, the records come again
        else:
            self.deferrals += 1
            self._deferred = offsets

    def on_revoked(self, revoked: Collection[Hashable], commit_async: Callable[[Offsets], object]) -> None:
        """Before ``revoked`` partitions go: flush, write the state, and hand the offsets back
        with ``commit_async`` (a rebalance listener may not block on a commit). Nothing is
        committed after a delivery failure: the next owner re-reads those records."""
        if self.delivery.failing:
            return
        offsets = self._take(also=revoked)
        self.delivery.flush()
        if offsets:
            self._write_state(offsets)
            commit_async(offsets)

    def on_lost(self) -> None:
        """The partitions were taken from us (evicted): our commits would fail; forget them."""
        self._unchecked, self._deferred = {}, {}

    def _take(self, also: Collection[Hashable] = ()) -> Offsets:
        merged = highest(self._deferred, self._unchecked)
        self._unchecked, self._deferred = {}, {}
        owned = set(self._owned()) | set(also)
        return {partition: offset for partition, offset in merged.items() if partition in owned}
