"""`driftloop bench labels`: the outcome join at production shape, against the old in-memory
joiner, on the real broker, in one run.

1. **Preload** fresh 4-partition topics: N transactions' scores spread over D days of event
   time (keyed by transaction_id, in event-time order, as the scorer writes them) and their
   labels, each 1–14 days later (log-normal, median 3 days, clipped), in label-time order
   as a chargeback feed delivers them. Both topics are read from the start, so the join
   sees days of labels at once: labels that overtake their scores wait, and pause their
   partition when the waiting room is full (what a join catching up after an outage does).
2. **The join** (:class:`~streaming.outcomes.service.JoinService`, default settings) in a
   fresh process, so its memory is its own: its resident set size (RSS) is sampled against
   its progress, and every checkpoint's duration recorded; its outcomes are counted on the
   ``outcomes`` topic at the end.
3. **The baseline**: the in-memory joiner the scorer used before (100,000 predictions per
   partition, 7 days' TTL, its defaults), in a fresh process over the same topics. Labels
   wait in memory until their partition's scores have passed their label time (the old
   label gate, which released the oldest beyond 200,000 held), and each checkpoint pickles
   every partition's joiner, as the old scorer's state snapshot did once a second. It
   writes no outcomes (the old joiner fed the monitors in process).
4. **The scorer's rate** on this machine in the same run (``ScoringService`` over a
   preloaded transactions topic), the join's goal.

Throughput is input records (scores and labels) per second from the first record to the
checkpoint that covered the last; transactions per second is that over two. The last line
printed is one JSON object with the figures.
"""

from __future__ import annotations

import heapq
import json
import multiprocessing
import os
import pickle
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from streaming.benchmarks.legacy_joiner import LabelJoiner
from streaming.benchmarks.throughput import (
    LoadProducer,
    bench_settings,
    measure_scorer,
    preload,
)
from streaming.config import Settings
from streaming.control.updates import champion_update
from streaming.errors import BenchmarkError
from streaming.events import EventCodec, Label, Score, encode_event, label_type
from streaming.kafka.clients import BATCH_FETCH_OPTIONS, ensure_topics, wait_for_topic
from streaming.kafka.clients import resume as resume_partitions
from streaming.kafka.publishing import publish_model_update
from streaming.kafka.reading import end_offsets
from streaming.kafka.transport import make_consumer
from streaming.models.first_champion import train_and_register
from streaming.models.training import TrainingParams
from streaming.outcomes.service import JoinService
from streaming.simulation.delays import LabelDelay
from streaming.simulation.generator import TransactionSimulator, leaning_score
from streaming.topics import topic_catalogue

PARTITIONS = 4
DAY_S = 86_400.0
DELAY = LabelDelay(median_s=3 * DAY_S, spread=0.6, max_s=14 * DAY_S)
MIN_DELAY_S = 1 * DAY_S
_CHUNK = 100_000
_SAMPLE_EVERY_S = 0.05


def label_delays(rng: np.random.Generator, n: int) -> np.ndarray:
    """Seconds of event time from each transaction to its label: 1 to 14 days, median 3."""
    return np.maximum(DELAY.draw(rng, n), MIN_DELAY_S)


# -- preload --------------------------------------------------------------------------------


@dataclass
class Preloaded:
    transactions: int
    days: float
    delays_s: np.ndarray


def preload_scores_and_labels(
    settings: Settings, transactions: int, days: float, seed: int = 11
) -> Preloaded:
    """Scores in event-time order, then the labels in label-time order (see the module)."""
    simulator = TransactionSimulator(seed=seed, mean_gap_s=days * DAY_S / transactions)
    rng = np.random.default_rng(seed + 1)
    producer = LoadProducer(settings.kafka)
    topics = settings.topics
    label_ids: list[str] = []
    label_values: list[np.ndarray] = []
    label_times: list[np.ndarray] = []  # epoch seconds
    delays: list[np.ndarray] = []
    first = last = 0.0
    try:
        done = 0
        while done < transactions:
            frame = simulator.generate(min(_CHUNK, transactions - done))
            times = frame["event_time"].to_numpy(dtype="datetime64[ms]").astype(np.int64) / 1000.0
            first = times[0] if done == 0 else first
            last = times[-1]
            ids = frame["transaction_id"].tolist()
            labels = frame["label"].to_numpy(dtype=np.int64)
            for score in _scores(ids, frame["account_id"].tolist(), frame["event_time"], labels, done):
                producer.send(topics.scores, key=score.transaction_id.encode(), value=encode_event(score))
            late = label_delays(rng, len(frame))
            label_ids += ids
            label_values.append(labels)
            label_times.append(times + late)
            delays.append(late)
            done += len(frame)
        at = np.concatenate(label_times)
        values = np.concatenate(label_values)
        for i in np.argsort(at, kind="stable"):
            label = Label(
                transaction_id=label_ids[i],
                label=int(values[i]),
                label_time=_datetime(float(at[i])),
            )
            producer.send(topics.labels, key=label.transaction_id.encode(), value=encode_event(label))
    finally:
        producer.close()
    return Preloaded(transactions, (last - first) / DAY_S, np.concatenate(delays))


