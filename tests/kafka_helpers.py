"""Helpers for integration tests: produce, read a topic whole, run a scorer."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import msgspec
from kafka import TopicPartition

from streaming.benchmarks.throughput import child_env
from streaming.config import Settings
from streaming.kafka.clients import make_consumer, make_producer
from streaming.models.registry import ModelRegistry
from streaming.scoring.scorer import BatchObserver
from streaming.scoring.service import ScoringService


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
    consumer = make_consumer(settings.kafka, None)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=300).values():
                records.extend(batch)
            if until(records):
                break
        return records
    finally:
        consumer.close(autocommit=False)


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


def start_scorer_process(settings: Settings, log_path: Any) -> subprocess.Popen[bytes]:
    log = open(log_path, "ab")  # noqa: SIM115 - closed with the process by the caller's wait
    return subprocess.Popen(
        [sys.executable, "-m", "streaming.cli", "score"],
        env=child_env(settings),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


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


def committed_total(settings: Settings, group: str, topic: str) -> int:
    """The offsets ``group`` has committed on ``topic``, summed over its partitions (what
    `kafka-consumer-groups --describe` shows): the records it has checkpointed."""
    consumer = make_consumer(settings.kafka, group, enable_auto_commit=False)  # never subscribes
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        return sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in partitions)
    finally:
        consumer.close(autocommit=False)


def wait_for_checkpoint(settings: Settings, at_least: int, timeout_s: float = 60) -> None:
    """Until the scorer's group has committed ``at_least`` transactions: every output of those,
    and the monitors' state covering them, has landed (a checkpoint writes them first)."""
    deadline = time.monotonic() + timeout_s
    group, topic = settings.scoring.group_id, settings.topics.transactions
    while (done := committed_total(settings, group, topic)) < at_least:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{group} committed {done} of {at_least} {topic} records in {timeout_s:.0f}s"
            )
        time.sleep(0.2)
