"""`driftloop demo`: the whole loop in one process, on a scheduled drift.

Creates fresh demo topics on the broker, trains the first champion on simulated history,
then runs together: the simulator (baseline traffic, then a new fraud pattern), the scorer
with its drift monitors, the retrain trigger with the Prefect flow (in a child process), and the
canary controller (the default ``canary.schedule``). The drifted part of the stream is
``after`` transactions, longer while a retraining run or a canary is still undecided (a
canary judges labelled outcomes of live traffic, so it needs the stream to go on), then
``payoff`` more to show what the decision pays. It stops once the stream has ended and the
scorer and the join have read all of it (or at ``max_seconds``, or when interrupted),
replays the stream through the first champion alone ("static"), writes the summary and the
report, and deletes the demo topics (unless asked to keep them).

An interrupted run still ends with a summary and a report, both marked interrupted; the
report then goes to ``<name>.interrupted.html`` so a complete report is never overwritten
by a partial one.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from streaming.config import (
    JoinSettings,
    RetrainingSettings,
    ScoringSettings,
    Settings,
    TopicNames,
    TriggerSettings,
)
from streaming.control.updates import champion_update, labels_pending
from streaming.demo.outcomes import ObservedRun, outcome_frame, read_events, summarize
from streaming.errors import DriftloopError, NothingToReportError
from streaming.events import DriftEvent, ModelUpdate, Outcome, Score
from streaming.kafka.clients import close_all, delete_topics, ensure_topics
from streaming.kafka.publishing import publish_model_update
from streaming.logs import get_logger
from streaming.models.first_champion import open_registry, train_and_register
from streaming.simulation.delays import LabelDelay
from streaming.simulation.generator import SCENARIOS, TransactionSimulator
from streaming.simulation.streamer import SimulationStats, TransactionStreamer
from streaming.topics import topic_catalogue

log = get_logger("driftloop.demo")


DEMO_LABEL_DELAY = LabelDelay(median_s=86_400.0, spread=0.7, max_s=14 * 86_400.0)


@dataclass(frozen=True)
class DemoPlan:
    """How much traffic, how fast, and when the fraud pattern changes."""

    scenario: str = "concept"
    history: int = 20_000
    before: int = 20_000  # transactions before the drift
    #: After it: time to detect, retrain, canary, promote, and pay off. The stream goes on
    #: past it while a run or a canary is undecided (up to ``max_seconds``), then ``payoff``
    #: more transactions once it is decided.
    after: int = 100_000
    payoff: int = 15_000
    rate: float = 1000.0
    #: Event time between transactions: 40 s, so a day of event time is about 2,160
    #: transactions (2 s at 1,000/s) and the demo's few minutes are one to two months.
    event_gap_s: float = 40.0
    #: Chargeback-like: a day late at the median, most within a few days, a tail to two
    #: weeks (event time; see :class:`LabelDelay`).
    label_delay: LabelDelay = field(default_factory=lambda: DEMO_LABEL_DELAY)
    max_seconds: float = 360.0
    seed: int = 7

    @property
    def total(self) -> int:
        return self.before + self.after


#: 20,000 baseline outcomes: what ADWIN needs before a doubled error rate (1% to 2%, the
#: concept drift's) clears its bound (kept from the per-partition monitors, which needed
#: 10,000 on each of the two partitions; the pooled monitor has margin).
SHORT = DemoPlan(before=20_000, after=70_000, rate=1000.0, max_seconds=300.0)

#: How long reading the run back may take, complete and interrupted.
_READ_BACK_S = {False: 90.0, True: 5.0}
#: How long each service may take to stop once asked.
_STOP_WAIT_S = 10.0


@dataclass(frozen=True)
class DemoStatus:
    """What the live view shows, once per refresh."""

    phase: str
    next_step: str
    elapsed_s: float
    produced: int
    total: int
    scored: int
    rate: float
    drift_events: int
    seconds_to_detection: float | None
    flow_runs: int
    champion: str | None
    challenger: str | None
    canary_percent: float
    schedule: tuple[float, ...]
    last_update: str
    stopping: bool = False

    @property
    def seconds_left_in_stream(self) -> float:
        return max(0.0, (self.total - self.produced) / self.rate)


@dataclass(frozen=True)
class DemoResult:
    summary: dict[str, Any]
    report: Path


@dataclass
class _Run:
    settings: Settings
    plan: DemoPlan
    started: float = field(default_factory=time.monotonic)
    onset_at: datetime | None = None
    stream: SimulationStats = field(default_factory=SimulationStats)
    frames: list[pd.DataFrame] = field(default_factory=list)
    done_producing: bool = False
    #: A retraining run or a canary is under way: the stream goes on past ``plan.after``.
    undecided: bool = False
    errors: list[str] = field(default_factory=list)


def demo_settings(base: Settings, run_id: str) -> Settings:
    """The base settings on the run's own topics, home and consumer groups, with settings
    that suit a two-minute stream (smaller retraining window, 1 s canary evaluations)."""
    names = TopicNames(**{f: f"demo-{run_id}-{f.replace('_', '-')}" for f in TopicNames.model_fields})
    home = base.home / "demo" / run_id
    return base.model_copy(
        update={
            "topics": names,
            "home": home,
            "registry": base.registry.model_copy(update={"path": home / "registry"}),
            "scoring": ScoringSettings(group_id=f"demo-{run_id}-scorer", metrics_port=0, max_wait_ms=50),
            # The newest 15,000 labelled rows: mostly after the onset by the time a drift is
            # detected, and quick to read and fit while the stream flows.
            "retraining": RetrainingSettings(
                max_iter=60, min_rows=2000, max_rows=15_000, retry_delays_s=[1.0, 2.0, 5.0]
            ),
            # One challenger per demo; a run rejected for labels still to come retries on the
            # next ongoing report (about 10 s later), as production would after more labels.
            "trigger": TriggerSettings(
                group_id=f"demo-{run_id}-trigger", cooldown_s=3600, labels_pending_retry_s=5.0
            ),
            "canary": base.canary.model_copy(update={"min_labels": 300, "evaluate_every_s": 1.0}),
            # A label waits for its score until the scores' event time passes it by 14 days
            # (about 30 s here). The scorer drains a backlog one input partition ahead of the
            # other: on a busy machine a score came 13,000 transactions (6 days) after others
            # of its partition, and 1 h (90 transactions) refused one label in ten.
            "join": JoinSettings(
                group_id=f"demo-{run_id}-join",
                metrics_port=0,
                checkpoint_interval_s=0.5,
                label_wait_s=14 * 86_400.0,
            ),
            # A day of event time is about 2 s here: an ongoing drift is re-reported every ~10 s.
            "monitoring": base.monitoring.model_copy(
                update={
                    "group_id": f"demo-{run_id}-monitor",
                    "metrics_port": 0,
                    "ongoing_every_s": 5 * 86_400.0,
                }
            ),
        }
    )


def new_run_id() -> str:
    return uuid.uuid4().hex[:8]


def interrupted_report_path(report: Path) -> Path:
    """``report.html`` -> ``report.interrupted.html``."""
    return report.with_name(f"{report.stem}.interrupted{report.suffix}")


def run_demo(
    base: Settings,
    plan: DemoPlan,
    report: Path,
    interrupt: threading.Event,
    view: Callable[[DemoStatus], None] = lambda status: None,
    keep_topics: bool = False,
    run_id: str | None = None,
    prefect_ready: Callable[[], None] = lambda: None,
) -> DemoResult:
    """Run the demo; ``interrupt`` (set from a signal handler) ends it early.

    The run's topics are ``demo-<run_id>-*`` and its files live in ``<home>/demo/<run_id>/``.
    ``prefect_ready`` blocks until the Prefect API answers; it is called before the first
    flow run starts, so a server started with the demo comes up while the stream flows.
    """
    run_id = run_id or new_run_id()
    settings = demo_settings(base, run_id)
    ensure_topics(settings.kafka, topic_catalogue(settings.topics, partitions=2))
    try:
        return _run(settings, plan, report, interrupt, view, prefect_ready)
    finally:
        if not keep_topics:  # a failure to delete must not hide why the demo ended
            close_all(
                lambda: delete_topics(settings.kafka, [t.name for t in topic_catalogue(settings.topics)])
            )


def _run(
    settings: Settings,
    plan: DemoPlan,
    report: Path,
    interrupt: threading.Event,
    view: Callable[[DemoStatus], None],
    prefect_ready: Callable[[], None],
) -> DemoResult:
    from streaming.control.follower import ModelUpdateFollower

    run = _Run(settings, plan)
    view(_status(run, None, None, None, [], "training the first champion", _TRAINING))
    simulator = TransactionSimulator(seed=plan.seed, mean_gap_s=plan.event_gap_s)
    champion = train_and_register(settings, simulator.generate(plan.history), source="demo history")
    publish_model_update(settings, champion_update(champion))
    if interrupt.is_set():
        raise NothingToReportError("interrupted before the stream began: nothing to report")
    services = _Services.start(run, simulator, prefect_ready)
    follower = ModelUpdateFollower(settings)
    alerts = _DriftFollower(settings)
    updates: list[ModelUpdate] = []
    try:
        while not interrupt.is_set() and not run.errors:
            updates += follower.poll(timeout_ms=250)[0]
            run.undecided = _undecided(services.launches(), updates)
            alerts.poll()
            elapsed = time.monotonic() - run.started
            view(_status(run, services.scorer, alerts, services.trigger, updates))
            # The stream ends once the loop has decided (it goes on while a run or a canary is
            # under way); then the scorer and the join read everything sent (the summary counts
            # the labelled transactions).
            if (run.done_producing and services.caught_up(run.stream)) or elapsed > plan.max_seconds:
                break
    finally:
        stopping = _status(run, services.scorer, alerts, services.trigger, updates)
        view(replace(stopping, phase="stopping the services", next_step=_READING, stopping=True))
        services.stop()
        close_all(follower.close, alerts.close)
    if run.errors:
        raise DriftloopError("the demo stopped: " + "; ".join(run.errors))
    last = _status(run, services.scorer, alerts, services.trigger, updates)
    view(replace(last, phase=_READING, next_step="", stopping=True))
    return _read_back_and_report(run, champion.version, report, interrupt.is_set())


@dataclass
class _Services:
    """The demo's services, each in a thread, and the simulator feeding them."""

    scorer: Any
    monitor: Any
    join: Any
    trigger: Any
    canary: Any
    halt: threading.Event
    threads: list[threading.Thread]

    @classmethod
    def start(
        cls, run: _Run, simulator: TransactionSimulator, prefect_ready: Callable[[], None]
    ) -> _Services:
        from streaming.canary.service import CanaryService
        from streaming.monitoring.publisher import EvidencePublisher
        from streaming.monitoring.service import MonitorService
        from streaming.outcomes.service import JoinService
        from streaming.retraining.trigger import ProcessLauncher, RetrainTrigger
        from streaming.scoring.service import ScoringService

        settings = run.settings
        registry = open_registry(settings)
        scorer = ScoringService(settings, registry, [EvidencePublisher(settings, registry)])
        monitor = MonitorService(settings, registry)
        join = JoinService(settings)
        # The flow runs in a child process: a thread of this one would wait for the GIL behind
        # the simulator, scorer and join (a fit that takes 0.3 s alone took 7-30 s).
        launcher = ProcessLauncher(settings, stop_timeout_s=_STOP_WAIT_S / 2)
        trigger = RetrainTrigger(settings, _ReadyFirst(launcher, prefect_ready))
        canary = CanaryService(settings)
        halt = threading.Event()
        # Not joined at the stop: it only waits for the Prefect API to answer (up to minutes
        # while a server starts on a busy machine) and holds nothing to flush.
        threading.Thread(
            target=_warm_up, args=(run, prefect_ready), name="retraining-warm-up", daemon=True
        ).start()
        threads = [
            threading.Thread(target=_produce, args=(run, simulator, halt), name="simulator", daemon=True),
            *(
                threading.Thread(target=_guard(run, s.run), name=type(s).__name__, daemon=True)
                for s in (scorer, monitor, join, trigger, canary)
            ),
        ]
        for thread in threads:
            thread.start()
        return cls(scorer, monitor, join, trigger, canary, halt, threads)

    def launches(self) -> int:
        """Retraining runs the trigger has asked for so far."""
        return int(self.trigger.launcher.launches)

    def caught_up(self, stream: SimulationStats) -> bool:
        """Has every transaction sent been scored, and has the join read every score and every
        label sent (a label whose score the join has not read yet waits for it)?"""
        scored = self.scorer.stats.scored
        join = self.join.stats
        return scored >= stream.transactions and join.scores >= scored and join.labels >= stream.labels

    def stop(self) -> None:
        """Stop producing and every service; wait up to ``_STOP_WAIT_S`` for their threads."""
        self.halt.set()
        for service in (self.scorer, self.monitor, self.join, self.trigger, self.canary):
            service.stop()
        stopping_at = time.monotonic()
        deadline = stopping_at + _STOP_WAIT_S
        for thread in self.threads:
            thread.join(max(0.1, deadline - time.monotonic()))
        log.info(
            "demo services stopped",
            extra={
                "seconds": round(time.monotonic() - stopping_at, 2),
                "still_running": [t.name for t in self.threads if t.is_alive()],
            },
        )


