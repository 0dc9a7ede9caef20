"""Chaos: the scorer SIGKILLed five times at random moments over 200,000 transactions, with
each delivery guarantee."""

from __future__ import annotations

import random
import signal
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from streaming.config import KafkaSettings, Settings
from streaming.control.updates import champion_update
from streaming.events import Score
from streaming.kafka.publishing import publish_model_update
from streaming.kafka.reading import TopicReader
from tests.kafka_helpers import decode_all, produce, records_written, start_scorer_process
from tests.scoring.test_service import ids_of, register, transactions, wait_for_scores
from tests.waiting import eventually

pytestmark = pytest.mark.integration

TRANSACTIONS = 200_000
KILLS = 5


@pytest.fixture
def kafka_settings(kafka_bootstrap: str, request: pytest.FixtureRequest) -> KafkaSettings:
    """Each test here picks its client itself (not every client with every delivery: each
    run is minutes long)."""
    client = getattr(request, "param", "kafka-python")
    return KafkaSettings(
        bootstrap_servers=kafka_bootstrap, client_id=f"test-{uuid.uuid4().hex[:8]}", client=client
    )


@pytest.mark.parametrize(
    ("kafka_settings", "delivery"),
    [
        ("kafka-python", "at_least_once"),
        ("kafka-python", "exactly_once"),
        ("confluent-kafka", "exactly_once"),
    ],
    indirect=["kafka_settings"],
)
def test_five_sigkills_at_random_moments_lose_no_transaction_and_duplicate_at_most_a_batch_each(
    driftloop_settings: Settings, history: pd.DataFrame, tmp_path: Path, delivery: str
) -> None:
    # At-least-once with a checkpoint after every batch: each kill can repeat the batch in hand.
    # Exactly-once with the default checkpoint (a transaction a second): a read_committed
    # reader sees no duplicate at all.
    update: dict[str, object] = (
        {"checkpoint_interval_s": 0.0} if delivery == "at_least_once" else {"delivery": delivery}
    )
    # A killed scorer leaves its member in the group until the session times out; the next
    # one gets the partitions only then. 10 s instead of the default 30 s keeps the five
    # restarts from being most of the run (what is tested is what a kill loses, not how long
    # the group waits).
    update |= {"session_timeout_ms": 10_000, "heartbeat_interval_ms": 1000}
    scoring = driftloop_settings.scoring.model_copy(update=update)
    settings = driftloop_settings.model_copy(update={"scoring": scoring})
    publish_model_update(settings, champion_update(register(settings, history)))
    messages = transactions(TRANSACTIONS, seed=21)
    produce(settings, settings.topics.transactions, messages)
    chance = random.Random(5)
    # Where to kill: after a random number of new scores, spread over the stream.
    kill_after = sorted(chance.sample(range(10_000, TRANSACTIONS - 10_000), KILLS))
    log = tmp_path / "scorer.log"
    for target in kill_after:
        scorer = start_scorer_process(settings, log)
        try:
            deadline = time.monotonic() + 180
            while records_written(settings.kafka, settings.topics.scores) < target:
                assert scorer.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, (
                    f"no progress to {target} scores: " + log.read_text()[-2000:]
                )
                time.sleep(chance.uniform(0.05, 0.3))
        finally:
            scorer.kill()  # SIGKILL: no drain, no commit of the batch in hand
            scorer.wait(timeout=30)
    last = start_scorer_process(settings, log)
    try:
        scores = wait_for_scores(settings, ids_of(messages), timeout_s=300)
    finally:
        last.send_signal(signal.SIGTERM)
        try:
            assert last.wait(timeout=60) == 0
        except subprocess.TimeoutExpired:
            last.kill()
            raise
    with TopicReader(settings.kafka, settings.topics.scores) as reader:  # all of it, read_committed
        scores = decode_all(list(reader.read_to_end(timeout_s=120)), Score)
    counts = Counter(s.transaction_id for s in scores)
    assert set(counts) == ids_of(messages), "every transaction has a score"
    duplicates = sum(c - 1 for c in counts.values())
    bound = KILLS * settings.scoring.max_batch if delivery == "at_least_once" else 0
    assert duplicates <= bound, f"{duplicates} duplicates over {KILLS} kills ({delivery})"
    print(
        f"{delivery}: {TRANSACTIONS:,} transactions, {KILLS} SIGKILLs at {kill_after}: {duplicates} duplicates"
    )