def _scores(ids: list[str], accounts: list[str], times: Any, labels: np.ndarray, offset: int) -> Any:
    """A champion's scores that lean towards the label (the join does not look at them)."""
    for i, (txn, account, at, label) in enumerate(
        zip(ids, accounts, times.dt.to_pydatetime(), labels, strict=True)
    ):
        score = leaning_score(int(label), offset + i)
        yield Score(
            transaction_id=txn,
            account_id=account,
            model_name="bench",
            model_version="1",
            role="champion",
            score=score,
            threshold=0.5,
            decision=score >= 0.5,
            event_time=at,
            scored_at=at,
            latency_ms=1.0,
        )


def _datetime(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


# -- what each child process measures -------------------------------------------------------


@dataclass
class Run:
    """What one joiner did, measured in its own process."""

    inputs: int
    seconds: float
    rss: list[tuple[int, int]]  # (inputs seen, resident bytes)
    checkpoints: list[tuple[int, float]]  # (inputs seen, seconds)
    counts: dict[str, Any] = field(default_factory=dict)
    store_bytes: int = 0

    @property
    def eps(self) -> float:
        return self.inputs / self.seconds if self.seconds > 0 else 0.0

    def rss_at(self, share: float) -> int:
        """RSS at the first sample with ``share`` of the inputs seen (the last one for 1.0)."""
        if share >= 1.0:
            return self.rss[-1][1]
        return next((rss for seen, rss in self.rss if seen >= share * self.inputs), self.rss[-1][1])

    def checkpoint_seconds(self, lo: float, hi: float) -> dict[str, float]:
        """p50 and p99 of the checkpoints taken between ``lo`` and ``hi`` of the inputs."""
        chosen = [s for seen, s in self.checkpoints if lo * self.inputs <= seen <= hi * self.inputs]
        if not chosen:
            return {"p50": float("nan"), "p99": float("nan"), "n": 0}
        return {
            "p50": float(np.percentile(chosen, 50)),
            "p99": float(np.percentile(chosen, 99)),
            "n": len(chosen),
        }


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _report_back(measure: Callable[..., Run], *args: Any) -> None:
    """In the child: ``measure(*args[:-1])``, its :class:`Run` (or the error) sent down the
    pipe that is the last argument."""
    *measure_args, out = args
    try:
        out.send(measure(*measure_args))
    except BaseException as exc:
        out.send(exc)


def _measure_join(settings: Settings, inputs: int, timeout_s: float) -> Run:
    checkpoints: list[tuple[int, float, float]] = []  # (inputs seen, seconds, ended at)

    def seen() -> int:
        return service.stats.scores + service.stats.labels

    service = JoinService(settings, on_checkpoint=lambda s: checkpoints.append((seen(), s, time.monotonic())))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            service.run(install_signal_handlers=False)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, name="join", daemon=True)
    thread.start()
    rss: list[tuple[int, int]] = []
    first_at = None
    deadline = time.monotonic() + timeout_s
    while thread.is_alive() and time.monotonic() < deadline:
        now = seen()
        if first_at is None and now:
            first_at = time.monotonic()
        rss.append((now, _rss_bytes()))
        if now >= inputs and checkpoints and checkpoints[-1][0] >= inputs:
            break
        time.sleep(_SAMPLE_EVERY_S)
    service.stop()
    thread.join(120)
    if errors:
        raise errors[0]
    if seen() < inputs or first_at is None:
        raise BenchmarkError(f"the join read {seen():,} of {inputs:,} records within {timeout_s:.0f}s")
    done_at = next(at for n, _, at in checkpoints if n >= inputs)
    stats = service.stats
    state = settings.join_state_dir
    return Run(
        inputs=inputs,
        seconds=done_at - first_at,
        rss=rss,
        checkpoints=[(n, s) for n, s, _ in checkpoints],
        counts={
            "outcomes": stats.outcomes,
            "refused": dict(stats.refused),
            "checkpoints": stats.checkpoints,
        },
        store_bytes=sum(f.stat().st_size for f in state.rglob("*") if f.is_file()),
    )


