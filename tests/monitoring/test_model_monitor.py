"""The pooled monitor and its evidence, without Kafka: summaries that add up, merged once in
event time, one alarm per drift whatever the partition count."""

from __future__ import annotations

import itertools
import pickle
import zlib
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pytest

from streaming.config import DEFAULT_FEATURES, MonitoringSettings
from streaming.events import EventCodec, Evidence
from streaming.features import FeatureSpec
from streaming.models.training import TrainedModel, TrainingParams, train_classifier
from streaming.monitoring.evidence import BinLayout, Summarizer
from streaming.monitoring.merging import EventTimeMerger
from streaming.monitoring.model_monitor import ModelAlarm, ModelMonitor, OutcomeChunk
from streaming.simulation.generator import SCENARIOS, TransactionSimulator

SPEC = FeatureSpec.from_mapping(DEFAULT_FEATURES)


@cache
def model() -> TrainedModel:
    return train_classifier(
        TransactionSimulator(seed=7).generate(6000), SPEC, params=TrainingParams(max_iter=20)
    )


def layout() -> BinLayout:
    reference = model().reference
    assert reference is not None
    return BinLayout.of(reference, SPEC)


def account_partition(account_id: str, partitions: int) -> int:
    return zlib.crc32(account_id.encode()) % partitions