def _read_back_and_report(run: _Run, champion: str, report: Path, interrupted: bool) -> DemoResult:
    """Read the run's topics back, summarize, write the report (``report.interrupted.html``
    when interrupted: a complete report is never overwritten)."""
    from streaming.demo.report import write_report

    reading_at = time.monotonic()
    observed = observe_run(run, champion, deadline=reading_at + _READ_BACK_S[interrupted])
    summary = summarize(observed, run.plan.scenario, time.monotonic() - run.started, interrupted)
    path = interrupted_report_path(report) if interrupted else report
    writing_at = time.monotonic()
    write_report(path, observed, summary)
    log.info(
        "demo report written",
        extra={
            "path": str(path),
            "read_back_s": round(writing_at - reading_at, 2),
            "report_s": round(time.monotonic() - writing_at, 2),
            "complete": observed.complete,
        },
    )
    return DemoResult(summary, path)


def _guard(run: _Run, target: Callable[..., Any]) -> Callable[[], None]:
    def guarded() -> None:
        try:
            target(install_signal_handlers=False)
        except Exception as exc:  # surfaced by run_demo
            run.errors.append(f"{type(exc).__name__}: {exc}")

    return guarded


def _produce(run: _Run, simulator: TransactionSimulator, halt: threading.Event) -> None:
    plan = run.plan
    streamer = TransactionStreamer(run.settings, plan.rate, plan.label_delay, seed=plan.seed)
    run.stream = streamer.stats
    try:
        for regime, count in ((SCENARIOS["baseline"], plan.before), (SCENARIOS[plan.scenario], plan.after)):
            left, waited, drifted = count, False, regime.name != "baseline"
            while not halt.is_set():
                if left <= 0 and drifted:
                    if run.undecided:  # a run or a canary needs live traffic: go on
                        waited = True
                    elif waited:  # decided at last: show what the decision pays, then end
                        left, waited = plan.payoff, False
                if left <= 0 and not waited:
                    break
                frame = simulator.generate(min(500, left) if left > 0 else 500, regime)
                if drifted and run.onset_at is None:
                    run.onset_at = datetime.now(UTC)
                run.frames.append(frame.assign(sent_at=streamer.send(frame, stop=halt.is_set)))
                left -= len(frame)
    except Exception as exc:
        run.errors.append(f"simulator: {exc}")
    finally:
        close_all(lambda: streamer.close(flush_labels=not halt.is_set()))
        run.done_producing = True


