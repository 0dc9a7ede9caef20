"""`driftloop demo`: the whole loop in one process, on a scheduled drift, with a live view.

Brings up (or reuses) a broker, creates fresh demo topics, trains the first champion on
simulated history, then runs together: the simulator (baseline traffic, then a new fraud
pattern), the scorer with its drift monitors, the retrain trigger with the Prefect flow
(in-process), and the canary controller. It stops once the challenger is promoted or rolled
back and the stream has ended (or at ``max_seconds``), then replays the stream through the
first champion alone ("static") and writes the summary and ``report.html``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd
from kafka import TopicPartition

from streaming.config import (
    CanarySettings,
    RetrainingSettings,
    ScoringSettings,
    Settings,
    TopicNames,
    TriggerSettings,
)
from streaming.errors import DriftloopError
from streaming.events import DriftEvent, Label, ModelUpdate, Score
from streaming.kafka.clients import ensure_topics, make_consumer
from streaming.kafka.publishing import publish_model_update
from streaming.model import TrainingParams
from streaming.simulation import stream_transactions
from streaming.simulator import SCENARIOS, TransactionSimulator
from streaming.topics import topic_catalogue
from streaming.training import champion_update, open_registry, train_and_register


@dataclass(frozen=True)
class DemoPlan:
    """How much traffic, how fast, and when the fraud pattern changes."""

    scenario: str = "concept"
    history: int = 20_000
    before: int = 20_000  # transactions before the drift
    after: int = 100_000  # after it: time to detect, retrain, canary, promote, and pay off
    rate: float = 1000.0
    label_delay: int = 300
    max_seconds: float = 270.0
    seed: int = 7


SHORT = DemoPlan(before=6000, after=70_000, rate=1000.0, max_seconds=200.0)


@dataclass
class DemoRun:
    settings: Settings
    plan: DemoPlan
    started: float = field(default_factory=time.monotonic)
    onset_at: datetime | None = None
    produced: int = 0
    done_producing: bool = False
    errors: list[str] = field(default_factory=list)


def demo_settings(base: Settings, run_id: str) -> Settings:
    names = TopicNames(**{f: f"demo-{run_id}-{f.replace('_', '-')}" for f in TopicNames.model_fields})
    home = base.home / "demo" / run_id
    return base.model_copy(
        update={
            "topics": names,
            "home": home,
            "registry": base.registry.model_copy(update={"path": home / "registry"}),
            "scoring": ScoringSettings(group_id=f"demo-{run_id}-scorer", metrics_port=0, max_wait_ms=50),
            "retraining": RetrainingSettings(max_iter=60, min_rows=2000, retry_delays_s=[1.0, 2.0, 5.0]),
            "trigger": TriggerSettings(group_id=f"demo-{run_id}-trigger", cooldown_s=3600),
            "canary": CanarySettings(schedule=[10.0, 50.0, 100.0], min_labels=300, evaluate_every_s=1.0),
        }
    )


def run_demo(
    base: Settings,
    plan: DemoPlan,
    report: Path,
    stop: threading.Event,
    view: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run the demo; return the summary (also written into the report)."""
    from streaming.canary.service import CanaryService
    from streaming.monitoring.service import DriftMonitor
    from streaming.retraining.trigger import RetrainTrigger
    from streaming.scoring.service import ModelUpdateFollower, ScoringService

    run_id = uuid.uuid4().hex[:8]
    settings = demo_settings(base, run_id)
    ensure_topics(settings.kafka, topic_catalogue(settings.topics, partitions=2))
    simulator = TransactionSimulator(seed=plan.seed)
    history = simulator.generate(plan.history)
    champion = train_and_register(settings, history, params=TrainingParams(), source="demo history")
    publish_model_update(settings, champion_update(champion))
    run = DemoRun(settings, plan)
    registry = open_registry(settings)
    monitor = DriftMonitor(settings, registry)
    scorer = ScoringService(settings, registry, [monitor])
    trigger = RetrainTrigger(settings)
    canary = CanaryService(settings)
    threads = [
        threading.Thread(target=_produce, args=(run, simulator, stop), name="simulator", daemon=True),
        threading.Thread(target=_guard(run, scorer.run), name="scorer", daemon=True),
        threading.Thread(target=_guard(run, trigger.run), name="trigger", daemon=True),
        threading.Thread(target=_guard(run, canary.run), name="canary", daemon=True),
    ]
    for thread in threads:
        thread.start()
    follower = ModelUpdateFollower(settings)
    updates: list[ModelUpdate] = []
    try:
        while not stop.is_set():
            updates += follower.poll(timeout_ms=500)[0]
            finished = any(u.status in ("promoted", "rolled_back") for u in updates)
            elapsed = time.monotonic() - run.started
            if view is not None:
                view(_live(run, scorer, monitor, trigger, canary, updates, elapsed))
            if (
                run.done_producing and (finished or elapsed > plan.max_seconds * 0.8)
            ) or elapsed > plan.max_seconds:
                break
            if run.errors:
                break
    finally:
        stop.set()
        for service in (scorer, trigger, canary):
            service.stop()
        for thread in threads:
            thread.join(60)
        follower.close()
    if run.errors:
        raise DriftloopError("the demo stopped: " + "; ".join(run.errors))
    observed = observe_run(settings, champion.version)
    summary = summarize(run, observed)
    from streaming.report import write_report

    write_report(report, run, observed, summary)
    return summary


