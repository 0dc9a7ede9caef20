"""The checkpoint, driven without Kafka: the order flush → state → commit, deferral across
rebalances, revocation and loss, delivery failures, and the micro-batching rule."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import pytest

from streaming.checkpointing import BatchCollector, Checkpointer, DeliveryTracker, Offsets, PendingBatch
from streaming.errors import DeliveryError


@dataclass
class Record:
    offset: int
    timestamp: int  # ms


@dataclass
class Consumer:
    """What a checkpointer and a collector need from a consumer, recorded in order."""

    owned: set[Hashable] = field(default_factory=lambda: {"p0", "p1", "p2"})
    refusals: int = 0  # the next commits a rebalance refuses
    log: list[tuple[str, Any]] = field(default_factory=list)
    queued: list[dict[Hashable, list[Record]]] = field(default_factory=list)

    def flush(self, timeout_s: float) -> None:
        self.log.append(("flush", timeout_s))

    def write_state(self, offsets: Offsets) -> None:
        self.log.append(("state", dict(offsets)))

    def commit(self, offsets: Offsets) -> bool:
        if self.refusals:
            self.refusals -= 1
            self.log.append(("refused", dict(offsets)))
            return False
        self.log.append(("commit", dict(offsets)))
        return True

    def commit_async(self, offsets: Offsets) -> None:
        self.log.append(("commit_async", dict(offsets)))

    def poll(self, *, timeout_ms: int, max_records: int) -> dict[Hashable, list[Record]]:
        if not self.queued:
            return {}
        polled = self.queued.pop(0)
        return {p: records[:max_records] for p, records in polled.items()}


def checkpointer(
    consumer: Consumer, interval_s: float = 0.0, clock: Callable[[], float] = time.monotonic
) -> Checkpointer:
    delivery = DeliveryTracker(consumer.flush, 7.0, lambda problem: f"not delivered: {problem}")
    return Checkpointer(
        delivery,
        write_state=consumer.write_state,
        commit=consumer.commit,
        owned=lambda: consumer.owned,
        interval_s=interval_s,
        clock=clock,
    )


def test_a_checkpoint_flushes_the_outputs_then_writes_the_state_then_commits() -> None:
    consumer = Consumer()
    checkpoints = checkpointer(consumer)
    checkpoints.delivery.sent(2)
    checkpoints.done({"p0": 10})
    checkpoints.checkpoint()
    assert consumer.log == [("flush", 7.0), ("state", {"p0": 10}), ("commit", {"p0": 10})]
    assert checkpoints.commits == 1 and checkpoints.last_commit_at is not None


def test_the_highest_offset_per_partition_is_committed() -> None:
    consumer = Consumer()
    checkpoints = checkpointer(consumer)
    checkpoints.done({"p0": 10, "p1": 4})
    checkpoints.done({"p0": 7, "p2": 1})
    checkpoints.checkpoint()
    assert consumer.log[-1] == ("commit", {"p0": 10, "p1": 4, "p2": 1})


def test_a_deferred_commit_is_merged_into_the_next_one_for_the_partitions_still_owned() -> None:
    consumer = Consumer(refusals=1)
    checkpoints = checkpointer(consumer)
    checkpoints.done({"p0": 10, "p1": 20})
    checkpoints.checkpoint()
    assert consumer.log[-1] == ("refused", {"p0": 10, "p1": 20}) and checkpoints.deferrals == 1
    consumer.owned = {"p0", "p2"}  # p1 moved to another member during the rebalance
    checkpoints.done({"p0": 15, "p2": 5})
    checkpoints.checkpoint()
    assert consumer.log[-1] == ("commit", {"p0": 15, "p2": 5})
    checkpoints.checkpoint()  # nothing left over
    assert [entry for entry in consumer.log if entry[0] == "commit"] == [("commit", {"p0": 15, "p2": 5})]


def test_revocation_hands_back_deferred_offsets_asynchronously_even_after_the_assignment_shrank() -> None:
    consumer = Consumer(refusals=1)
    checkpoints = checkpointer(consumer)
    checkpoints.done({"p0": 10, "p1": 20})
    checkpoints.checkpoint()  # refused by the rebalance
    consumer.owned = set()  # the revocation callback may run after the assignment shrank
    checkpoints.on_revoked(["p0", "p1"], consumer.commit_async)
    assert consumer.log[-2:] == [("state", {"p0": 10, "p1": 20}), ("commit_async", {"p0": 10, "p1": 20})]
    assert not [entry for entry in consumer.log if entry[0] == "commit"], "no blocking commit"


def test_lost_partitions_are_forgotten_not_committed() -> None:
    consumer = Consumer(refusals=1)
    checkpoints = checkpointer(consumer)
    checkpoints.done({"p0": 10})
    checkpoints.checkpoint()  # refused: deferred
    checkpoints.done({"p1": 3})
    checkpoints.on_lost()
    assert not checkpoints.due
    checkpoints.checkpoint()
    assert [e for e in consumer.log if e[0] in ("commit", "state")] == [("state", {"p0": 10})]


def test_a_refused_output_stops_the_checkpoint_before_the_state_and_the_commit() -> None:
    consumer = Consumer()
    checkpoints = checkpointer(consumer)
    checkpoints.delivery.sent(3)
    checkpoints.delivery.errback(ValueError("MessageSizeTooLargeError"))
    checkpoints.done({"p0": 10})
    with pytest.raises(DeliveryError, match="1 refused, the first: ValueError"):
        checkpoints.checkpoint()
    assert consumer.log == [("flush", 7.0)]
    assert checkpoints.delivery.failing
    checkpoints.on_revoked(["p0"], consumer.commit_async)  # after a failure: nothing handed back
    assert consumer.log == [("flush", 7.0)]


def test_a_flush_that_times_out_is_a_delivery_error_naming_it() -> None:
    def timing_out(timeout_s: float) -> None:
        raise TimeoutError(f"not acknowledged in {timeout_s}s")

    delivery = DeliveryTracker(timing_out, 3.0, lambda problem: f"lost: {problem}")
    delivery.sent(1)
    with pytest.raises(DeliveryError, match=r"lost: flush: TimeoutError\('not acknowledged in 3.0s'\)"):
        delivery.flush()
    assert delivery.failing and delivery.last_flush_at is None


def test_nothing_is_flushed_when_nothing_was_sent() -> None:
    consumer = Consumer()
    checkpointer(consumer).checkpoint()
    assert consumer.log == []


def test_a_checkpoint_is_due_once_its_interval_has_passed_and_records_are_done() -> None:
    consumer = Consumer()
    now = [1000.0]
    checkpoints = checkpointer(consumer, interval_s=5.0, clock=lambda: now[0])
    assert not checkpoints.due  # nothing done
    checkpoints.done({"p0": 1})
    assert checkpoints.due  # the first checkpoint is due at once
    checkpoints.checkpoint()
    checkpoints.done({"p0": 2})
    now[0] += 4.9
    assert not checkpoints.due
    now[0] += 0.1
    assert checkpoints.due


def now_ms() -> int:
    return int(time.time() * 1000)


def test_a_batch_is_taken_at_max_batch_records() -> None:
    consumer = Consumer(
        queued=[{"p0": [Record(i, now_ms()) for i in range(5)]}, {"p1": [Record(0, now_ms())] * 5}]
    )
    pending = PendingBatch()
    BatchCollector(max_batch=8, max_wait_ms=10_000, idle_poll_ms=10).collect(pending, consumer.poll)
    records, _, next_offsets = pending.take()
    assert len(records) == 8 and next_offsets == {"p0": 5, "p1": 1}


def test_records_that_already_waited_max_wait_are_taken_without_a_further_wait() -> None:
    old = now_ms() - 5_000  # queued while the previous batch was scored
    consumer = Consumer(queued=[{"p0": [Record(0, old), Record(1, old)]}])
    pending = PendingBatch()
    started = time.monotonic()
    BatchCollector(max_batch=1000, max_wait_ms=2_000, idle_poll_ms=10).collect(pending, consumer.poll)
    assert len(pending) == 2
    assert time.monotonic() - started < 0.5, "the batch was due on arrival"


def test_an_idle_input_with_outputs_in_flight_flushes_them_before_returning() -> None:
    in_flight = [3]
    flushed: list[int] = []

    def flush() -> None:
        flushed.append(in_flight[0])
        in_flight[0] = 0

    pending = PendingBatch()
    BatchCollector(max_batch=10, max_wait_ms=100, idle_poll_ms=10).collect(
        pending, Consumer().poll, outputs_in_flight=lambda: in_flight[0] > 0, flush_outputs=flush
    )
    assert flushed == [3] and len(pending) == 0


def test_a_stop_request_ends_the_collection() -> None:
    consumer = Consumer(queued=[{"p0": [Record(0, now_ms())]}] * 3)
    pending = PendingBatch()
    BatchCollector(max_batch=10, max_wait_ms=60_000, idle_poll_ms=10).collect(
        pending, consumer.poll, stopped=lambda: len(pending) >= 1
    )
    assert len(pending) == 1


def test_a_deferred_commit_is_due_again_without_new_records() -> None:
    """The stream went quiet right after a rebalance refused a commit: it is retried anyway."""
    now = [0.0]
    consumer = Consumer(refusals=1)
    checkpoints = checkpointer(consumer, interval_s=1.0, clock=lambda: now[0])
    checkpoints.done({"p0": 10})
    now[0] = 1.0
    assert checkpoints.due
    checkpoints.checkpoint()
    assert consumer.log[-1] == ("refused", {"p0": 10})
    now[0] = 1.5
    assert not checkpoints.due, "at most every interval_s"
    now[0] = 2.0
    assert checkpoints.due
    checkpoints.checkpoint()
    assert consumer.log[-1] == ("commit", {"p0": 10})
    assert not checkpoints.due


def test_an_open_batch_is_filled_by_fill_the_first_records_come_from_poll() -> None:
    """librdkafka's ``poll`` hands records over as they arrive; once a batch is open its
    ``fill`` waits for the rest in one call."""
    calls: list[str] = []
    consumer = Consumer(queued=[{"p0": [Record(i, now_ms()) for i in range(3)]}])

    def fill(*, timeout_ms: int, max_records: int) -> dict[str, list[Record]]:
        calls.append(f"fill {max_records}")
        return {"p0": [Record(3 + i, now_ms()) for i in range(max_records)]}

    def poll(*, timeout_ms: int, max_records: int) -> Any:
        calls.append("poll")
        return consumer.poll(timeout_ms=timeout_ms, max_records=max_records)

    pending = PendingBatch()
    BatchCollector(max_batch=10, max_wait_ms=1_000, idle_poll_ms=10).collect(pending, poll, fill=fill)
    assert calls == ["poll", "fill 7"] and len(pending) == 10