def _warm_up(run: _Run, prefect_ready: Callable[[], None]) -> None:
    """Wait for the Prefect API while the baseline streams, so the first drift event starts
    its run at once."""
    try:
        prefect_ready()
    except Exception as exc:  # the first run meets it again, and reports it
        log.warning("the Prefect API is not ready: %s", exc)


class _ReadyFirst:
    """A launcher that waits for the Prefect API before its first run, and counts the runs
    asked for (from the moment it is asked: the wait may be long)."""

    def __init__(self, launcher: Any, ready: Callable[[], None]) -> None:
        self.inner = launcher
        self._ready = ready
        self.launches = 0

    def launch(self, event: DriftEvent) -> dict[str, Any]:
        self.launches += 1
        self._ready()
        return dict(self.inner.launch(event))

    def close(self) -> None:
        self.inner.close()


class _DriftFollower:
    """The run's drift events, as an alert consumer sees them."""

    def __init__(self, settings: Settings) -> None:
        from streaming.events import EventCodec
        from streaming.kafka.reading import TopicReader

        self._reader = TopicReader(settings.kafka, settings.topics.drift_events)
        self._codec = EventCodec(DriftEvent)
        self.detected_at: list[datetime] = []

    def poll(self) -> None:
        from streaming.errors import DecodeError

        for record in self._reader.poll(timeout_ms=0):
            try:
                event = self._codec.decode(record.value)
            except DecodeError:
                continue  # the trigger dead-letters it; it is no drift to show
            if event.status == "opened":  # a new drift episode (not its ongoing or resolved reports)
                self.detected_at.append(event.detected_at)

    def close(self) -> None:
        self._reader.close()