def _guard(run: DemoRun, target: Callable[..., Any]) -> Callable[[], None]:
    def guarded() -> None:
        try:
            target(install_signal_handlers=False)
        except Exception as exc:  # surfaced by run_demo
            run.errors.append(f"{type(exc).__name__}: {exc}")

    return guarded


def _produce(run: DemoRun, simulator: TransactionSimulator, stop: threading.Event) -> None:
    plan = run.plan
    try:
        for regime, count in ((SCENARIOS["baseline"], plan.before), (SCENARIOS[plan.scenario], plan.after)):
            if regime.name != "baseline":
                run.onset_at = datetime.now(UTC)
            left = count
            while left > 0 and not stop.is_set():
                chunk = min(2000, left)
                stream_transactions(
                    run.settings, simulator, chunk, regime, plan.rate, plan.label_delay, chunk=500
                )
                left -= chunk
                run.produced += chunk
    except Exception as exc:
        run.errors.append(f"simulator: {exc}")
    finally:
        run.done_producing = True


def _live(
    run: DemoRun,
    scorer: Any,
    monitor: Any,
    trigger: Any,
    canary: Any,
    updates: list[ModelUpdate],
    elapsed: float,
) -> dict[str, Any]:
    state = canary.controller.state
    return {
        "elapsed_s": elapsed,
        "produced": run.produced,
        "scored": scorer.stats.scored,
        "rate": scorer.stats.scored / max(elapsed, 1e-9),
        "lag": max(0, run.produced - scorer.stats.scored),
        "phase": "baseline" if run.onset_at is None else run.plan.scenario,
        "drift_events": monitor.events_published,
        "flow_runs": len(trigger.started),
        "champion": state.champion,
        "challenger": state.challenger,
        "canary_percent": state.percent,
        "last_update": f"{updates[-1].status} {updates[-1].version}" if updates else "",
    }


# -- the summary ---------------------------------------------------------------------------


def read_all(settings: Settings, topic: str, event_type: type[Any]) -> list[tuple[int, Any]]:
    """Every decodable event of ``topic`` with its Kafka timestamp (ms)."""
    consumer = make_consumer(settings.kafka, None, enable_auto_commit=False)
    decoder = msgspec.json.Decoder(event_type)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        out: list[tuple[int, Any]] = []
        deadline = time.monotonic() + 120
        while any(consumer.position(tp) < ends[tp] for tp in partitions) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500, max_records=10_000).values():
                for record in records:
                    try:
                        out.append((record.timestamp, decoder.decode(record.value)))
                    except msgspec.MsgspecError:
                        continue
        return out
    finally:
        consumer.close(autocommit=False)