class _GatedJoiner:
    """One partition of the old scorer's label path: the gate holding labels until the
    partition's scores pass their label time (oldest released beyond ``max_held``), and the
    in-memory joiner. ``score_time`` and ``label_time`` are how far each stream has been
    read, in event time."""

    def __init__(self, max_entries: int, ttl_s: float, max_held: int) -> None:
        self.joiner = LabelJoiner(max_entries=max_entries, ttl=ttl_s)
        self._held: list[tuple[float, str, int]] = []  # heap on label time
        self._max_held = max_held
        self.score_time = float("-inf")
        self.label_time = float("-inf")

    def scores(self, scores: list[Score]) -> None:
        times = [s.event_time.timestamp() for s in scores]
        self.joiner.add(
            [s.transaction_id for s in scores], [s.score for s in scores], [s.decision for s in scores], times
        )
        self.score_time = max(self.score_time, max(times))
        self._release(lambda at: at <= self.score_time)

    def labels(self, labels: list[Label]) -> None:
        for label in labels:
            heapq.heappush(self._held, (label.label_time.timestamp(), label.transaction_id, label.label))
        if labels:
            self.label_time = max(self.label_time, labels[-1].label_time.timestamp())
        self._release(lambda at: len(self._held) > self._max_held or at <= self.score_time)

    def release_all(self) -> None:
        self._release(lambda at: True)

    def _release(self, due: Callable[[float], bool]) -> None:
        ids: list[str] = []
        values: list[int] = []
        while self._held and due(self._held[0][0]):
            _, txn, value = heapq.heappop(self._held)
            ids.append(txn)
            values.append(value)
        if ids:
            self.joiner.match(ids, values)


def _live_order(consumer: Any, parts: dict[int, _GatedJoiner], topics: Any, left: dict[Any, int]) -> None:
    """Read each partition's scores and labels side by side in event time, as they arrive
    live (the old scorer never saw a backlog of labels days ahead of its transactions):
    pause whichever stream is ahead, unless the other has nothing left."""
    from kafka import TopicPartition

    pause: list[Any] = []
    resumed: list[Any] = []
    for p, part in parts.items():
        scores, labels = TopicPartition(topics.scores, p), TopicPartition(topics.labels, p)
        scores_ahead = part.score_time > part.label_time and left[labels] > 0
        labels_ahead = part.label_time > part.score_time and left[scores] > 0
        (pause if scores_ahead else resumed).append(scores)
        (pause if labels_ahead else resumed).append(labels)
    consumer.pause(*pause)
    resume_partitions(consumer, resumed)