_TRAINING = "then baseline traffic streams at the plan's rate"
_READING = "reading the run back for the summary and the report"


def _status(
    run: _Run,
    scorer: Any,
    alerts: _DriftFollower | None,
    trigger: Any,
    updates: list[ModelUpdate],
    phase: str = "",
    next_step: str = "",
) -> DemoStatus:
    plan, settings = run.plan, run.settings
    state = _serving(updates)
    detected = alerts.detected_at if alerts is not None else []
    onset = run.onset_at
    after_onset = [t for t in detected if onset is not None and t >= onset]
    detection = (min(after_onset) - onset).total_seconds() if after_onset and onset is not None else None
    if not phase:
        phase, next_step = _phase(run, state, detection, updates)
    return DemoStatus(
        phase=phase,
        next_step=next_step,
        elapsed_s=time.monotonic() - run.started,
        produced=run.stream.transactions,
        total=plan.total,
        scored=scorer.stats.scored if scorer is not None else 0,
        rate=plan.rate,
        drift_events=len(detected),
        seconds_to_detection=detection,
        flow_runs=len(trigger.started) if trigger is not None else 0,
        champion=state["champion"],
        challenger=state["challenger"],
        canary_percent=state["percent"],
        schedule=tuple(settings.canary.schedule),
        last_update=f"{updates[-1].status} {updates[-1].version}" if updates else "",
    )


