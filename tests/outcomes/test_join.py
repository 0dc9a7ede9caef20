"""The join rule on a real store: labels days late meet their predictions, or are refused with a reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from streaming.events import Label, encode_event
from streaming.outcomes.join import Arrival, OutcomeJoin, pending_scores
from streaming.outcomes.store import PartitionStore
from tests.outcomes.factories import score

DAY = 86_400.0
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def arrival(txn: str, at: datetime, label: int = 1, offset: int = 0) -> Arrival:
    event = Label(transaction_id=txn, label=label, label_time=at)
    return Arrival(label=event, offset=offset, key=txn.encode(), value=encode_event(event))


@pytest.fixture
def join(tmp_path: Path) -> OutcomeJoin:
    return OutcomeJoin(PartitionStore(tmp_path / "p0"), ttl_s=120 * DAY, label_wait_s=3600, max_waiting=3)


def test_a_label_days_late_meets_every_score_of_its_transaction(join: OutcomeJoin) -> None:
    join.score(score("t1", T0))
    join.score(score("t1", T0, role="challenger", version="v2", value=0.3))
    joined = join.label(arrival("t1", T0 + timedelta(days=9)))
    assert sorted((o.role, o.model_version, o.decision) for o in joined.outcomes) == [
        ("challenger", "v2", False),
        ("champion", "v1", True),
    ]
    first = joined.outcomes[0]
    assert first.label == 1 and first.delay_s == 9 * DAY and first.account_id == "acct-t1"
    assert list(pending_scores(join.store)) == [] and join.counters.pending == 0


def test_a_second_label_is_a_duplicate_and_a_score_after_the_label_joins_it_at_once(
    join: OutcomeJoin,
) -> None:
    join.score(score("t1", T0))
    assert len(join.label(arrival("t1", T0 + timedelta(days=2))).outcomes) == 1
    again = join.label(arrival("t1", T0 + timedelta(days=3), offset=1))
    assert [(r.reason, r.arrival.offset) for r in again.refused] == [("duplicate", 1)]
    shadow = join.score(score("t1", T0, role="challenger", version="v2"))
    assert [(o.role, o.label) for o in shadow.outcomes] == [("challenger", 1)]
    replayed = join.score(score("t1", T0))  # the champion's score again (a scorer's restart)
    assert replayed.outcomes == [] and replayed.duplicate_scores == 1


def test_a_label_after_the_ttl_is_late_whether_or_not_the_prediction_has_expired_yet(
    join: OutcomeJoin,
) -> None:
    join.score(score("t1", T0))
    join.score(score("t2", T0))
    late = join.label(arrival("t1", T0 + timedelta(days=121)))
    assert late.outcomes == [] and [r.reason for r in late.refused] == ["late"]
    assert "121.0 days after the prediction" in late.refused[0].detail
    join.score(score("t3", T0 + timedelta(days=130)))  # event time moves on: t2 expires
    expired = join.expire()
    assert expired.expired == 1
    after = join.label(arrival("t2", T0 + timedelta(days=131)))
    assert [r.reason for r in after.refused] == ["late"] and "expired" in after.refused[0].detail


def test_a_label_before_its_score_waits_and_joins_when_the_score_comes(join: OutcomeJoin) -> None:
    early = join.label(arrival("t1", T0))
    assert early.outcomes == [] and early.refused == [] and join.counters.waiting == 1
    joined = join.score(score("t1", T0 - timedelta(seconds=1)))
    assert [o.transaction_id for o in joined.outcomes] == ["t1"] and join.counters.waiting == 0


def test_a_waiting_label_is_unknown_once_the_scores_pass_its_time_and_too_many_evict_the_oldest(
    join: OutcomeJoin,
) -> None:
    join.label(arrival("ghost", T0, offset=7))
    join.score(score("other", T0 + timedelta(minutes=59)))
    assert join.expire().refused == []  # the scores are not an hour past it yet
    join.score(score("other2", T0 + timedelta(minutes=61)))
    refused = join.expire().refused
    assert [(r.reason, r.arrival.offset) for r in refused] == [("unknown_transaction", 7)]
    for i in range(3):
        join.label(arrival(f"w{i}", T0 + timedelta(hours=2, seconds=i), offset=10 + i))
    overflow = join.label(arrival("w3", T0 + timedelta(hours=2, seconds=3), offset=13))
    assert [(r.reason, r.arrival.offset) for r in overflow.refused] == [("unknown_transaction", 10)]
    assert join.counters.waiting == 3


def test_the_state_survives_a_commit_and_a_reopen(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0")
    join = OutcomeJoin(store, ttl_s=120 * DAY, label_wait_s=3600, max_waiting=10)
    join.score(score("t1", T0))
    join.sync()
    store.commit({"scores": 1})
    store.close()
    reopened = OutcomeJoin(
        PartitionStore(tmp_path / "p0"), ttl_s=120 * DAY, label_wait_s=3600, max_waiting=10
    )
    assert reopened.counters.pending == 1 and reopened.oldest_pending() == T0
    assert len(reopened.label(arrival("t1", T0 + timedelta(days=30))).outcomes) == 1


def test_markers_end_after_the_ttl(join: OutcomeJoin) -> None:
    join.score(score("t1", T0))
    join.label(arrival("t1", T0 + timedelta(days=1)))
    assert join.counters.markers == 1
    join.score(score("t9", T0 + timedelta(days=121)))
    join.expire()
    assert join.counters.markers == 0
