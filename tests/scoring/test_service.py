"""`driftloop score` against a real broker: delivery, dead letters, safe hot swaps, scale-out."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from kafka import TopicPartition

from streaming.config import Settings
from streaming.control.updates import champion_update
from streaming.errors import DeliveryError
from streaming.events import DeadLetter, Score, encode_event
from streaming.kafka.clients import make_consumer, make_producer
from streaming.kafka.publishing import publish_model_update
from streaming.kafka.reading import end_offsets
from streaming.models.first_champion import open_registry, train_and_register
from streaming.models.registry import ARTIFACT_FILE, ModelManifest
from streaming.models.training import TrainingParams
from streaming.scoring.service import ScoringService
from streaming.simulation.generator import TransactionSimulator, to_transactions
from tests.conftest import free_port
from tests.kafka_helpers import (
    committed_offsets,
    decode_all,
    partitions_owned,
    produce,
    read_topic,
    scorer_thread,
    start_scorer_process,
    wait_for_group,
)
from tests.waiting import eventually

pytestmark = pytest.mark.integration


def register(settings: Settings, history: pd.DataFrame, iterations: int = 20) -> ModelManifest:
    return train_and_register(settings, history, params=TrainingParams(max_iter=iterations))


def transactions(n: int, seed: int = 1) -> list[tuple[bytes, bytes]]:
    frame = TransactionSimulator(seed=seed).generate(n)
    return [(t.account_id.encode(), encode_event(t)) for t in to_transactions(frame)]


def ids_of(messages: list[tuple[bytes, bytes]]) -> set[str]:
    import msgspec

    return {msgspec.json.decode(value)["transaction_id"] for _, value in messages}


def all_running(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        assert process.poll() is None, f"a scorer exited with {process.returncode}"


def wait_for_scores(settings: Settings, expected: set[str], timeout_s: float = 120) -> list[Score]:
    records = read_topic(
        settings,
        settings.topics.scores,
        until=lambda rs: len({r.key for r in rs}) >= len(expected),
        timeout_s=timeout_s,
    )
    return decode_all(records, Score)


def test_valid_transactions_are_scored_and_garbage_goes_to_the_dlq(
    driftloop_settings: Settings, history: pd.DataFrame
) -> None:
    settings = driftloop_settings
    publish_model_update(settings, champion_update(register(settings, history)))
    good = transactions(400)
    valid = good[0][1].decode()
    garbage = [
        (b"k1", b"\x00\xffnot json at all"),
        (b"k2", valid.replace('"account_id":"', '"account_id":7,"x":"').encode()),
        (b"k3", valid.replace('"amount"', '"amount_typo"').encode()),
        (b"k4", valid.replace('"schema_version":1', '"schema_version":9').encode()),
        (b"k5", valid.replace('"hour_of_day":', '"hour_of_day":1e999,"was":').encode()),
    ]
    produce(settings, settings.topics.transactions, good[:200] + garbage + good[200:])

    with scorer_thread(settings, open_registry(settings)) as service:
        scores = wait_for_scores(settings, ids_of(good))
        more = transactions(50, seed=2)  # the scorer is still up after the garbage
        produce(settings, settings.topics.transactions, more)
        scores = wait_for_scores(settings, ids_of(good) | ids_of(more))
        dead = decode_all(
            read_topic(settings, settings.topics.transactions_dlq, lambda rs: len(rs) >= 5), DeadLetter
        )
    assert {s.transaction_id for s in scores} == ids_of(good) | ids_of(more)
    assert len(scores) == len(good) + len(more), "no crash, so no duplicates"
    assert {s.model_version for s in scores} == {"v1"}
    assert service.stats.dead_letters == 5
    assert sorted(d.reason for d in dead) == sorted(
        ["invalid_json", "validation", "feature_spec", "unsupported_schema_version", "non_finite"]
    )
    by_key = {d.key: d for d in dead}
    assert by_key[b"k1"].value == b"\x00\xffnot json at all"
    assert "missing required field `amount`" in by_key[b"k3"].error
    assert all(d.source_topic == settings.topics.transactions and d.offset >= 0 for d in dead)


def test_kill_9_mid_stream_then_restart_scores_every_transaction(
    driftloop_settings: Settings, history: pd.DataFrame, tmp_path: Path
) -> None:
    # Checkpoint after every batch: duplicates are then bounded by the batch in hand.
    scoring = driftloop_settings.scoring.model_copy(update={"checkpoint_interval_s": 0.0})
    settings = driftloop_settings.model_copy(update={"scoring": scoring})
    publish_model_update(settings, champion_update(register(settings, history)))
    messages = transactions(15_000)
    produce(settings, settings.topics.transactions, messages)

    first = start_scorer_process(settings, tmp_path / "first.log")
    try:
        partial = read_topic(settings, settings.topics.scores, lambda rs: len(rs) >= 3000, timeout_s=120)
        assert len(partial) >= 3000, (tmp_path / "first.log").read_text()[-3000:]
    finally:
        first.kill()  # SIGKILL: no drain, no commit of the batch in hand
        first.wait(timeout=30)
    second = start_scorer_process(settings, tmp_path / "second.log")
    try:
        scores = wait_for_scores(settings, ids_of(messages), timeout_s=180)
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0
    counts = Counter(s.transaction_id for s in scores)
    assert set(counts) == ids_of(messages), "every transaction has a score"
    duplicates = sum(c - 1 for c in counts.values())
    assert duplicates <= settings.scoring.max_batch, (
        f"{duplicates} duplicates: more than one uncommitted batch"
    )


def test_a_tampered_update_is_refused_and_a_good_one_is_hot_swapped(
    driftloop_settings: Settings, history: pd.DataFrame
) -> None:
    settings = driftloop_settings
    v1 = register(settings, history)
    publish_model_update(settings, champion_update(v1))
    tampered = register(settings, history, iterations=10)
    artifact = settings.registry_path / settings.model_name / tampered.version / ARTIFACT_FILE
    artifact.write_bytes(artifact.read_bytes()[:-10] + b"0123456789")
    first = transactions(300, seed=3)
    second = transactions(300, seed=4)

    with scorer_thread(settings, open_registry(settings)) as service:
        produce(settings, settings.topics.transactions, first[:150])
        wait_for_scores(settings, ids_of(first[:150]))
        publish_model_update(settings, champion_update(tampered))
        produce(settings, settings.topics.transactions, first[150:])
        before = wait_for_scores(settings, ids_of(first))
        refused = decode_all(
            read_topic(settings, settings.topics.model_updates_dlq, lambda rs: len(rs) >= 1), DeadLetter
        )
        assert {s.model_version for s in before} == {v1.version}, "the old champion keeps serving"
        assert [(d.reason, d.source_topic) for d in refused] == [
            ("hash_mismatch", settings.topics.model_updates)
        ]

        v3 = register(settings, history, iterations=15)
        publish_model_update(settings, champion_update(v3))
        eventually(
            lambda: service.holder.champion is not None and service.holder.champion.version == v3.version,
            f"the scorer serving {v3.version}",
            timeout_s=30,
        )
        produce(settings, settings.topics.transactions, second)
        after = wait_for_scores(settings, ids_of(first) | ids_of(second))
    assert Counter(s.transaction_id for s in after).most_common(1)[0][1] == 1, "nothing scored twice"
    assert {s.model_version for s in after if s.transaction_id in ids_of(second)} == {v3.version}
    assert service.models.updates_rejected == 1


def test_two_scorer_processes_split_four_partitions_and_lose_nothing(
    driftloop_settings: Settings, history: pd.DataFrame, tmp_path: Path
) -> None:
    settings = driftloop_settings
    publish_model_update(settings, champion_update(register(settings, history)))
    ports = [free_port(), free_port()]
    scorers = [
        start_scorer_process(settings, tmp_path / f"scorer-{i}.log", port) for i, port in enumerate(ports)
    ]
    try:
        # Both own partitions (imports and model loading take seconds; the cooperative
        # rebalance takes two rounds) before data arrives: each reports it, and the group agrees.
        eventually(
            lambda: (
                all(partitions_owned(port) > 0 for port in ports) and sum(map(partitions_owned, ports)) == 4
            ),
            "both scorers owning partitions",
            timeout_s=120,
            alive=lambda: all_running(scorers),
        )
        wait_for_group(settings, settings.scoring.group_id, settings.topics.transactions, members=2)
        messages = transactions(8000)
        produce(settings, settings.topics.transactions, messages)
        scores = wait_for_scores(settings, ids_of(messages), timeout_s=180)
    finally:
        for scorer in scorers:
            scorer.send_signal(signal.SIGTERM)
        codes = [scorer.wait(timeout=60) for scorer in scorers]
    assert codes == [0, 0]
    assert {s.transaction_id for s in scores} == ids_of(messages)
    assert len(scores) == len(messages), "clean shutdowns leave no duplicates"
    logs = [(tmp_path / f"scorer-{i}.log").read_text() for i in range(2)]
    scored = [int(log.rsplit("scored ", 1)[1].split()[0]) for log in logs]
    assert all(n > 0 for n in scored), f"both scorers must have worked: {scored}"
    assert sum(scored) == len(messages)

    # SIGTERM drained and committed: the group's offsets are at the end of every partition.
    topic = settings.topics.transactions
    ends = end_offsets(settings.kafka, topic)
    assert committed_offsets(settings, settings.scoring.group_id, topic) == ends and len(ends) == 4


def test_a_batch_waits_for_more_records_only_until_its_first_is_max_wait_ms_old(
    driftloop_settings: Settings, history: pd.DataFrame
) -> None:
    scoring = driftloop_settings.scoring.model_copy(update={"max_wait_ms": 2500})
    settings = driftloop_settings.model_copy(update={"scoring": scoring})
    publish_model_update(settings, champion_update(register(settings, history)))
    warmup, fresh, backlog = transactions(1, seed=3), transactions(1, seed=4), transactions(30, seed=5)

    def send(messages: list[tuple[bytes, bytes]], timestamp_ms: int) -> None:
        producer = make_producer(settings.kafka)
        try:
            for key, value in messages:
                producer.send(settings.topics.transactions, key=key, value=value, timestamp_ms=timestamp_ms)
            producer.flush(timeout=30)
        finally:
            producer.close()

    with scorer_thread(settings, open_registry(settings)):
        produce(settings, settings.topics.transactions, warmup)
        wait_for_scores(settings, ids_of(warmup))  # joined, idle
        send(fresh, int(time.time() * 1000))
        wait_for_scores(settings, ids_of(warmup) | ids_of(fresh))
        send(backlog, int(time.time() * 1000) - 60_000)  # produced a minute ago: waited enough
        scores = wait_for_scores(settings, ids_of(warmup) | ids_of(fresh) | ids_of(backlog))
    latency = {s.transaction_id: s.latency_ms for s in scores}
    # A lone fresh record is held for company until it is max_wait_ms old...
    (fresh_id,) = ids_of(fresh)
    assert 1500 <= latency[fresh_id] <= 6000
    # ...records that are older than that already are scored at once.
    assert max(latency[t] for t in ids_of(backlog)) < 1000


@pytest.mark.parametrize("count", [1, 50])
def test_outputs_the_broker_refuses_stop_the_scorer_without_committing_their_offsets(
    driftloop_settings: Settings, history: pd.DataFrame, topic_factory: Callable[..., str], count: int
) -> None:
    # A scores topic whose records may not exceed 200 bytes: every Score (~310 B) is refused.
    # One record: its send fails. Fifty: kafka-python splits the batches, gives up, and its
    # flush itself raises.
    small = topic_factory("scores-small", partitions=4, configs={"max.message.bytes": "200"})
    settings = driftloop_settings.model_copy(
        update={"topics": driftloop_settings.topics.model_copy(update={"scores": small})}
    )
    publish_model_update(settings, champion_update(register(settings, history)))
    produce(settings, settings.topics.transactions, transactions(count))

    service = ScoringService(settings, open_registry(settings))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            service.run(install_signal_handlers=False)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=120)
    if thread.is_alive():
        service.stop()
        thread.join(timeout=60)
        pytest.fail("the scorer kept running although its outputs were refused")
    assert len(errors) == 1 and isinstance(errors[0], DeliveryError), errors
    assert "offsets not committed" in str(errors[0])
    if count == 1:
        # kafka-python's name for the broker's refusal, or librdkafka's words for it
        assert re.search("MessageSizeTooLarge|Message size too large", str(errors[0])), "the send's own error"

    consumer = make_consumer(settings.kafka, settings.scoring.group_id)
    partitions = [TopicPartition(settings.topics.transactions, p) for p in range(4)]
    committed = {tp: consumer.committed(tp) for tp in partitions}
    consumer.close(autocommit=False)
    assert committed == dict.fromkeys(partitions), "nothing committed: the transactions are read again"


def test_after_ten_refused_champion_updates_a_restarted_scorer_serves_the_last_good_champion(
    driftloop_settings: Settings, history: pd.DataFrame
) -> None:
    import msgspec
    from prometheus_client import REGISTRY

    settings = driftloop_settings
    good = register(settings, history)
    publish_model_update(settings, champion_update(good))
    for number in range(90, 94):  # versions the registry does not have
        publish_model_update(settings, msgspec.structs.replace(champion_update(good), version=f"v{number}"))
    for _ in range(3):  # artifacts changed after they were signed
        tampered = register(settings, history, iterations=5)
        artifact = settings.registry_path / settings.model_name / tampered.version / ARTIFACT_FILE
        artifact.write_bytes(artifact.read_bytes()[:-10] + b"0123456789")
        publish_model_update(settings, champion_update(tampered))
    for _ in range(3):  # updates naming another artifact than the registry's
        other = register(settings, history, iterations=5)
        publish_model_update(settings, msgspec.structs.replace(champion_update(other), sha256="f" * 64))

    for restart, seed in enumerate((11, 12)):
        batch = transactions(100, seed=seed)
        started = time.monotonic()
        with scorer_thread(settings, open_registry(settings)) as service:
            produce(settings, settings.topics.transactions, batch)
            scores = wait_for_scores(
                settings, ids_of(batch) | (ids_of(transactions(100, seed=11)) if restart else set())
            )
            served_after = time.monotonic() - started
            assert service.holder.champion is not None and service.holder.champion.version == good.version
            assert service.models.named.champion == "v7", "the named champion is the last, refused one"
            refused_now = REGISTRY.get_sample_value(
                "driftloop_named_champion_refused", {"model_name": settings.model_name}
            )
        assert {s.model_version for s in scores} == {good.version}
        assert served_after < 20, f"restart {restart}: scored only after {served_after:.1f} s"
        assert refused_now == 1
    letters = decode_all(
        read_topic(settings, settings.topics.model_updates_dlq, lambda rs: False, timeout_s=3), DeadLetter
    )
    assert len(letters) == 10, "each refusal dead-lettered once, not again by the restarted scorer"
    assert len({(d.partition, d.offset) for d in letters}) == 10
    assert Counter(d.reason for d in letters) == {"missing": 4, "hash_mismatch": 6}


def test_a_scorer_restarted_with_its_group_instance_id_owns_its_partitions_again_at_once(
    driftloop_settings: Settings, history: pd.DataFrame, tmp_path: Path
) -> None:
    scoring = driftloop_settings.scoring.model_copy(update={"group_instance_id": "scorer-0"})
    settings = driftloop_settings.model_copy(update={"scoring": scoring})
    publish_model_update(settings, champion_update(register(settings, history)))
    port = free_port()
    first = start_scorer_process(settings, tmp_path / "first.log", port)
    try:
        eventually(lambda: partitions_owned(port) == 4, "the first scorer owning its partitions", 120)
    finally:
        first.kill()  # a crash: no leave-group request
        first.wait(timeout=30)
    restarted = time.monotonic()
    second = start_scorer_process(settings, tmp_path / "second.log", port)
    try:
        eventually(lambda: partitions_owned(port) == 4, "the restarted scorer owning its partitions", 60, 0.1)
        owned_after = time.monotonic() - restarted
        batch = transactions(500, seed=21)
        produce(settings, settings.topics.transactions, batch)
        scores = wait_for_scores(settings, ids_of(batch))
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0
    assert {s.transaction_id for s in scores} == ids_of(batch)
    # Without static membership the dead member would hold them for session_timeout_ms (30 s).
    assert owned_after < 15, f"partitions assigned {owned_after:.1f} s after the restart"