def _undecided(launches: int, updates: list[ModelUpdate]) -> bool:
    """Is the loop still answering the drift: a run launched (``launches`` so far) without its
    end yet (promoted, rolled back, rejected or failed), or the last one rejected only for
    labels still to come (the trigger retries it)?

    >>> from streaming.control.updates import run_ended_update
    >>> waiting = run_ended_update("fraud", "rejected", "v1", "e1", ["9 labelled frauds"],
    ...                            {"validation": {"labels_pending": True}})
    >>> worse = run_ended_update("fraud", "rejected", "v1", "e1", ["not clearly better"], {})
    >>> [_undecided(0, []), _undecided(1, []), _undecided(1, [waiting]), _undecided(1, [worse])]
    [False, True, True, False]
    """
    ended = [u for u in updates if u.status in _RUN_ENDS]
    return launches > len(ended) or (bool(ended) and labels_pending(ended[-1]))


#: How a launched run ends: its candidate rejected, the run failed, or its challenger's canary
#: promoted or rolled it back.
_RUN_ENDS = ("rejected", "failed", "promoted", "rolled_back")


def _serving(updates: list[ModelUpdate]) -> dict[str, Any]:
    from streaming.control.plan import fold

    plan = fold(updates)
    return {"champion": plan.champion, "challenger": plan.challenger, "percent": plan.challenger_percent}


