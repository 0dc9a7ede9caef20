"""`driftloop join` against a real broker: labels days late, kill -9, a partition moved to an empty disk."""

from __future__ import annotations

import random
import signal
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from streaming.config import Settings
from streaming.events import DeadLetter, Label, Outcome, Score, encode_event
from streaming.outcomes.service import JoinService
from tests.kafka_helpers import committed_total, decode_all, produce, read_topic, running, wait_for_group
from tests.outcomes.factories import score
from tests.processes import Command
from tests.waiting import eventually

pytestmark = pytest.mark.integration

T0 = datetime(2026, 10, 1, tzinfo=UTC)


def scores(n: int, days: float = 20.0, seed: int = 1) -> list[Score]:
    """``n`` champion scores spread evenly over ``days`` of event time."""
    rng = random.Random(seed)
    step = timedelta(days=days) / n
    out = []
    for i in range(n):
        out.append(score(f"t{seed}-{i}", T0 + i * step, value=rng.random(), account=f"a{i % 97}"))
    return out


def labels_for(predictions: list[Score], seed: int = 2) -> list[Label]:
    """One label per prediction, 1 to 14 days after it (event time), in label-time order."""
    rng = random.Random(seed)
    labels = [
        Label(
            transaction_id=s.transaction_id,
            label=int(rng.random() < 0.1),
            label_time=s.event_time + timedelta(days=rng.uniform(1, 14)),
        )
        for s in predictions
    ]
    return sorted(labels, key=lambda label: label.label_time)


def keyed(events: list) -> list[tuple[bytes, bytes]]:
    return [(e.transaction_id.encode(), encode_event(e)) for e in events]


def outcomes(settings: Settings, at_least: int, timeout_s: float = 120) -> list[Outcome]:
    records = read_topic(
        settings,
        settings.topics.outcomes,
        lambda rs: len({r.value for r in rs}) >= at_least,
        timeout_s=timeout_s,
    )
    return decode_all(records, Outcome)


def test_labels_days_late_join_every_prediction_once_and_bad_labels_are_dead_lettered(
    driftloop_settings: Settings,
) -> None:
    settings = driftloop_settings
    predictions = scores(4000)
    labels = labels_for(predictions)
    produce(settings, settings.topics.scores, keyed(predictions))
    stray = Label(transaction_id="never-scored", label=1, label_time=T0 + timedelta(days=1))
    produce(
        settings,
        settings.topics.labels,
        keyed(labels)
        + keyed([labels[0]])  # the same chargeback twice
        + [(b"t1-5", b"not json"), (b"wrong-key", encode_event(labels[1]))]
        + keyed([stray]),
    )
    service = JoinService(settings)
    with running(service):
        joined = outcomes(settings, 4000)
        letters = decode_all(
            read_topic(settings, settings.topics.labels_dlq, lambda rs: len(rs) >= 4, timeout_s=60),
            DeadLetter,
        )
    assert Counter(o.transaction_id for o in joined).most_common(1)[0][1] == 1, "each exactly once"
    assert {o.transaction_id for o in joined} == {s.transaction_id for s in predictions}
    by_id = {label.transaction_id: label for label in labels}
    for outcome in joined:
        label = by_id[outcome.transaction_id]
        assert outcome.label == label.label and outcome.label_time == label.label_time
        assert 86_400 <= outcome.delay_s <= 14 * 86_400
    reasons = Counter(letter.reason for letter in letters)
    assert reasons == {
        "duplicate": 1,
        "invalid_json": 1,
        "not_keyed_by_transaction_id": 1,
        "unknown_transaction": 1,
    }, reasons
    assert service.stats.refused == reasons


