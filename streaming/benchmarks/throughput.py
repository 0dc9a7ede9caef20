"""`driftloop bench throughput`: the scorer against its baselines, on the real broker, in one run.

1. Preload N simulated transactions into a fresh 4-partition topic, their labels as
   `driftloop simulate` does, and the outcomes `driftloop join` would write for them (each
   after its transaction, co-partitioned).
2. Measure, each with a fresh consumer group over the same N records:
   (a) *passthrough*: consume and produce the same bytes with the same client settings,
       committing on the scorer's checkpoint cadence; no decoding, no model;
   (b) the *scorer* (`ScoringService`, micro-batched), and again with the drift evidence
       (every batch summarized and written to ``drift.evidence``; the monitors themselves run
       in `driftloop monitor`, off the hot path), unless ``--no-evidence``. The evidence's
       own cost per event is also timed inside the scorer (``evidence_us_per_event``);
   (c) a *naive* per-message loop: decode one, predict one, produce one (on a prefix of the
       records, since it is slow), predicting with scikit-learn's own ``predict_proba`` as a
       per-message consumer of a scikit-learn model would; and the same loop predicting
       with driftloop's compiled tree walker (``naive_compiled_eps``; on 10x that prefix),
       which shows what micro-batching alone buys once a row is cheap to predict.
   Every pipeline but the naive loop runs on each Kafka client (``kafka.client``):
   kafka-python, and librdkafka (confluent-kafka; named ``<pipeline> (librdkafka)``), in an
   order that alternates between rounds; ``fast_*`` figures compare librdkafka's to its own
   passthrough and to kafka-python's.
   Rate = records / (last batch's outputs flushed - first record received). The scorer's
   ratio to the passthrough is the median of the rounds' ratios (each round runs the two
   back to back, in alternating order; the machine's speed drifts between rounds);
   ``ratio_of_medians`` is the ratio of the two medians.
   The model is the configuration's: driftloop's gradient-boosted trees, or the team's own
   (``[training]``, e.g. ``--config examples/card_model/driftloop.toml``: a Pipeline scored
   on a DataFrame built once per batch; ``model_input_us_per_event`` is that building's cost
   per event, next to the float matrix of driftloop's own model, ``matrix_us_per_event``).
3. Latency: a `driftloop score` process scores transactions offered at a fixed rate for a
   while: half the measured maximum of the same configuration (with the drift evidence
   unless ``--no-evidence``). End-to-end latency per transaction is the broker's append
   time of its score (LogAppendTime) minus the transaction's create time. The load is
   encoded before the clock starts, so the load generator (a Python process on the same
   machine) takes as little CPU from the scorer as it can. Once for each client, each at
   half its own maximum (``fast_*_latency_ms`` for librdkafka).

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import gc
import json
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from streaming.checkpointing import BatchCollector, Checkpointer, DeliveryTracker, PendingBatch
from streaming.config import KafkaSettings, Settings, TopicNames, child_env
from streaming.control.plan import ServingPlan
from streaming.control.updates import champion_update
from streaming.errors import BenchmarkError
from streaming.events import EventCodec, Outcome, Score, Transaction, encode_event, transaction_type
from streaming.kafka.clients import (
    BATCH_FETCH_OPTIONS,
    BATCH_PRODUCE_OPTIONS,
    close_all,
    commit_or_defer,
    ensure_topics,
    make_producer,
    wait_for_topic,
)
from streaming.kafka.native import NativeDeliveryError, NativeProducer
from streaming.kafka.publishing import publish_model_update
from streaming.kafka.reading import TopicReader
from streaming.kafka.transport import NoRebalanceHooks, make_consumer, make_output_producer
from streaming.models.first_champion import open_registry, train_and_register
from streaming.scoring.holder import ModelHolder
from streaming.scoring.scorer import BatchObserver, Scorer
from streaming.scoring.service import ScoringService
from streaming.simulation.generator import BASELINE, TransactionSimulator, to_outcomes, to_transactions
from streaming.simulation.streamer import TransactionStreamer
from streaming.topics import TopicSpec, topic_catalogue

PARTITIONS = 4


@dataclass(frozen=True)
class Measurement:
    records: int
    seconds: float
    observer_s: float = 0.0  # time the observers (the evidence) took inside the scorer

    @property
    def events(self) -> int:
        return self.records

    @property
    def eps(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


def bench_settings(base: Settings, home: Path) -> Settings:
    """Settings with fresh, uniquely named topics so every run starts from nothing."""
    run = uuid.uuid4().hex[:8]
    names = TopicNames(**{field: f"bench-{run}-{field}" for field in TopicNames.model_fields})
    scoring = base.scoring.model_copy(update={"group_id": f"bench-{run}-scorer", "metrics_port": 0})
    join = base.join.model_copy(update={"group_id": f"bench-{run}-join", "metrics_port": 0})
    return base.model_copy(update={"topics": names, "scoring": scoring, "join": join, "home": home})


def preload(settings: Settings, count: int, model_version: str, seed: int = 7, chunk: int = 5000) -> float:
    """Produce ``count`` transactions and their labels as `driftloop simulate` does, and
    after each chunk its outcomes (as `driftloop join` would write them for ``model_version``);
    return the mean transaction size in bytes."""
    simulator = TransactionSimulator(seed=seed)
    streamer = TransactionStreamer(settings)
    outcomes = make_producer(settings.kafka, linger_ms=20, batch_size=262_144)
    try:
        while streamer.stats.transactions < count:
            frame = simulator.generate(min(chunk, count - streamer.stats.transactions), BASELINE)
            streamer.send(frame)
            for outcome in to_outcomes(frame, settings.model_name, model_version):
                outcomes.send(
                    settings.topics.outcomes, key=outcome.account_id.encode(), value=encode_event(outcome)
                )
        outcomes.flush(timeout=60)
    finally:
        close_all(streamer.close, lambda: outcomes.close(timeout=10))
    sample = TransactionSimulator(seed=seed).generate(1000)
    return statistics.mean(len(encode_event(t)) for t in to_transactions(sample))


def _consume_loop(
    settings: Settings, count: int, group: str, handle: Callable[[list[Any], Any], None]
) -> Measurement:
    """Consume ``count`` records with a fresh group in batches formed like the scorer's.

    A batch is up to ``max_batch`` records or what is waiting once its first record is
    ``max_wait_ms`` old (the scorer's rule); each is handed to ``handle``; as in the
    scorer, outputs are flushed and offsets committed on the checkpoint cadence
    (``checkpoint_interval_s``), so both pay the same flushes and commits.
    """
    scoring = settings.scoring
    gc.freeze()  # the same process hygiene as the scorer's (see ServedModels.apply)
    # The scorer's transport on kafka.client: consumer, producer, batching, delivery check
    # and checkpoint, without its scoring.
    consumer = make_consumer(settings.kafka, group, max_poll_records=scoring.max_batch, **BATCH_FETCH_OPTIONS)
    # As the scorer does: subscribe, then wait for the metadata, then poll (see wait_for_topic).
    consumer.subscribe([settings.topics.transactions], listener=NoRebalanceHooks())
    wait_for_topic(consumer, settings.topics.transactions)
    collector = BatchCollector(scoring.max_batch, scoring.max_wait_ms, scoring.max_wait_ms)
    delivery = DeliveryTracker(lambda timeout: producer.flush(timeout=timeout), 60, lambda p: f"{group}: {p}")
    producer = make_output_producer(settings.kafka, delivery.errback, 60, **BATCH_PRODUCE_OPTIONS)

    checkpoints = Checkpointer(
        delivery,
        write_state=lambda offsets: None,
        commit=lambda offsets: commit_or_defer(consumer, offsets),
        owned=consumer.assignment,
        interval_s=scoring.checkpoint_interval_s,
    )
    seen = 0
    done = time.monotonic()
    pending = PendingBatch()
    deadline = time.monotonic() + 300
    try:
        while seen < count and time.monotonic() < deadline:
            collector.collect(
                pending, consumer.poll, limit=count - seen, fill=getattr(consumer, "fill", None)
            )
            if not len(pending):
                continue
            records, _, ends = pending.take()
            handle(records, producer)
            delivery.sent(len(records))
            checkpoints.done(ends)
            seen += len(records)
            if checkpoints.due or seen >= count:
                checkpoints.checkpoint()
                done = delivery.last_flush_at or time.monotonic()
        if seen < count:
            raise BenchmarkError(f"{group}: consumed {seen} of {count} records before the deadline")
        first = collector.first_record_at or done
        return Measurement(seen, done - first)
    finally:
        consumer.close(autocommit=False)
        producer.close()


def measure_passthrough(settings: Settings, count: int, label: str = "passthrough") -> Measurement:
    sink = settings.topics.scores

    def forward(records: list[Any], producer: Any) -> None:
        send = producer.send
        for record in records:
            send(sink, record.key, record.value)

    return _consume_loop(settings, count, f"{settings.scoring.group_id}-{label}", forward)


def measure_naive(
    settings: Settings, count: int, label: str = "naive", compiled: bool = False
) -> Measurement:
    """Decode one, predict one, produce one: the scorer's own code, one record at a time.

    By default the model predicts through scikit-learn's own ``predict_proba``, as a
    per-message consumer of a scikit-learn model would; ``compiled`` uses driftloop's
    compiled tree walker instead (what the scorer uses), which makes one row cheap.
    """
    registry = open_registry(settings)
    holder = ModelHolder()
    holder.reconcile(
        ServingPlan(registry.versions(settings.model_name)[-1]),
        lambda version: replace(registry.load(settings.model_name, version), compiled=compiled),
    )
    spec = settings.feature_spec()
    scorer = Scorer(holder, settings.model_name, spec, settings.scoring.threshold)
    codec = EventCodec(transaction_type(spec))
    sink = settings.topics.scores

    def one_by_one(records: list[Any], producer: Any) -> None:
        for record in records:
            received = time.time()
            (score,), _ = scorer.score([codec.decode(record.value)], [received])
            producer.send(sink, score.transaction_id.encode(), encode_event(score))

    return _consume_loop(settings, count, f"{settings.scoring.group_id}-{label}", one_by_one)


def measure_scorer(
    settings: Settings,
    count: int,
    observers_factory: Callable[[Settings], Sequence[BatchObserver]] | None = None,
    label: str = "scorer",
) -> Measurement:
    scoring = settings.scoring.model_copy(update={"group_id": f"{settings.scoring.group_id}-{label}"})
    run_settings = settings.model_copy(update={"scoring": scoring})
    observers = observers_factory(run_settings) if observers_factory is not None else ()
    service = ScoringService(run_settings, open_registry(settings), observers)
    thread = threading.Thread(target=service.run, kwargs={"install_signal_handlers": False}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 300
    # Coarse checks: the rate comes from the scorer's own timestamps, and every wake-up of
    # this thread would take the GIL from the scorer's.
    while service.stats.scored + service.stats.dead_letters < count and time.monotonic() < deadline:
        time.sleep(0.25)
    service.stop()
    thread.join(timeout=60)
    stats = service.stats
    if stats.scored + stats.dead_letters < count:
        raise BenchmarkError(f"{label}: scored {stats.scored} of {count} records before the deadline")
    # Until the last batch's scores were flushed: the final commit waits for the stop request.
    seconds = (service.delivery.last_flush_at or 0.0) - (service.collector.first_record_at or 0.0)
    return Measurement(stats.scored, seconds, sum(getattr(o, "busy_s", 0.0) for o in observers))


@dataclass(frozen=True)
class LatencyRun:
    latencies_ms: list[float]
    achieved_rate: float  # what the load generator offered, per second
    load_generator: str  # the Kafka client that offered the load


def measure_latency(
    settings: Settings,
    rate: float,
    seconds: float,
    log_file: Path,
    model_version: str,
    warmup_s: float = 3.0,
    evidence: bool = True,
    label_delay: int = 500,
) -> LatencyRun:
    """End-to-end latencies (ms) of transactions offered at ``rate``/s to a scorer process.

    Load is offered for ``warmup_s + seconds``; only transactions sent after the warm-up
    (group join, first fetches) are measured, so the figures describe the steady state.
    The scorer writes drift evidence when ``evidence`` is true; the load carries each
    transaction's outcome ``label_delay`` transactions later, on the run's own outcomes
    topic (as `driftloop join` would write it).
    """
    topics = settings.topics.model_copy(
        update={
            "transactions": settings.topics.transactions + "-latency",
            "outcomes": settings.topics.outcomes + "-latency",
            "scores": settings.topics.scores + "-latency",
        }
    )
    ensure_topics(
        settings.kafka,
        [
            TopicSpec(topics.transactions, Transaction, "account_id", "", PARTITIONS),
            TopicSpec(topics.outcomes, Outcome, "account_id", "", PARTITIONS),
            TopicSpec(
                topics.scores,
                Score,
                "transaction_id",
                "",
                PARTITIONS,
                configs={"message.timestamp.type": "LogAppendTime"},
            ),
        ],
    )
    monitoring = settings.monitoring.model_copy(update={"enabled": evidence})
    live = settings.model_copy(update={"topics": topics, "monitoring": monitoring})
    with open(log_file, "ab") as log:
        scorer = subprocess.Popen(
            [sys.executable, "-m", "streaming.cli", "score"],
            env=child_env(live),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_assignment(log_file, timeout_s=60)
        frame = TransactionSimulator(seed=11).generate(int(rate * (warmup_s + seconds)))
        load = [(t.transaction_id, t.account_id.encode(), encode_event(t)) for t in to_transactions(frame)]
        # Each outcome follows its transaction `label_delay` transactions later.
        outcomes = [encode_event(o) for o in to_outcomes(frame, live.model_name, model_version)]
        producer = LoadProducer(live.kafka)
        send = producer.send
        sent_at: dict[str, int] = {}
        measured_from = int(rate * warmup_s)
        started = time.monotonic()
        for i, (transaction_id, key, value) in enumerate(load):
            ahead = i / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
            stamp = int(time.time() * 1000)
            if i >= measured_from:
                sent_at[transaction_id] = stamp
            send(topics.transactions, key=key, value=value, timestamp_ms=stamp)
            if i >= label_delay:
                send(topics.outcomes, key=load[i - label_delay][1], value=outcomes[i - label_delay])
        offered = len(load) / (time.monotonic() - started)
        producer.close()
        latencies = _score_latencies(live, sent_at)
    finally:
        scorer.send_signal(signal.SIGTERM)
        scorer.wait(timeout=60)
    return LatencyRun(latencies, offered, producer.client)


class LoadProducer:
    """The benchmarks' load generator: Java-compatible keyed partitioning, ``send`` and
    ``close`` (which flushes and fails if anything was lost).

    On a small box the generator shares the cores with the process it measures, so it is
    the join's C producer (:class:`~streaming.kafka.native.NativeProducer`, librdkafka): a
    send costs a few microseconds, against ~45 with kafka-python, whose generator took most
    of a core at 10,000 transactions/s plus their labels. ``client`` names it.
    """

    client = "confluent-kafka"

    def __init__(self, kafka: KafkaSettings) -> None:
        self.failed = 0
        self._first_failure: BaseException | None = None
        self._producer = NativeProducer(kafka, self._failure, delivery_timeout_s=60.0, linger_ms=5)

    def _failure(self, problem: BaseException) -> None:
        self.failed += 1
        self._first_failure = self._first_failure or problem

    def send(self, topic: str, key: bytes, value: bytes, timestamp_ms: int | None = None) -> None:
        self._producer.send(topic, key, value, timestamp_ms=timestamp_ms or 0)

    def close(self) -> None:
        try:
            self._producer.flush(60)
        except NativeDeliveryError as exc:
            raise BenchmarkError(f"the load generator lost messages: {exc}") from exc
        if self.failed:
            raise BenchmarkError(
                f"the load generator lost {self.failed} messages, the first: {self._first_failure}"
            )


def _score_latencies(settings: Settings, sent_at: dict[str, int], timeout_s: float = 120) -> list[float]:
    latencies: dict[str, float] = {}
    deadline = time.monotonic() + timeout_s
    with TopicReader(settings.kafka, settings.topics.scores) as reader:
        while len(latencies) < len(sent_at) and time.monotonic() < deadline:
            for record in reader.poll(timeout_ms=500):
                txn = record.key.decode()
                if txn in sent_at:
                    latencies.setdefault(txn, float(record.timestamp - sent_at[txn]))
    return list(latencies.values())


def _wait_for_assignment(log_file: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if log_file.exists() and b"partitions assigned" in log_file.read_bytes():
            return
        time.sleep(0.2)
    raise BenchmarkError(f"the scorer did not join its group within {timeout_s:.0f}s; see {log_file}")


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


#: The pipeline name of the scorer with ``scoring.delivery = exactly_once``.
EXACTLY_ONCE = "exactly-once"
#: Every client is measured; the fast one's pipelines are named ``<pipeline> (librdkafka)``.
CLIENTS = ("kafka-python", "confluent-kafka")
FAST_CLIENT = "confluent-kafka"
FAST = "librdkafka"


def run_throughput_benchmark(
    base: Settings,
    home: Path,
    count: int = 100_000,
    naive_count: int = 2_000,
    repeats: int = 5,
    latency_seconds: float = 20.0,
    observers_factory: Callable[[Settings], Sequence[BatchObserver]] | None = None,
    echo: Callable[[str], None] = print,
    exactly_once: bool = False,
) -> dict[str, Any]:
    """Run the whole benchmark; return (and print, last) the JSON summary. With
    ``exactly_once``, every round also runs the scorer (with the evidence, if any) with
    ``scoring.delivery = exactly_once``, right after its at-least-once twin."""
    settings = bench_settings(base, home)
    ensure_topics(settings.kafka, topic_catalogue(settings.topics, partitions=PARTITIONS))
    echo(
        f"training the benchmark model and preloading {count:,} transactions "
        f"into {settings.topics.transactions} ({PARTITIONS} partitions)..."
    )
    history = TransactionSimulator(seed=3).generate(20_000)
    manifest = train_and_register(settings, history)  # the configuration's model and training code
    publish_model_update(settings, champion_update(manifest))
    inputs = measure_model_input(settings, history)
    core = measure_core(settings)
    event_bytes = preload(settings, count, manifest.version)

    runs = _rounds(
        settings,
        count,
        naive_count,
        repeats,
        observers_factory,
        echo,
        compiled=inputs["model_input"] == "matrix",
        exactly_once=exactly_once,
    )
    eps = {name: statistics.median(m.eps for m in measurements) for name, measurements in runs.items()}
    latency_pipeline = "scorer+evidence" if "scorer+evidence" in eps else "scorer"
    rate = eps[latency_pipeline] / 2
    echo(
        f"latency: offering {rate:,.0f} transactions/s (half the {latency_pipeline} maximum) "
        f"to a `driftloop score` process for {latency_seconds:.0f}s..."
    )
    latency_run = measure_latency(
        settings,
        rate,
        latency_seconds,
        home / "bench-latency-scorer.log",
        manifest.version,
        evidence=latency_pipeline == "scorer+evidence",
    )
    fast_pipeline = pipeline_name(latency_pipeline, FAST_CLIENT)
    fast_rate = eps[fast_pipeline] / 2
    echo(f"latency: offering {fast_rate:,.0f} transactions/s (half the {fast_pipeline} maximum)...")
    fast_latency_run = measure_latency(
        on_client(settings, FAST_CLIENT),
        fast_rate,
        latency_seconds,
        home / "bench-latency-fast-scorer.log",
        manifest.version,
        evidence=latency_pipeline == "scorer+evidence",
    )
    summary = {
        "events": count,
        "event_bytes": round(event_bytes, 1),
        "partitions": PARTITIONS,
        "max_batch": settings.scoring.max_batch,
        "max_wait_ms": settings.scoring.max_wait_ms,
        "repeats": repeats,
        "model": manifest.lineage.get("training_code", {}).get("function")
        or manifest.lineage.get("training_code", {}).get("estimator")
        or "driftloop (gradient-boosted trees)",
        **inputs,
        **core,
        **_throughput_summary(runs, eps),
        **_latency_summary(latency_run, latency_pipeline, rate),
        **_fast_summary(runs, eps),
        **{f"fast_{k}": v for k, v in _latency_summary(fast_latency_run, fast_pipeline, fast_rate).items()},
    }
    # The best ratio to librdkafka's passthrough that the scorer's own work allows, however
    # little else it did: the passthrough's time per record plus the core stages'.
    passthrough_us = 1e6 / eps[pipeline_name("passthrough", FAST_CLIENT)]
    summary["fast_passthrough_us_per_event"] = round(passthrough_us, 3)
    summary["fast_ceiling_vs_fast_passthrough"] = round(
        passthrough_us / (passthrough_us + core["core_us_per_event"]), 3
    )
    if "scorer+evidence" in eps:
        summary["evidence_eps"] = round(eps["scorer+evidence"], 1)
        # The share of the scorer's time per event that the evidence adds (goal: <= 10%).
        summary["evidence_overhead"] = round(eps["scorer"] / eps["scorer+evidence"] - 1, 3)
        # Within each round (the machine's speed drifts between rounds), as the passthrough ratio.
        summary["evidence_overhead_of_rounds"] = round(
            statistics.median(
                alone.eps / with_evidence.eps - 1
                for alone, with_evidence in zip(runs["scorer"], runs["scorer+evidence"], strict=True)
            ),
            3,
        )
        summary["evidence_us_per_event"] = round(
            statistics.median(m.observer_s / m.events * 1e6 for m in runs["scorer+evidence"]), 2
        )
    if EXACTLY_ONCE in eps:
        twin = "scorer+evidence" if "scorer+evidence" in runs else "scorer"
        summary["exactly_once_eps"] = round(eps[EXACTLY_ONCE], 1)
        # What the transactions cost, within each round (as the passthrough ratio).
        summary["exactly_once_ratio_of_rounds"] = _median_ratio(runs, EXACTLY_ONCE, twin)
    _print_summary(summary, eps, echo)
    return summary


def measure_model_input(
    settings: Settings, history: Any, batch: int = 500, repeats: int = 7
) -> dict[str, Any]:
    """Per event, building the served model's input from decoded feature rows (a batch of
    ``batch`` at a time, as the scorer does), and the float matrix of driftloop's own model
    for comparison: medians of ``repeats`` passes over 20,000 rows."""
    from streaming.models.training import FeatureEncoder

    spec = settings.feature_spec()
    loaded = open_registry(settings).load(
        settings.model_name, open_registry(settings).versions(settings.model_name)[-1]
    )
    rows = [spec.values(r) for r in history[list(spec.names)].to_dict("records")]
    batches = [rows[i : i + batch] for i in range(0, len(rows), batch)]

    def per_event(build: Callable[[list[Any]], Any]) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            for part in batches:
                build(part)
            times.append((time.perf_counter() - start) / len(rows) * 1e6)
        return round(statistics.median(times), 2)

    matrix = FeatureEncoder.fit(history, spec)
    return {
        "model_input": loaded.encoder.kind,
        "model_input_us_per_event": per_event(loaded.encoder.matrix),
        "matrix_us_per_event": per_event(matrix.matrix),
    }


def measure_core(
    settings: Settings, count: int = 20_000, batch: int = 500, repeats: int = 5
) -> dict[str, Any]:
    """The scorer's own work per event without Kafka, in this process, by stage: decoding
    the transaction, the feature rows and the model's input, the model's ``predict_proba``,
    building the Score events and encoding them; a batch of ``batch`` at a time, as the
    scorer does (medians of ``repeats`` passes over ``count`` transactions).

    The sum bounds what any scorer doing these stages in one Python process can reach
    against a passthrough that moves a record in ``p`` µs: ``p / (p + core)``
    (``fast_ceiling_vs_fast_passthrough`` for librdkafka's).
    """
    registry = open_registry(settings)
    holder = ModelHolder()
    holder.reconcile(
        ServingPlan(registry.versions(settings.model_name)[-1]),
        lambda version: registry.load(settings.model_name, version),
    )
    champion = holder.champion
    assert champion is not None
    spec = settings.feature_spec()
    scorer = Scorer(holder, settings.model_name, spec, settings.scoring.threshold)
    codec = EventCodec(transaction_type(spec))
    frame = TransactionSimulator(seed=11).generate(count)
    raw = [encode_event(t) for t in to_transactions(frame)]
    batches = [raw[i : i + batch] for i in range(0, len(raw), batch)]
    decoded = [[codec.decode(r) for r in part] for part in batches]
    rows = [scorer.rows(part) for part in decoded]
    matrices = [scorer._matrix(champion, part) for part in rows]
    received = [[0.0] * len(part) for part in decoded]
    scored = [scorer.score(part, at, r)[0] for part, at, r in zip(decoded, received, rows, strict=True)]
    stages: dict[str, Callable[[int], object]] = {
        "decode": lambda i: [codec.decode(r) for r in batches[i]],
        "model_input": lambda i: scorer._matrix(champion, scorer.rows(decoded[i])),
        "predict": lambda i: champion.predict_proba(matrices[i]),
        # score() again predicts: its own share is the difference
        "score_events": lambda i: scorer.score(decoded[i], received[i], rows[i]),
        "encode_scores": lambda i: [encode_event(s) for s in scored[i]],
    }

    def per_event(stage: Callable[[int], object]) -> float:
        """The median over ``repeats`` passes of ``stage`` over every batch, µs per event."""
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            for i in range(len(batches)):
                stage(i)
            times.append((time.perf_counter() - start) / count * 1e6)
        return statistics.median(times)

    medians = {name: per_event(stage) for name, stage in stages.items()}
    medians["score_events"] = max(0.0, medians["score_events"] - medians["predict"])
    core = {f"core_{name}_us_per_event": round(value, 3) for name, value in medians.items()}
    core["core_us_per_event"] = round(sum(medians.values()), 3)
    if champion.walker is not None:  # the baseline of the walk: signed node indices
        signed = champion.walker.with_signed_indices()
        signed.predict_proba(matrices[0])  # compiled for int64 indices before the clock starts
        baseline = per_event(lambda i: signed.predict_proba(matrices[i]))
        core["core_predict_signed_indices_us_per_event"] = round(baseline, 3)
        core["core_predict_speedup_vs_signed_indices"] = round(baseline / medians["predict"], 2)
    return core


def pipeline_name(base: str, client: str) -> str:
    """``scorer`` on kafka-python, ``scorer (librdkafka)`` on confluent-kafka."""
    return base if client == "kafka-python" else f"{base} ({FAST})"


def on_client(settings: Settings, client: str) -> Settings:
    return settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"client": client})})


def _rounds(
    settings: Settings,
    count: int,
    naive_count: int,
    repeats: int,
    observers_factory: Callable[[Settings], Sequence[BatchObserver]] | None,
    echo: Callable[[str], None],
    compiled: bool = True,
    exactly_once: bool = False,
    clients: Sequence[str] = CLIENTS,
) -> dict[str, list[Measurement]]:
    """``repeats`` rounds of every pipeline over the preloaded topic, by pipeline name (the
    naive loop through the compiled walker only for a model it serves: ``compiled``; the
    exactly-once scorer with ``exactly_once``), on each of ``clients``, whose order
    alternates between rounds."""
    runs: dict[str, list[Measurement]] = {}
    measure_pair: dict[str, Callable[..., Measurement]] = {
        "passthrough": measure_passthrough,
        "scorer": measure_scorer,
    }
    for repeat in range(repeats):
        for client in clients if repeat % 2 == 0 else list(reversed(clients)):
            on = on_client(settings, client)
            # The pair whose ratio is taken runs back to back, in alternating order, so a
            # machine that speeds up or slows down within a round favours neither.
            pair = ["passthrough", "scorer"] if repeat % 2 == 0 else ["scorer", "passthrough"]
            for base in pair:
                name = pipeline_name(base, client)
                runs.setdefault(name, []).append(measure_pair[base](on, count, label=f"{name}-{repeat}"))
            if observers_factory is not None:
                name = pipeline_name("scorer+evidence", client)
                runs.setdefault(name, []).append(
                    measure_scorer(on, count, observers_factory, label=f"evidence-{client}-{repeat}")
                )
            if exactly_once:
                transactional = on.model_copy(
                    update={"scoring": on.scoring.model_copy(update={"delivery": "exactly_once"})}
                )
                runs.setdefault(pipeline_name(EXACTLY_ONCE, client), []).append(
                    measure_scorer(transactional, count, observers_factory, label=f"eos-{client}-{repeat}")
                )
        runs.setdefault("naive", []).append(
            measure_naive(settings, min(naive_count, count), label=f"naive-{repeat}")
        )
        if compiled:
            runs.setdefault("naive (compiled)", []).append(
                measure_naive(
                    settings, min(10 * naive_count, count), label=f"naive-compiled-{repeat}", compiled=True
                )
            )
        echo(
            f"  round {repeat + 1}: "
            + ", ".join(f"{name} {measurements[-1].eps:,.0f}/s" for name, measurements in runs.items())
        )
    return runs


def _median_ratio(runs: dict[str, list[Measurement]], numerator: str, denominator: str) -> float:
    """The median of the rounds' ratios of two pipelines' rates (the machine's speed drifts
    between rounds; within one, the two ran minutes apart at most)."""
    return round(
        statistics.median(a.eps / b.eps for a, b in zip(runs[numerator], runs[denominator], strict=True)), 3
    )


def _fast_summary(runs: dict[str, list[Measurement]], eps: dict[str, float]) -> dict[str, Any]:
    """The librdkafka figures, and their ratios to its passthrough and to kafka-python."""
    monitored = "scorer+evidence" if "scorer+evidence" in runs else "scorer"
    fast = pipeline_name(monitored, FAST_CLIENT)
    summary: dict[str, Any] = {
        "fast_client": FAST_CLIENT,
        "fast_passthrough_eps": round(eps[pipeline_name("passthrough", FAST_CLIENT)], 1),
        "fast_pipeline_eps": round(eps[pipeline_name("scorer", FAST_CLIENT)], 1),
        "fast_monitored_pipeline": fast,
        "fast_monitored_eps": round(eps[fast], 1),
        # Goal >= 0.8: the scorer with monitoring against the same client's passthrough.
        "fast_monitored_vs_fast_passthrough": _median_ratio(
            runs, fast, pipeline_name("passthrough", FAST_CLIENT)
        ),
        "fast_scorer_vs_fast_passthrough": _median_ratio(
            runs, pipeline_name("scorer", FAST_CLIENT), pipeline_name("passthrough", FAST_CLIENT)
        ),
        # Goal >= 3: against kafka-python's scorer with monitoring.
        "fast_monitored_vs_kafka_python_monitored": _median_ratio(runs, fast, monitored),
        "fast_passthrough_vs_kafka_python_passthrough": _median_ratio(
            runs, pipeline_name("passthrough", FAST_CLIENT), "passthrough"
        ),
    }
    if pipeline_name(EXACTLY_ONCE, FAST_CLIENT) in runs:
        summary["fast_exactly_once_eps"] = round(eps[pipeline_name(EXACTLY_ONCE, FAST_CLIENT)], 1)
        summary["fast_exactly_once_ratio_of_rounds"] = _median_ratio(
            runs, pipeline_name(EXACTLY_ONCE, FAST_CLIENT), fast
        )
    return summary


def _throughput_summary(runs: dict[str, list[Measurement]], eps: dict[str, float]) -> dict[str, Any]:
    # Each round runs the passthrough and the scorer back to back; the machine's speed drifts
    # between rounds (a shared 2-core VM), so the ratio is taken within each round.
    return {
        "pipeline_eps": round(eps["scorer"], 1),
        "passthrough_eps": round(eps["passthrough"], 1),
        "naive_eps": round(eps["naive"], 1),
        "ratio_vs_passthrough": _median_ratio(runs, "scorer", "passthrough"),
        "ratio_of_medians": round(eps["scorer"] / eps["passthrough"], 3),
        "speedup_vs_naive": round(eps["scorer"] / eps["naive"], 1),
        "naive_compiled_eps": round(eps["naive (compiled)"], 1) if "naive (compiled)" in eps else None,
        "speedup_vs_naive_compiled": round(eps["scorer"] / eps["naive (compiled)"], 1)
        if "naive (compiled)" in eps
        else None,
    }


def _latency_summary(run: LatencyRun, pipeline: str, rate: float) -> dict[str, Any]:
    latencies = run.latencies_ms
    return {
        "latency_pipeline": pipeline,
        "offered_rate_eps": round(rate, 1),
        "achieved_rate_eps": round(run.achieved_rate, 1),
        "load_generator": run.load_generator,
        "latency_samples": len(latencies),
        "p50_latency_ms": round(_percentile(latencies, 50), 1),
        "p99_latency_ms": round(_percentile(latencies, 99), 1),
        "max_latency_ms": round(max(latencies), 1) if latencies else float("nan"),
    }


def _print_summary(summary: dict[str, Any], eps: dict[str, float], echo: Callable[[str], None]) -> None:
    """The table of medians, the ratios, the latency line, then the JSON summary (last)."""
    echo("")
    echo(f"{'pipeline':30} {'events/s (median)':>18} {'vs its passthrough':>19}")
    for name, value in eps.items():
        passthrough = eps[
            pipeline_name("passthrough", FAST_CLIENT if f"({FAST})" in name else "kafka-python")
        ]
        echo(f"{name:30} {value:18,.0f} {value / passthrough:19.3f}")
    echo(
        f"scorer vs passthrough, median of the {summary['repeats']} rounds' ratios: "
        f"{summary['ratio_vs_passthrough']}"
    )
    echo(
        f"speedup of the scorer over the naive loop: {summary['speedup_vs_naive']}x "
        "(the model's own predict_proba per message)"
        + (
            f", {summary['speedup_vs_naive_compiled']}x (the compiled tree walker per message)"
            if summary["speedup_vs_naive_compiled"] is not None
            else ""
        )
    )
    if "exactly_once_eps" in summary:
        echo(
            f"exactly-once vs at-least-once ({'with' if 'evidence_eps' in summary else 'without'} the "
            f"evidence), median of the rounds' ratios: {summary['exactly_once_ratio_of_rounds']}"
        )
    echo(
        f"{summary['fast_monitored_pipeline']} (medians of the rounds' ratios): "
        f"{summary['fast_monitored_vs_fast_passthrough']} of its passthrough (goal 0.8), "
        f"{summary['fast_monitored_vs_kafka_python_monitored']}x kafka-python's (goal 3); "
        f"passthrough: librdkafka {summary['fast_passthrough_vs_kafka_python_passthrough']}x kafka-python"
    )
    if "fast_exactly_once_eps" in summary:
        echo(f"exactly-once on librdkafka vs at-least-once: {summary['fast_exactly_once_ratio_of_rounds']}")
    stages = ", ".join(
        f"{name} {summary[f'core_{name}_us_per_event']}"
        for name in ("decode", "model_input", "predict", "score_events", "encode_scores")
    )
    if "core_predict_signed_indices_us_per_event" in summary:
        stages += f" (with signed node indices, the walk before: {summary['core_predict_signed_indices_us_per_event']})"
    echo(
        f"the scorer's own work without Kafka: {summary['core_us_per_event']} us per event ({stages}); "
        f"librdkafka's passthrough moves a record in {summary['fast_passthrough_us_per_event']} us, so no "
        f"scorer doing that work can pass {summary['fast_ceiling_vs_fast_passthrough']} of it"
    )
    echo(
        f"model: {summary['model']}; its input ({summary['model_input']}) costs "
        f"{summary['model_input_us_per_event']} us per event to build, driftloop's float matrix "
        f"{summary['matrix_us_per_event']} us"
    )
    echo(
        f"end-to-end latency ({summary['latency_pipeline']}) at {summary['offered_rate_eps']:,.0f}/s "
        f"offered ({summary['achieved_rate_eps']:,.0f}/s achieved by {summary['load_generator']}): "
        f"p50 {summary['p50_latency_ms']} ms, p99 {summary['p99_latency_ms']} ms, "
        f"max {summary['max_latency_ms']} ms ({summary['latency_samples']} samples)"
    )
    echo(
        f"end-to-end latency ({summary['fast_latency_pipeline']}) at {summary['fast_offered_rate_eps']:,.0f}/s "
        f"offered: p50 {summary['fast_p50_latency_ms']} ms, p99 {summary['fast_p99_latency_ms']} ms "
        f"(goal 100), max {summary['fast_max_latency_ms']} ms ({summary['fast_latency_samples']} samples)"
    )
    echo(json.dumps(summary))
