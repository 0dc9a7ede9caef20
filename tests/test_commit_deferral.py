"""A commit that collides with a rebalance is deferred to the next commit, never fatal.

The broker cannot be made to rebalance at an exact instant, so this uses a stand-in for the
consumer's two methods the commit logic calls; the real-broker tests cover the rest.
"""

from __future__ import annotations

from kafka import TopicPartition
from kafka.errors import RebalanceInProgressError
from kafka.structs import OffsetAndMetadata

from streaming.config import Settings
from streaming.registry import ModelRegistry
from streaming.scoring.service import ScoringService

TP0, TP1, TP2 = (TopicPartition("transactions", p) for p in range(3))


class RebalancingConsumer:
    def __init__(self, owned: set[TopicPartition], failures: int) -> None:
        self.owned = owned
        self.failures = failures
        self.committed: list[dict[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return self.owned

    def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        if self.failures:
            self.failures -= 1
            raise RebalanceInProgressError("rebalancing")
        self.committed.append({tp: o.offset for tp, o in offsets.items()})


def offsets(**by_partition: int) -> dict[TopicPartition, OffsetAndMetadata]:
    return {
        TopicPartition("transactions", int(p[1:])): OffsetAndMetadata(o, "", -1)
        for p, o in by_partition.items()
    }


def test_a_deferred_commit_is_merged_into_the_next_one_for_owned_partitions(tmp_path) -> None:  # type: ignore[no-untyped-def]
    service = ScoringService(Settings(home=tmp_path), ModelRegistry(tmp_path / "r", b"k" * 32))
    consumer = RebalancingConsumer({TP0, TP1, TP2}, failures=1)
    service._consumer = consumer
    service._commit(offsets(p0=10, p1=20))
    assert consumer.committed == []
    consumer.owned = {TP0, TP2}  # p1 moved to another member during the rebalance
    service._commit(offsets(p0=15, p2=5))
    assert consumer.committed == [{TP0: 15, TP2: 5}]
    assert service._deferred == {}
    assert service.stats.last_commit_at is not None


def test_revocation_hands_back_deferred_offsets_without_blocking(tmp_path) -> None:  # type: ignore[no-untyped-def]
    service = ScoringService(Settings(home=tmp_path), ModelRegistry(tmp_path / "r", b"k" * 32))
    consumer = RebalancingConsumer({TP0, TP1}, failures=1)
    sent: list[dict[TopicPartition, int]] = []
    consumer.commit_async = lambda offsets, callback: sent.append({tp: o.offset for tp, o in offsets.items()})  # type: ignore[attr-defined]
    service._consumer = consumer
    service._commit(offsets(p0=10, p1=20))  # deferred by a rebalance
    consumer.owned = set()  # the revocation callback may run after the assignment shrank
    service._on_revoked([TP0, TP1])
    assert sent == [{TP0: 10, TP1: 20}]
    assert consumer.committed == [], "no blocking commit on the network thread"
