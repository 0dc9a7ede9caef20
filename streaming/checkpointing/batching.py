"""Micro-batches: records taken by size, or once the first is ``max_wait_ms`` old.

The wait is counted from the first record's Kafka timestamp, not from when the loop got to
it: records that queued while the previous batch was scored have waited already, so they are
taken with whatever else is waiting, without a further wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Protocol


class Poll(Protocol):
    """A consumer's ``poll``: records per partition (in offset order); each record has
    ``offset`` and ``timestamp`` (ms)."""

    def __call__(self, *, timeout_ms: int, max_records: int) -> Mapping[Hashable, Sequence[Any]]: ...


def batch_deadline(polled: Mapping[Hashable, Sequence[Any]], received: float, max_wait_ms: int) -> float:
    """When a micro-batch whose first poll is ``polled`` (received at wall time ``received``)
    stops waiting for more records: ``max_wait_ms`` after its oldest record was produced,
    by the records' Kafka timestamps, and never later than ``max_wait_ms`` from now.

    Returned on the ``time.monotonic()`` clock. A producer clock behind ours only brings
    the deadline closer (smaller batches); one ahead of ours is capped.
    """
    produced = min(records[0].timestamp for records in polled.values() if records) / 1000
    waited = min(max(0.0, received - produced), max_wait_ms / 1000)
    return time.monotonic() + max_wait_ms / 1000 - waited


class PendingBatch:
    """The micro-batch in hand: records, when each arrived, and the offsets they complete."""

    def __init__(self) -> None:
        self.records: list[Any] = []
        self.received_at: list[float] = []
        self.next_offsets: dict[Hashable, int] = {}

    def add(self, polled: Mapping[Hashable, Sequence[Any]], at: float) -> None:
        """Add one poll's records (per partition, in offset order) received at ``at``."""
        for partition, records in polled.items():
            if not records:
                continue
            self.records.extend(records)
            self.received_at.extend([at] * len(records))
            end = records[-1].offset + 1
            if end > self.next_offsets.get(partition, -1):
                self.next_offsets[partition] = end

    def __len__(self) -> int:
        return len(self.records)

    def take(self) -> tuple[list[Any], list[float], dict[Hashable, int]]:
        """The records, their arrival times, and the next offset per partition once they are done."""
        taken = self.records, self.received_at, self.next_offsets
        self.records, self.received_at, self.next_offsets = [], [], {}
        return taken

    def drop(self) -> None:
        """Forget the batch (its partitions were lost: the new owner reads it again)."""
        self.take()


class BatchCollector:
    """Fills a :class:`PendingBatch` from ``poll`` by the micro-batching rule.

    Parameters
    ----------
    max_batch
        Take at most this many records.
    max_wait_ms
        Once the first record of a batch is this old (by its Kafka timestamp), take what is
        waiting.
    idle_poll_ms
        How long a poll waits while no batch is open. A longer idle poll costs no latency (it
        returns as soon as records come) and gives a group rejoin time to complete: short
        idle polls kept a busy 2-core box's scorer rejoining until the coordinator evicted it.
    """

    def __init__(self, max_batch: int, max_wait_ms: int, idle_poll_ms: int) -> None:
        self.max_batch = max_batch
        self.max_wait_ms = max_wait_ms
        self.idle_poll_ms = idle_poll_ms
        self.first_record_at: float | None = None  # time.monotonic() when the first record came

    def collect(
        self,
        pending: PendingBatch,
        poll: Poll,
        *,
        limit: int | None = None,
        stopped: Callable[[], bool] = lambda: False,
        outputs_in_flight: Callable[[], bool] = lambda: False,
        flush_outputs: Callable[[], None] = lambda: None,
        fill: Poll | None = None,
    ) -> None:
        """Poll until the batch is full (``limit`` or ``max_batch`` records), or due and nothing
        more is waiting, or the input is idle.

        ``poll`` returns as soon as records come. ``fill``, when the client has one, waits up
        to its timeout for as many records as asked: once a batch is open, it fills it in one
        call where ``poll`` would return a few records at a time (librdkafka hands them over
        as they arrive; each small poll costs the loop more than the records it brings).

        While idle with outputs in flight, polls do not wait: if nothing is waiting right now
        the outputs are flushed first (so an idle input never leaves outputs unacknowledged),
        then the loop returns to give model updates and stop requests a turn.
        """
        size = min(self.max_batch, limit) if limit is not None else self.max_batch
        deadline: float | None = None
        while len(pending) < size and not stopped():
            if deadline is None:
                wait_ms = 0 if outputs_in_flight() else self.idle_poll_ms
            else:
                wait_ms = max(0, int((deadline - time.monotonic()) * 1000))
            take = poll if deadline is None or fill is None else fill
            polled = take(timeout_ms=wait_ms, max_records=size - len(pending))
            if not polled:
                if deadline is not None:
                    if wait_ms == 0:
                        return  # the batch is due and nothing more is waiting
                    continue
                if not outputs_in_flight():
                    return  # idle
                flush_outputs()
                continue
            received = time.time()
            if self.first_record_at is None:
                self.first_record_at = time.monotonic()
            pending.add(polled, received)
            if deadline is None:
                deadline = batch_deadline(polled, received, self.max_wait_ms)
