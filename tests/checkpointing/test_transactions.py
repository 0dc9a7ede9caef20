"""Exactly-once checkpoints without a broker: commit, abort and rewind, a fenced producer."""

from __future__ import annotations

from typing import Any

import pytest

from streaming.checkpointing import Checkpointer, DeliveryTracker
from streaming.checkpointing.transactions import TransactionalCommits


class Producer:
    def __init__(self, commit_fails: Exception | None = None, abort_fails: Exception | None = None) -> None:
        self.calls: list[Any] = []
        self.commit_fails, self.abort_fails = commit_fails, abort_fails

    def begin_transaction(self) -> None:
        self.calls.append("begin")

    def send_offsets_to_transaction(self, offsets: Any, group: Any) -> None:
        self.calls.append(("offsets", offsets))

    def commit_transaction(self) -> None:
        if self.commit_fails:
            raise self.commit_fails
        self.calls.append("commit")

    def abort_transaction(self) -> None:
        if self.abort_fails:
            raise self.abort_fails
        self.calls.append("abort")


def commits(producer: Producer, rewinds: list[BaseException]) -> TransactionalCommits:
    return TransactionalCommits(producer, lambda: "group", dict, rewinds.append)


def test_a_refused_commit_aborts_rewinds_and_defers_nothing() -> None:
    rewinds: list[BaseException] = []
    producer = Producer(commit_fails=RuntimeError("generation moved on"))
    transactional = commits(producer, rewinds)
    checkpoints = Checkpointer(
        DeliveryTracker(lambda timeout: None, 5, str),
        write_state=lambda offsets: None,
        commit=transactional.commit,
        owned=lambda: {"p0"},
        interval_s=0,
    )
    transactional.begin()
    checkpoints.done({"p0": 10})
    checkpoints.checkpoint()
    assert producer.calls == ["begin", ("offsets", {"p0": 10}), "abort"]
    assert [str(r) for r in rewinds] == ["generation moved on"] and transactional.aborted == 1
    assert checkpoints.aborts == 1 and checkpoints.commits == 0 and not checkpoints.due, "nothing deferred"
    assert not transactional.open


def test_a_fenced_producer_cannot_abort_and_the_cause_is_raised() -> None:
    rewinds: list[BaseException] = []
    producer = Producer(commit_fails=RuntimeError("fenced"), abort_fails=RuntimeError("fenced again"))
    transactional = commits(producer, rewinds)
    with pytest.raises(RuntimeError, match=r"^fenced$"):
        transactional.commit({"p0": 3})
    assert rewinds == [] and not transactional.open


def test_outputs_sent_outside_the_loop_commit_on_their_own() -> None:
    producer = Producer()
    transactional = commits(producer, [])
    transactional.commit_outputs()  # nothing open: nothing to do
    transactional.begin()
    transactional.commit_outputs()
    assert producer.calls == ["begin", "commit"] and not transactional.open