def _measure_baseline(settings: Settings, inputs: int, timeout_s: float) -> Run:
    from kafka import TopicPartition

    consumer = make_consumer(
        settings.kafka, None, enable_auto_commit=False, max_poll_records=5000, **BATCH_FETCH_OPTIONS
    )
    topics = settings.topics
    score_codec = EventCodec(Score, settings.messages.max_bytes)
    label_codec = EventCodec(label_type(settings.messages.limits()), settings.messages.max_bytes)
    parts = {
        p: _GatedJoiner(100_000, 7 * DAY_S, 200_000)  # the old scorer's max_held_labels
        for p in wait_for_topic(consumer, topics.scores)
    }
    assigned = [TopicPartition(t, p) for t in (topics.scores, topics.labels) for p in parts]
    consumer.assign(assigned)
    left = dict(consumer.end_offsets(assigned))  # records each partition has still to give
    rss: list[tuple[int, int]] = []
    checkpoints: list[tuple[int, float]] = []
    seen, first_at = 0, None
    next_checkpoint = time.monotonic() + 1.0
    deadline = time.monotonic() + timeout_s
    try:
        while seen < inputs and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=200).items():
                first_at = first_at or time.monotonic()
                part = parts[tp.partition]
                if tp.topic == topics.scores:
                    part.scores([score_codec.decode(r.value) for r in records])
                else:
                    part.labels([label_codec.decode(r.value) for r in records])
                seen += len(records)
                left[tp] = left[tp] - len(records)
            _live_order(consumer, parts, topics, left)
            if time.monotonic() >= next_checkpoint:
                checkpoints.append((seen, _pickle_all(parts)))
                rss.append((seen, _rss_bytes()))
                next_checkpoint = time.monotonic() + 1.0
        for part in parts.values():  # the stream went idle: the gate lets everything go
            part.release_all()
        checkpoints.append((seen, _pickle_all(parts)))
        rss.append((seen, _rss_bytes()))
    finally:
        consumer.close(autocommit=False)
    if seen < inputs or first_at is None:
        raise BenchmarkError(f"the baseline read {seen:,} of {inputs:,} records within {timeout_s:.0f}s")
    joiners = [part.joiner for part in parts.values()]
    return Run(
        inputs=inputs,
        seconds=time.monotonic() - first_at,
        rss=rss,
        checkpoints=checkpoints,
        counts={
            "matched": sum(j.matched for j in joiners),
            "unmatched": sum(j.unmatched for j in joiners),
            "evicted": sum(j.evicted for j in joiners),
            "snapshot_bytes": sum(len(pickle.dumps(j)) for j in joiners),
        },
    )


def _pickle_all(parts: dict[int, _GatedJoiner]) -> float:
    started = time.monotonic()
    for part in parts.values():
        pickle.dumps(part.joiner)
    return time.monotonic() - started


def _in_own_process(measure: Callable[..., Run], *args: Any) -> Run:
    """``measure(*args)`` in a freshly spawned interpreter, so its RSS is its own."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe(duplex=False)
    process = context.Process(target=_report_back, args=(measure, *args, child), daemon=True)
    process.start()
    child.close()
    try:
        result = parent.recv()
    except EOFError:
        raise BenchmarkError(f"{measure.__name__} died (exit code {process.exitcode})") from None
    finally:
        process.join(60)
    if isinstance(result, BaseException):
        raise result
    return result


# -- the whole benchmark --------------------------------------------------------------------


def run_label_benchmark(
    base: Settings,
    home: Path,
    transactions: int = 2_000_000,
    days: float = 35.0,
    scorer_events: int = 100_000,
    timeout_s: float = 3600.0,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the whole benchmark; return (and print, last) the JSON summary."""
    settings = bench_settings(base, home)
    ensure_topics(settings.kafka, topic_catalogue(settings.topics, partitions=PARTITIONS))
    inputs = 2 * transactions
    echo(
        f"preloading {transactions:,} scores over {days:g} days of event time and their labels "
        f"(1-14 days late) into {PARTITIONS} partitions..."
    )
    started = time.monotonic()
    loaded = preload_scores_and_labels(settings, transactions, days)
    echo(f"  {inputs:,} records in {time.monotonic() - started:.0f}s")

    echo("the join (driftloop join, its own process)...")
    join = _in_own_process(_measure_join, settings, inputs, timeout_s)
    written = sum(end_offsets(settings.kafka, settings.topics.outcomes).values())
    echo(f"  {join.eps:,.0f} records/s, {written:,} outcomes")
    echo("the baseline (the old in-memory joiner, its own process)...")
    baseline = _in_own_process(_measure_baseline, settings, inputs, timeout_s)
    echo(f"  {baseline.eps:,.0f} records/s, {baseline.counts['matched']:,} matched")

    scorer_eps = None
    if scorer_events:
        echo(f"the scorer's rate on this machine: {scorer_events:,} transactions...")
        scorer_eps = _scorer_eps(settings, scorer_events)
        echo(f"  {scorer_eps:,.0f} transactions/s")
    summary = _summary(loaded, join, written, baseline, scorer_eps)
    _print_summary(summary, echo)
    return summary