def _phase(
    run: _Run, state: dict[str, Any], detection: float | None, updates: list[ModelUpdate]
) -> tuple[str, str]:
    """What is happening now, and what happens next."""
    plan = run.plan
    ended = [u for u in updates if u.status in ("promoted", "rolled_back")]
    if run.onset_at is None:
        return (
            "baseline traffic: the champion scores it; the monitors learn what normal looks like",
            f"after {plan.before:,} transactions the fraud pattern changes ({plan.scenario} drift)",
        )
    if run.done_producing:
        return (
            "the stream has ended",
            f"the scorer and the join finish reading it (at most {plan.max_seconds:.0f} s in all); "
            "then the summary",
        )
    if ended:
        last = ended[-1]
        verb = "promoted: it now serves all traffic" if last.status == "promoted" else "rolled back"
        return f"{last.version} {verb}", "the stream runs to its end; then the summary and the report"
    if state["challenger"] is not None:
        later = [p for p in run.settings.canary.schedule if p > state["percent"]]
        step = f"{later[0]:g}%" if later else "promotion"
        return (
            f"canary: {state['challenger']} serves {state['percent']:g}% of accounts",
            f"{step} once it is not worse than {state['champion']} on "
            f"{run.settings.canary.min_labels} labelled outcomes each",
        )
    if any(u.status == "rejected" for u in updates):
        return "the candidate was rejected by validation", "the next drift episode may start another run"
    if any(u.status == "started" for u in updates):
        return (
            "drift detected: the Prefect flow retrains",
            "fetch the window from Kafka, snapshot it, train, validate against the champion, sign, register",
        )
    if detection is not None:
        return "drift detected", "a drift event of enough severity starts a retraining flow run"
    return (
        f"{plan.scenario} drift: a new fraud pattern since the onset",
        "the monitors watch errors, scores and features for it",
    )


def observe_run(run: _Run, first_version: str, deadline: float) -> ObservedRun:
    """The run's outcomes: produced rows joined with their scores and with the labels of the
    ``outcomes`` topic, drift events, updates."""
    settings = run.settings
    topics = settings.topics
    scores, scores_whole = read_events(settings, topics.scores, Score, deadline)
    drift, drift_whole = read_events(settings, topics.drift_events, DriftEvent, deadline)
    updates, updates_whole = read_events(settings, topics.model_updates, ModelUpdate, deadline)
    outcomes, outcomes_whole = read_events(settings, topics.outcomes, Outcome, deadline)
    if not run.frames or not scores or not outcomes:
        raise NothingToReportError(
            "stopped before any transaction was scored and labelled: nothing to report"
        )
    produced = pd.concat(run.frames, ignore_index=True)
    produced = produced[produced["sent_at"].notna()]
    registry = open_registry(settings)
    static = registry.load(settings.model_name, first_version)
    frame, unlabelled = outcome_frame(produced, scores, outcomes, static)
    return ObservedRun(
        outcomes=frame,
        unlabelled=unlabelled,
        drift_events=drift,
        updates=updates,
        onset_at=run.onset_at,
        complete=scores_whole and drift_whole and updates_whole and outcomes_whole,
        performance=_performance_models(settings, registry, {first_version, *frame["loop_version"].unique()}),
        static_version=first_version,
    )


def _performance_models(settings: Settings, registry: Any, versions: set[str]) -> dict[str, Any]:
    """Each version's calibration, threshold and budget score, for the report's estimate."""
    from streaming.monitoring.performance import PerformanceModel

    models = {}
    for version in sorted(versions):
        manifest = registry.manifest(settings.model_name, version)
        if manifest.calibration is not None and manifest.reference is not None:
            models[version] = PerformanceModel.of(
                manifest.calibration,
                manifest.threshold,
                np.asarray(manifest.reference.scores),
                settings.decision.alert_budget,
            )
    return models