def outcome_frame(settings: Settings, first_version: str) -> pd.DataFrame:
    """One row per scored transaction: features, label, the loop's and the static model's decision."""
    from streaming.events import transaction_type

    transactions = read_all(settings, settings.topics.transactions, transaction_type(settings.feature_spec()))
    spec = settings.feature_spec()
    rows = [
        {
            "transaction_id": t.transaction_id,
            "ts": ts,
            **dict(zip(spec.names, spec.values(t.features), strict=True)),
        }
        for ts, t in transactions
    ]
    frame = pd.DataFrame(rows)
    labels = {
        label.transaction_id: label.label for _, label in read_all(settings, settings.topics.labels, Label)
    }
    decided: dict[str, tuple[bool, str]] = {}
    for _, score in read_all(settings, settings.topics.scores, Score):
        decided[score.transaction_id] = (score.decision, score.model_version)
    frame["label"] = frame["transaction_id"].map(labels)
    frame["loop"] = frame["transaction_id"].map(lambda t: decided.get(t, (None, None))[0])
    frame["loop_version"] = frame["transaction_id"].map(lambda t: decided.get(t, (None, None))[1])
    frame = frame.dropna(subset=["label", "loop"]).reset_index(drop=True)
    static = open_registry(settings).load(settings.model_name, first_version)
    frame["static"] = static.predict_proba(static.encoder.frame_matrix(frame)) >= float(
        static.manifest.threshold
    )
    frame["label"] = frame["label"].astype(int)
    frame["loop"] = frame["loop"].astype(bool)
    return frame.sort_values("ts", kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class ObservedRun:
    """What the run left on its topics, read once for the summary and the report."""

    outcomes: pd.DataFrame  # see outcome_frame
    drift_events: list[DriftEvent]
    updates: list[ModelUpdate]


def observe_run(settings: Settings, first_version: str) -> ObservedRun:
    return ObservedRun(
        outcome_frame(settings, first_version),
        [e for _, e in read_all(settings, settings.topics.drift_events, DriftEvent)],
        [u for _, u in read_all(settings, settings.topics.model_updates, ModelUpdate)],
    )


def summarize(run: DemoRun, observed: ObservedRun) -> dict[str, Any]:
    frame, drift, updates = observed.outcomes, observed.drift_events, observed.updates
    onset = run.onset_at

    def seconds_after_onset(times: list[datetime]) -> float | None:
        later = [t for t in times if onset is not None and t >= onset]
        return round((min(later) - onset).total_seconds(), 1) if later and onset is not None else None

    fraud = frame["label"] == 1
    summary = {
        "scenario": run.plan.scenario,
        "transactions": len(frame),
        "drift_events": len(drift),
        "drift_events_after_onset": sum(1 for e in drift if onset is not None and e.detected_at >= onset),
        "retrains": sum(1 for u in updates if u.status == "started"),
        "challengers": sum(1 for u in updates if u.status == "challenger"),
        "rejected": sum(1 for u in updates if u.status == "rejected"),
        "canary_steps": sum(1 for u in updates if u.status == "canary_step"),
        "promotions": sum(1 for u in updates if u.status == "promoted"),
        "rollbacks": sum(1 for u in updates if u.status == "rolled_back"),
        "frauds": int(fraud.sum()),
        "loop_fraud_caught": int((frame["loop"] & fraud).sum()),
        "loop_false_alerts": int((frame["loop"] & ~fraud).sum()),
        "static_fraud_caught": int((frame["static"] & fraud).sum()),
        "static_false_alerts": int((frame["static"] & ~fraud).sum()),
        "seconds_onset_to_detection": seconds_after_onset([e.detected_at for e in drift]),
        "seconds_onset_to_challenger": seconds_after_onset(
            [u.created_at for u in updates if u.status == "challenger"]
        ),
        "seconds_onset_to_promotion": seconds_after_onset(
            [u.created_at for u in updates if u.status == "promoted"]
        ),
        "seconds": round(time.monotonic() - run.started, 1),
    }
    return summary


def summary_json(summary: dict[str, Any]) -> str:
    return json.dumps(summary, default=lambda o: o.item() if isinstance(o, np.generic) else str(o))