def _scorer_eps(settings: Settings, count: int) -> float:
    manifest = train_and_register(
        settings, TransactionSimulator(seed=3).generate(20_000), params=TrainingParams()
    )
    publish_model_update(settings, champion_update(manifest))
    preload(settings, count, manifest.version)
    return measure_scorer(settings, count).eps


def _side(run: Run, matched: int, transactions: int) -> dict[str, Any]:
    start = run.checkpoint_seconds(0.0, 0.1)
    end = run.checkpoint_seconds(0.9, 1.0)
    mib = 1024 * 1024
    return {
        "matched": matched,
        "matched_pct": round(100.0 * matched / transactions, 3),
        "records_per_s": round(run.eps, 1),
        "transactions_per_s": round(run.eps / 2, 1),
        "seconds": round(run.seconds, 1),
        "rss_mib": {f"{int(s * 100)}%": round(run.rss_at(s) / mib, 1) for s in (0.1, 0.5, 1.0)},
        "rss_end_over_middle": round(run.rss_at(1.0) / run.rss_at(0.5), 3),
        "checkpoint_s": {
            "start": {k: round(v, 4) for k, v in start.items()},
            "end": {k: round(v, 4) for k, v in end.items()},
        },
        "checkpoint_end_over_start_p50": round(end["p50"] / start["p50"], 2) if start["p50"] else None,
        **run.counts,
    }


def _summary(
    loaded: Preloaded, join: Run, written: int, baseline: Run, scorer_eps: float | None
) -> dict[str, Any]:
    n = loaded.transactions
    joined = _side(join, written, n)
    joined["store_mib"] = round(join.store_bytes / (1024 * 1024), 1)
    return {
        "transactions": n,
        "event_days": round(loaded.days, 1),
        "partitions": PARTITIONS,
        "label_delay_days": {
            "min": round(float(loaded.delays_s.min()) / DAY_S, 2),
            "median": round(float(np.median(loaded.delays_s)) / DAY_S, 2),
            "p99": round(float(np.percentile(loaded.delays_s, 99)) / DAY_S, 2),
            "max": round(float(loaded.delays_s.max()) / DAY_S, 2),
        },
        "join": joined,
        "baseline": _side(baseline, baseline.counts["matched"], n),
        "scorer_transactions_per_s": None if scorer_eps is None else round(scorer_eps, 1),
        "join_over_scorer": None if not scorer_eps else round(joined["transactions_per_s"] / scorer_eps, 3),
    }


def _print_summary(summary: dict[str, Any], echo: Callable[[str], None]) -> None:
    join, base = summary["join"], summary["baseline"]
    rows = [
        ("labels matched", f"{join['matched_pct']:.3f}%", f"{base['matched_pct']:.3f}%"),
        ("records/s (scores + labels)", f"{join['records_per_s']:,.0f}", f"{base['records_per_s']:,.0f}"),
        ("transactions/s", f"{join['transactions_per_s']:,.0f}", f"{base['transactions_per_s']:,.0f}"),
        *(
            (f"RSS at {share}", f"{join['rss_mib'][share]:,.0f} MiB", f"{base['rss_mib'][share]:,.0f} MiB")
            for share in ("10%", "50%", "100%")
        ),
        ("RSS end / middle", f"{join['rss_end_over_middle']:.2f}", f"{base['rss_end_over_middle']:.2f}"),
        *(
            (
                f"checkpoint p50 / p99, {when}",
                _pair(join["checkpoint_s"][when]),
                _pair(base["checkpoint_s"][when]),
            )
            for when in ("start", "end")
        ),
        ("store on disk", f"{join['store_mib']:,.1f} MiB", "-"),
    ]
    echo(f"\n{'':32} {'join':>22} {'old joiner':>22}")
    for name, ours, theirs in rows:
        echo(f"{name:32} {ours:>22} {theirs:>22}")
    if summary["scorer_transactions_per_s"]:
        echo(
            f"the scorer on this machine: {summary['scorer_transactions_per_s']:,.0f} transactions/s "
            f"(join / scorer: {summary['join_over_scorer']:.2f})"
        )
    echo(json.dumps(summary))


def _pair(figures: dict[str, float]) -> str:
    return f"{figures['p50'] * 1000:,.1f} / {figures['p99'] * 1000:,.1f} ms"
