"""Helpers for integration tests: produce, read a topic whole, run a scorer."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pandas as pd
from kafka import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from streaming.config import KAFKA_VERSION, KafkaSettings, Settings, child_env
from streaming.errors import KafkaUnavailableError
from streaming.events import encode_event
from streaming.kafka.clients import make_admin, make_consumer, make_producer
from streaming.kafka.local_broker import LocalBroker
from streaming.kafka.reading import TopicReader, end_offsets
from streaming.models.registry import ModelRegistry
from streaming.scoring.scorer import BatchObserver
from streaming.scoring.service import ScoringService
from streaming.simulation.generator import Regime, TransactionSimulator, to_outcomes, to_transactions
from tests.waiting import eventually


def produce(settings: Settings, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    producer = make_producer(settings.kafka)
    try:
        for key, value in messages:
            producer.send(topic, key=key, value=value)
        producer.flush(timeout=60)
    finally:
        producer.close()


def read_topic(
    settings: Settings, topic: str, until: Callable[[list[Any]], bool], timeout_s: float = 90.0
) -> list[Any]:
    """Every record of ``topic`` from the beginning, once ``until(records)`` holds (or timeout)."""
    with TopicReader(settings.kafka, topic, topic_timeout_s=30.0) as reader:
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            records += reader.poll(timeout_ms=300)
            if until(records):
                break
        return records


def records_written(kafka: KafkaSettings, topic: str) -> int:
    """The records written to ``topic`` so far, over all partitions (0 while it does not exist)."""
    try:
        return sum(end_offsets(kafka, topic, topic_timeout_s=0).values())
    except KafkaUnavailableError:
        return 0


def wait_for_group(
    settings: Settings,
    group: str,
    topic: str,
    members: int,
    timeout_s: float = 120.0,
    alive: Callable[[], None] | None = None,
) -> None:
    """Until ``group`` is stable with ``members`` members that each own some of ``topic``'s
    partitions and together all of them (what ``kafka-consumer-groups --describe --members``
    shows): every member is consuming. With cooperative rebalancing that is after the second
    round, once the revoked partitions have been handed over."""
    partitions = set(end_offsets(settings.kafka, topic))
    admin = make_admin(settings.kafka)

    def stable() -> bool:
        described = admin.describe_groups([group])[group]
        owned = [
            {p for assigned in m["member_assignment"]["assigned_partitions"] for p in assigned["partitions"]}
            for m in described["members"]
            if m["member_assignment"]
        ]
        return (
            described["group_state"] == "Stable"
            and len(owned) == members
            and all(owned)
            and set().union(*owned) == partitions
        )

    try:
        eventually(stable, f"{group}: {members} members sharing {topic}", timeout_s, 0.5, alive)
    finally:
        admin.close()


def stream_labelled(
    settings: Settings,
    simulator: TransactionSimulator,
    count: int,
    regime: Regime,
    label_delay: timedelta = timedelta(days=3),
    chunk: int = 1000,
) -> None:
    """``count`` simulated transactions, and for each the Outcome `driftloop join` writes when
    its label comes ``label_delay`` later (event time), scored by the champion v1. Drawn
    ``chunk`` at a time, as `driftloop simulate` draws them (so the same seed gives the same
    rows)."""
    frames = [simulator.generate(min(chunk, count - done), regime) for done in range(0, count, chunk)]
    frame = pd.concat(frames, ignore_index=True)
    transactions = [(t.account_id.encode(), encode_event(t)) for t in to_transactions(frame)]
    outcomes = [
        (o.account_id.encode(), encode_event(o))
        for o in to_outcomes(frame, settings.model_name, "v1", delay=label_delay)
    ]
    produce(settings, settings.topics.transactions, transactions)
    produce(settings, settings.topics.outcomes, outcomes)


def decode_all(records: list[Any], event_type: type) -> list[Any]:
    return [msgspec.json.decode(r.value, type=event_type) for r in records]


@contextmanager
def scorer_thread(
    settings: Settings, registry: ModelRegistry, observers: Sequence[BatchObserver] = ()
) -> Iterator[ScoringService]:
    service = ScoringService(settings, registry, observers)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            service.run(install_signal_handlers=False)
        except BaseException as exc:  # surfaced in the test below
            errors.append(exc)

    thread = threading.Thread(target=run, name="scorer", daemon=True)
    thread.start()
    try:
        yield service
    finally:
        service.stop()
        thread.join(timeout=60)
    assert not thread.is_alive(), "the scorer did not stop within 60 s"
    if errors:
        raise errors[0]


def start_scorer_process(settings: Settings, log_path: Any, metrics_port: int = 0) -> subprocess.Popen[bytes]:
    """`driftloop score` as a process, output to ``log_path``; with ``metrics_port``, its
    Prometheus metrics there (see :func:`partitions_owned`)."""
    log = open(log_path, "ab")  # noqa: SIM115 - closed with the process by the caller's wait
    scoring = settings.scoring.model_copy(
        update={"metrics_port": metrics_port, "metrics_address": "127.0.0.1"}
    )
    return subprocess.Popen(
        [sys.executable, "-m", "streaming.cli", "score"],
        env=child_env(settings.model_copy(update={"scoring": scoring})),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def scraped(port: int) -> dict[str, float]:
    """A driftloop process' Prometheus metrics, ``{sample name: value}`` for unlabelled
    samples (empty while its metrics server is not up)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return {}
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }


def partitions_owned(port: int) -> int:
    """``driftloop_partitions_owned`` of the scorer serving metrics on ``port`` (0 before it is up)."""
    return int(scraped(port).get("driftloop_partitions_owned", 0))


@contextmanager
def running(service: Any, join_timeout_s: float = 60) -> Iterator[Any]:
    """Run a driftloop service (trigger, canary controller) in a thread for the block's duration.

    Waits until the service says it is ready; stops and joins it at the end; an exception
    raised by the service fails the test.
    """
    ready = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            service.run(install_signal_handlers=False, on_ready=ready.set)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
            ready.set()

    thread = threading.Thread(target=run, name=type(service).__name__, daemon=True)
    thread.start()
    try:
        assert ready.wait(60), f"{type(service).__name__} was not ready within 60 s"
        if errors:
            raise errors[0]
        yield service
    finally:
        service.stop()
        thread.join(join_timeout_s)
    assert not thread.is_alive(), f"{type(service).__name__} did not stop within {join_timeout_s:.0f} s"
    if errors:
        raise errors[0]


def committed_offsets(settings: Settings, group: str, topic: str) -> dict[int, int | None]:
    """The offsets ``group`` has committed on ``topic``, per partition (what
    `kafka-consumer-groups --describe` shows; None where it committed nothing)."""
    consumer = make_consumer(settings.kafka, group, enable_auto_commit=False)  # never subscribes
    try:
        partitions = sorted(consumer.partitions_for_topic(topic) or set())
        return {p: consumer.committed(TopicPartition(topic, p)) for p in partitions}
    finally:
        consumer.close(autocommit=False)


def committed_total(settings: Settings, group: str, topic: str) -> int:
    """:func:`committed_offsets` summed over the partitions: the records it has checkpointed."""
    return sum(offset or 0 for offset in committed_offsets(settings, group, topic).values())


def wait_for_commits_at_the_end(settings: Settings, group: str, topic: str, timeout_s: float = 60) -> None:
    """Until ``group`` has committed every partition of ``topic`` up to its end offset."""
    ends: dict[int, int | None] = dict(end_offsets(settings.kafka, topic))
    eventually(
        lambda: committed_offsets(settings, group, topic) == ends,
        f"{group} committing {topic} to its end offsets {ends}",
        timeout_s,
        every_s=0.5,
    )


def wait_for_checkpoint(settings: Settings, at_least: int, timeout_s: float = 60) -> None:
    """Until the scorer's group has committed ``at_least`` transactions: every output of those,
    and the monitors' state covering them, has landed (a checkpoint writes them first)."""
    group, topic = settings.scoring.group_id, settings.topics.transactions
    eventually(
        lambda: committed_total(settings, group, topic) >= at_least,
        f"{group} committing {at_least} {topic} records",
        timeout_s,
    )


@contextmanager
def sasl_ssl_broker(home: Path, users: dict[str, str]) -> Iterator[LocalBroker]:
    """A broker of the test's own with a SASL_SSL listener, as a secured cluster's: TLS
    with a CA of its own (``broker.ca_file``), and SCRAM-SHA-512 ``users``."""
    from tests.conftest import free_port

    broker = LocalBroker(
        home, KAFKA_VERSION, port=free_port(), controller_port=free_port(), scram_users=users, tls=True
    )
    broker.start(timeout_s=120)
    try:
        yield broker
    finally:
        broker.stop()