class Feed:
    """A simulated stream split over ``partitions`` by account (as Kafka keys it), in
    micro-batches: evidence and (optionally) outcomes for a monitor."""

    def __init__(self, partitions: int, batch: int = 300) -> None:
        self.partitions = partitions
        self.batch = batch
        self.summarizer = Summarizer(layout(), "fraud", "v1", "transactions", "test")
        self.offsets: dict[int, int] = {}

    def evidence(self, frame: pd.DataFrame) -> list[Evidence]:
        m = model()
        scores = m.predict_proba(m.encoder.frame_matrix(frame))
        part = frame["account_id"].map(lambda a: account_partition(a, self.partitions)).to_numpy()
        offsets = np.empty(len(frame), dtype=np.int64)
        for i, p in enumerate(part):
            offsets[i] = self.offsets.get(p, 0)
            self.offsets[p] = offsets[i] + 1
        times = (frame["event_time"].astype("int64") // 1_000_000).to_numpy()
        out: list[Evidence] = []
        for begin in range(0, len(frame), self.batch):
            rows = slice(begin, begin + self.batch)
            out += self.summarizer.summarize(
                partitions=part[rows],
                offsets=offsets[rows],
                timestamps=times[rows],
                numeric=frame[list(SPEC.numeric)].to_numpy(dtype=np.float64)[rows],
                categorical=[frame[c].astype(str).tolist()[rows] for c in SPEC.categorical],
                scores=scores[rows],
                decisions=scores[rows] >= 0.5,
            )
        return out


def fresh_monitor(partitions: int | None = None, **settings: Any) -> ModelMonitor:
    monitor = ModelMonitor(MonitoringSettings(**settings), "fraud", partitions=partitions)
    monitor.start("v1", layout())
    return monitor


def run(monitor: ModelMonitor, records: list[Evidence]) -> list[ModelAlarm]:
    alarms = []
    for record in records:
        monitor.add_evidence(record)
        alarms += monitor.advance()
    return alarms + monitor.advance(flush=True)


def opened(alarms: list[ModelAlarm]) -> list[ModelAlarm]:
    return [a for a in alarms if a.status == "opened"]


def test_evidence_adds_up_whatever_the_batches() -> None:
    frame = TransactionSimulator(seed=1).generate(1200)
    whole = Feed(1, batch=1200).evidence(frame)
    pieces = Feed(1, batch=100).evidence(frame)
    assert len(whole) == 12 and len(pieces) == 12  # at most 100 rows per record
    for field in ("numeric", "scores", "categorical"):
        a = np.array([np.concatenate([np.ravel(x) for x in getattr(e, field)]) for e in whole]).sum(axis=0)
        b = np.array([np.concatenate([np.ravel(x) for x in getattr(e, field)]) for e in pieces]).sum(axis=0)
        assert (a == b).all(), field
    assert sum(e.rows for e in pieces) == 1200
    codec = EventCodec(Evidence)
    assert codec.decode(codec.encode(pieces[0])) == pieces[0]


@pytest.mark.parametrize("partitions", [1, 12, 48])
def test_one_monitor_is_quiet_on_the_baseline_and_raises_one_alarm_on_a_covariate_shift(
    partitions: int,
) -> None:
    simulator = TransactionSimulator(seed=8)
    feed = Feed(partitions)
    monitor = fresh_monitor(partitions)
    baseline = simulator.generate(15_000)
    assert run(monitor, feed.evidence(baseline)) == []
    shifted = simulator.generate(8000, SCENARIOS["covariate"])
    alarms = run(monitor, feed.evidence(shifted))
    assert len(opened(alarms)) == 1, [(a.status, a.signal, a.detection.detector, a.partition) for a in alarms]
    assert {a.status for a in alarms} <= {"opened", "ongoing"}, "the drift lasts to the end"
    alarm = alarms[0]
    assert alarm.signal in ("feature", "prediction") and alarm.partition is None
    assert alarm.rows_seen - 15_000 < 1500, "detection must not slow down with the partition count"
    assert alarm.scope == sorted(monitor.partitions_seen) and alarm.partitions_seen == partitions
    assert alarm.explanation[0].psi >= alarm.explanation[-1].psi
    event = alarm.to_event("fraud")
    assert event.event_id == alarm.to_event("fraud").event_id  # deterministic for replays
    assert event.event_time is not None and event.event_time >= shifted["event_time"].iloc[0]


def test_a_shift_in_one_partitions_traffic_is_found_scoped_to_it_and_raised_once() -> None:
    simulator = TransactionSimulator(seed=9)
    feed = Feed(12)
    monitor = fresh_monitor(12)
    run(monitor, feed.evidence(simulator.generate(24_000)))
    normal, shifted = simulator.generate(24_000), simulator.generate(24_000, SCENARIOS["covariate"])
    shifted["event_time"] -= shifted["event_time"].iloc[0] - normal["event_time"].iloc[0]  # at the same time
    mixed = pd.concat(
        [
            normal[normal["account_id"].map(lambda a: account_partition(a, 12)) != 5],
            shifted[shifted["account_id"].map(lambda a: account_partition(a, 12)) == 5],
        ]
    ).sort_values("event_time")
    alarms = opened(run(monitor, feed.evidence(mixed)))
    assert alarms, "a drift in one partition of twelve went unseen"
    assert alarms[0].scope == [5]
    # Partition 5's own window test comes round every ~12,000 pooled rows and rejects each
    # time: the episode stays open between its windows, so the drift is one event, not one
    # per window.
    windows = [d for d in monitor.detections if d.detector == "chi_square"]
    assert len(windows) >= 2 and len(alarms) == 1, [(a.signal, a.rows_seen) for a in alarms]


def test_a_significant_but_immaterial_shift_is_no_drift() -> None:
    # The model's reference comes from one simulated customer base (seed 7), the stream from
    # another (seed 12): on 1,000 rows the chi-square test of hour_of_day rejects (p < 0.001)
    # a shift of PSI 0.07, below the 0.1 that counts as a moderate shift.
    records = Feed(1).evidence(TransactionSimulator(seed=12).generate(40_000))
    without_floor = opened(run(fresh_monitor(1, window_min_psi=0.0), records))
    assert [(a.detection.detector, a.detection.feature) for a in without_floor] == [
        ("chi_square", "hour_of_day")
    ]
    assert (without_floor[0].detection.effect or 0) < 0.1
    assert run(fresh_monitor(1), records) == []


def test_replayed_evidence_is_not_counted_twice() -> None:
    frame = TransactionSimulator(seed=10).generate(3000)
    monitor = fresh_monitor(1)
    first = Feed(1, batch=250).evidence(frame)
    run(monitor, first[:8])  # rows 0..699
    assert monitor.rows == 700
    again = Feed(1, batch=330).evidence(frame)  # a restarted scorer, other batch boundaries
    outcomes = [monitor.add_evidence(e) for e in again]
    monitor.advance(flush=True)
    # Wholly counted already: 0-99 ... 630-659; straddling the mark: 660-759 (its 60 new rows lost).
    assert outcomes.count("duplicate") == 8 and outcomes.count("overlap") == 1
    assert monitor.ledger.overlap_rows == 60
    assert monitor.rows + monitor.ledger.overlap_rows == 3000


def test_evidence_is_merged_in_event_time_and_what_comes_too_late_is_counted() -> None:
    merger: EventTimeMerger[str] = EventTimeMerger(lateness_ms=1000, partitions=2, idle_s=5.0)
    merger.add(0, 100, "p0@100", now=0.0)
    merger.add(0, 200, "p0@200", now=0.1)
    assert merger.release(now=0.2) == [], "partition 1 has not reported yet"
    merger.add(1, 150, "p1@150", now=0.3)
    assert merger.release(now=0.4) == ["p0@100", "p1@150"]
    assert merger.release(now=10.0) == ["p0@200"], "both partitions idle: everything goes"
    merger.add(1, 120, "late", now=10.1)
    assert merger.release(now=10.2) == ["late"] and merger.late == 1


def test_a_restored_monitor_detects_exactly_like_the_uninterrupted_one() -> None:
    simulator = TransactionSimulator(seed=11)
    feed = Feed(4)
    before, after = (
        feed.evidence(simulator.generate(10_000)),
        feed.evidence(simulator.generate(6000, SCENARIOS["covariate"])),
    )
    monitor = fresh_monitor(4)
    run(monitor, before)
    restored = pickle.loads(pickle.dumps(monitor))
    expected = [(a.status, a.signal, a.rows_seen, a.scope) for a in run(monitor, after)]
    assert expected
    assert [(a.status, a.signal, a.rows_seen, a.scope) for a in run(restored, after)] == expected


def test_the_labels_show_a_fraud_wave_and_other_models_outcomes_are_skipped() -> None:
    monitor = fresh_monitor(2)
    rng = np.random.default_rng(0)

    def chunk(start_ms: int, n: int, rate: float, version: str = "v1") -> OutcomeChunk:
        labels = (rng.random(n) < rate).astype(np.int64)
        return OutcomeChunk(
            partition=start_ms % 2,
            label_times_ms=np.arange(start_ms, start_ms + n),
            scores=np.full(n, 0.1),
            decisions=np.zeros(n, dtype=bool),
            labels=labels,
            model_version=version,
        )

    for i in range(10):
        monitor.add_outcomes(chunk(i * 1000, 500, 0.02))
    monitor.add_outcomes(chunk(20_000, 500, 0.5, version="v0"))
    assert monitor.advance(flush=True) == []
    assert monitor.skipped.get("other_model_outcomes") == 1
    for i in range(10):
        monitor.add_outcomes(chunk(30_000 + i * 1000, 300, 0.2))
    alarms = monitor.advance(flush=True)
    assert [a.signal for a in alarms][:1] in (["label"], ["error"])
    assert monitor.labelled == 8000


def test_a_persisting_drift_is_reported_ongoing_with_every_column_that_moved_then_resolved() -> None:
    simulator = TransactionSimulator(seed=12)
    feed = Feed(4)
    monitor = fresh_monitor(4, ongoing_every_s=3600)  # one row a second: an hour is 3,600 rows
    run(monitor, feed.evidence(simulator.generate(10_000)))
    during = run(monitor, feed.evidence(simulator.generate(14_000, SCENARIOS["covariate"])))
    after = run(monitor, feed.evidence(simulator.generate(30_000)))
    statuses = [a.status for a in during + after]
    assert statuses[0] == "opened" and statuses.count("opened") == 1, statuses
    assert 2 <= [a.status for a in during].count("ongoing") <= 14_000 // 3600 + 1, statuses
    assert statuses[-1] == "resolved" and statuses.count("resolved") == 1, statuses
    events = [a.to_event("fraud") for a in during + after]
    assert len({e.episode_id for e in events}) == 1 and events[0].episode_id == events[0].event_id
    assert len({e.event_id for e in events}) == len(events)
    ongoing = [e for e in events if e.status == "ongoing"]
    times = [e.event_time for e in ongoing]
    assert all((b - a).total_seconds() >= 3600 for a, b in itertools.pairwise(times))
    # Spend x1.8, more online, holiday shopping: every column that moved is named, with its
    # effect and test statistic, largest first.
    moved = [s for s in ongoing[-1].explanation if s.moved]
    assert {"amount", "amount_to_avg_ratio", "merchant_category", "channel"} <= {s.column for s in moved}, (
        moved
    )
    assert [s.psi for s in moved] == sorted((s.psi for s in moved), reverse=True)
    assert all(s.psi >= 0.1 and s.statistic is not None for s in moved if s.partition is None)
    resolved = events[-1]
    assert resolved.resolution == "back_in_band" and resolved.severity == "low"
    assert resolved.event_time is not None and resolved.event_time > ongoing[-1].event_time


def test_a_new_model_taking_over_resolves_the_open_episode() -> None:
    simulator = TransactionSimulator(seed=13)
    feed = Feed(2)
    monitor = fresh_monitor(2)
    run(monitor, feed.evidence(simulator.generate(10_000)))
    assert opened(run(monitor, feed.evidence(simulator.generate(3000, SCENARIOS["covariate"]))))
    assert monitor.episode is not None
    [resolved] = monitor.start("v2", layout())
    assert (resolved.status, resolved.resolution) == ("resolved", "new_model")
    assert monitor.episode is None


def test_a_rate_still_out_of_its_band_keeps_the_episode_open_until_it_is_back() -> None:
    monitor = fresh_monitor(1, ongoing_every_s=5)
    rng = np.random.default_rng(1)
    simulator, feed = TransactionSimulator(seed=14), Feed(1)

    def labels(n: int, rate: float) -> list[ModelAlarm]:
        """``n`` transactions scored, and ``n`` labels (of earlier ones) at ``rate`` fraud."""
        frame = simulator.generate(n)
        for record in feed.evidence(frame):
            monitor.add_evidence(record)
        time = int(frame["event_time"].iloc[0].timestamp() * 1000)
        monitor.add_outcomes(
            OutcomeChunk(
                partition=0,
                label_times_ms=np.arange(time, time + n),
                scores=np.full(n, 0.1),
                decisions=np.zeros(n, dtype=bool),
                labels=(rng.random(n) < rate).astype(np.int64),
                model_version="v1",
            )
        )
        return monitor.advance(flush=True)

    reference = layout().reference.positive_rate
    quiet = [a for _ in range(20) for a in labels(500, reference)]
    assert quiet == []
    wave = [a for _ in range(40) for a in labels(500, 0.2)]  # a fraud wave that lasts
    assert [a.status for a in wave][:1] == ["opened"] and "resolved" not in {a.status for a in wave}
    assert {a.status for a in wave[1:]} == {"ongoing"}, "out of its band, it is re-reported"
    back = [a for _ in range(40) for a in labels(500, reference)]
    assert [a.status for a in back if a.status != "ongoing"] == ["resolved"], [a.status for a in back]