def test_kill_9_then_a_restart_loses_no_outcome(driftloop_settings: Settings, tmp_path: Path) -> None:
    settings = driftloop_settings
    predictions = scores(20_000, seed=3)
    labels = labels_for(predictions, seed=4)
    produce(settings, settings.topics.scores, keyed(predictions))
    produce(settings, settings.topics.labels, keyed(labels[:12_000]))
    first = Command(settings, tmp_path / "first.log", "join")
    try:
        # Mid-run: some outcomes out and some checkpoints committed, more to come.
        first.wait_for(
            lambda: committed_total(settings, settings.join.group_id, settings.topics.labels) >= 3000,
            "the first join committing 3,000 labels",
        )
    finally:
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=30)
    produce(settings, settings.topics.labels, keyed(labels[12_000:]))
    second = Command(settings, tmp_path / "second.log", "join")
    try:
        joined = outcomes(settings, 20_000, timeout_s=240)
    finally:
        code, _ = second.stop()
    assert code == 0, second.tail()
    unique = {(o.transaction_id, o.role, o.model_version) for o in joined}
    assert {t for t, _, _ in unique} == {s.transaction_id for s in predictions}, "no outcome lost"
    duplicates = len(joined) - len(unique)
    assert duplicates <= settings.join.max_batch * 8, (
        f"{duplicates} duplicates: more than a checkpoint's worth"
    )
    assert "Traceback" not in second.tail()


def test_a_partition_moved_to_a_process_with_an_empty_disk_continues_from_the_changelog(
    driftloop_settings: Settings, tmp_path: Path
) -> None:
    settings = driftloop_settings
    predictions = scores(6000, seed=5)
    labels = labels_for(predictions, seed=6)
    produce(settings, settings.topics.scores, keyed(predictions))
    half = len(labels) // 2
    produce(settings, settings.topics.labels, keyed(labels[:half]))

    def on_disk(name: str) -> Settings:
        return settings.model_copy(
            update={"join": settings.join.model_copy(update={"state_dir": tmp_path / name})}
        )

    first = JoinService(on_disk("first-disk"))
    with running(first):
        outcomes(settings, half)
        second = JoinService(on_disk("second-disk"))  # nothing on its disk
        with running(second):
            wait_for_group(settings, settings.join.group_id, settings.topics.scores, members=2)
            produce(settings, settings.topics.labels, keyed(labels[half:]))
            joined = outcomes(settings, len(predictions))
    assert second.stats.restored_records > 0, "the second process rebuilt its stores from the changelog"
    assert {o.transaction_id for o in joined} == {s.transaction_id for s in predictions}, "none lost"
    unique = {(o.transaction_id, o.role, o.model_version) for o in joined}
    assert len(joined) - len(unique) <= settings.join.max_batch * 8


def test_labels_read_long_before_their_scores_wait_in_kafka_instead_of_being_refused(
    driftloop_settings: Settings,
) -> None:
    join = driftloop_settings.join.model_copy(update={"max_waiting_labels": 40})
    settings = driftloop_settings.model_copy(update={"join": join})
    predictions = scores(1000, seed=7)
    produce(settings, settings.topics.labels, keyed(labels_for(predictions, seed=8)))
    service = JoinService(settings)
    with running(service):
        # With no scores yet, each partition's waiting room fills and its labels pause.
        eventually(
            lambda: committed_total(settings, join.group_id, settings.topics.labels) >= 4 * 40,
            "the waiting rooms filling",
        )
        produce(settings, settings.topics.scores, keyed(predictions))
        joined = outcomes(settings, len(predictions))
    assert {o.transaction_id for o in joined} == {s.transaction_id for s in predictions}
    assert service.stats.refused == {}, "nothing refused for waiting"
    assert committed_total(settings, join.group_id, settings.topics.labels) == len(predictions)


def test_labels_not_co_partitioned_with_the_scores_stop_the_join_with_a_clear_error(
    driftloop_settings: Settings, topic_factory
) -> None:
    labels = topic_factory("labels-3", partitions=3)
    settings = driftloop_settings.model_copy(
        update={"topics": driftloop_settings.topics.model_copy(update={"labels": labels})}
    )
    with pytest.raises(Exception, match=r"has 3 partitions.*the join needs co-partitioned inputs"):
        JoinService(settings).run(install_signal_handlers=False)


def test_outcome_events_round_trip() -> None:
    score = scores(1)[0]
    label = Label(
        transaction_id=score.transaction_id, label=1, label_time=score.event_time + timedelta(days=3)
    )
    outcome = Outcome.of(score, label)
    assert msgspec.json.decode(encode_event(outcome), type=Outcome) == outcome
    assert outcome.delay_s == 3 * 86_400