@pytest.mark.parametrize("kafka_settings", ["kafka-python", "confluent-kafka"], indirect=True)
def test_exactly_once_through_a_scorer_joining_and_one_leaving_mid_stream(
    driftloop_settings: Settings, history: pd.DataFrame, tmp_path: Path
) -> None:
    # Each rebalance revokes partitions from a scorer with a transaction open: it commits the
    # transaction, offsets included, before they go; the new owner starts where it ended.
    base = driftloop_settings
    publish_model_update(base, champion_update(register(base, history)))

    def scorer(name: str) -> subprocess.Popen[bytes]:
        scoring = base.scoring.model_copy(update={"delivery": "exactly_once", "transactional_id": name})
        return start_scorer_process(base.model_copy(update={"scoring": scoring}), tmp_path / f"{name}.log")

    messages = transactions(30_000, seed=8)
    thirds = [messages[i : i + 10_000] for i in range(0, 30_000, 10_000)]
    first = scorer("first")
    second = None
    try:
        produce(base, base.topics.transactions, thirds[0])
        wait_for_scores(base, ids_of(thirds[0][:5000]), timeout_s=120)
        second = scorer("second")  # joins: the first gives up some partitions mid-stream
        produce(base, base.topics.transactions, thirds[1])
        wait_for_scores(base, ids_of(thirds[1][:5000]), timeout_s=120)
        first.send_signal(signal.SIGTERM)  # leaves: the second takes every partition
        produce(base, base.topics.transactions, thirds[2])
        assert first.wait(timeout=60) == 0, (tmp_path / "first.log").read_text()[-3000:]
        wait_for_scores(base, ids_of(messages), timeout_s=180)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)
    with TopicReader(base.kafka, base.topics.scores) as reader:
        scores = decode_all(list(reader.read_to_end(timeout_s=120)), Score)
    counts = Counter(s.transaction_id for s in scores)
    assert set(counts) == ids_of(messages)
    assert sum(c - 1 for c in counts.values()) == 0, "a read_committed reader sees each score once"
    first_log = (tmp_path / "first.log").read_text()
    # The join revoked some of the first scorer's partitions mid-stream (its leave comes after
    # its final commit, and librdkafka may not call the listener for it).
    assert "partitions revoked: finishing the batch in hand" in first_log, "a rebalance mid-stream"
    assert "transaction aborted" not in first_log + (tmp_path / "second.log").read_text()


@pytest.mark.parametrize("kafka_settings", ["kafka-python", "confluent-kafka"], indirect=True)
def test_a_second_scorer_with_the_same_transactional_id_fences_the_first_which_says_why(
    driftloop_settings: Settings, history: pd.DataFrame, tmp_path: Path
) -> None:
    base = driftloop_settings
    publish_model_update(base, champion_update(register(base, history)))
    scoring = base.scoring.model_copy(update={"delivery": "exactly_once", "transactional_id": "the-same"})
    settings = base.model_copy(update={"scoring": scoring})
    messages = transactions(4000, seed=9)
    produce(settings, settings.topics.transactions, messages[:2000])
    first = start_scorer_process(settings, tmp_path / "first.log")
    second = None
    try:
        wait_for_scores(settings, ids_of(messages[:2000]), timeout_s=120)
        second = start_scorer_process(settings, tmp_path / "second.log")
        eventually(  # its producer initialized (fencing the first's), it owns partitions
            lambda: "partitions assigned" in (tmp_path / "second.log").read_text(),
            "the second scorer in the group",
            timeout_s=120,
        )
        produce(settings, settings.topics.transactions, messages[2000:])
        assert first.wait(timeout=120) == 1, (tmp_path / "first.log").read_text()[-3000:]
        last = (tmp_path / "first.log").read_text().strip().splitlines()[-1]
        assert "another scorer took over transactional id 'the-same'" in last, last
        scores = wait_for_scores(settings, ids_of(messages), timeout_s=120)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)
    counts = Counter(s.transaction_id for s in scores)
    assert set(counts) == ids_of(messages) and max(counts.values()) == 1
