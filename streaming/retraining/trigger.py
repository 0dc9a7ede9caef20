"""`driftloop trigger`: drift events in, retraining runs out.

A consumer-group member on ``drift.events``. Each ``opened`` or ``ongoing`` event of the
configured model goes through the :class:`RetrainPolicy` (an ``ongoing`` one is how a drift
that outlived a rejected candidate gets another run: after the cooldown, or after
``trigger.labels_pending_retry_s`` when it was rejected only for labels still to come); ``resolved`` events
start nothing. An event that passes starts the ``retrain`` flow, either
through a Prefect deployment (``trigger.deployment``, served by `driftloop worker`; the
drift event id is the idempotency key, so a replayed event never creates a second run) or
in-process in a background thread (:class:`InProcessLauncher`), or in a child process
(:class:`ProcessLauncher`, as the demo does). Once the run exists, a ``started`` ModelUpdate is
published, and only then is the event's offset committed.

While a challenger is in its canary, drift events do not start runs (the canary decides
first). The policy's memory lives in Kafka: on start the trigger reads ``model.updates`` and replays
the ``started`` updates (each carries the ``detected_at`` of its drift event) and the
outcomes (``challenger``, ``rejected``, ``failed``) into the policy, and it keeps
following the topic to learn when a run ends. Undecodable drift events become dead letters
on ``drift.events.dlq``.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any, Protocol

from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from streaming.config import Settings, child_env
from streaming.control.plan import ServingPlan, fold
from streaming.control.updates import labels_pending, started_update
from streaming.errors import DecodeError
from streaming.events import DriftEvent, EventCodec, ModelUpdate, encode_event
from streaming.kafka.clients import close_all, wait_for_topic
from streaming.kafka.dead_letters import dead_letter
from streaming.kafka.publishing import publish_model_update
from streaming.kafka.transport import make_consumer, make_producer
from streaming.logs import get_logger
from streaming.retraining.flow_entrypoint import run_in_process
from streaming.retraining.policy import RetrainPolicy
from streaming.signals import stop_on_termination

log = get_logger("driftloop.trigger")

_OUTCOMES = ("challenger", "rejected", "failed")


class Launcher(Protocol):
    """Starts one retraining run for a drift event; returns what identifies the run."""

    def launch(self, event: DriftEvent) -> dict[str, Any]: ...

    def close(self) -> None: ...


def run_tags(event: DriftEvent) -> list[str]:
    """Tags that show in the Prefect UI which drift started a run."""
    tags = [
        "driftloop",
        f"drift-event:{event.event_id}",
        f"signal:{event.signal}",
        f"severity:{event.severity}",
    ]
    if event.feature:
        tags.append(f"feature:{event.feature}")
    return tags


class DeploymentLauncher:
    """Creates a flow run of a Prefect deployment (served by `driftloop worker`)."""

    def __init__(self, deployment: str) -> None:
        self.deployment = deployment

    def launch(self, event: DriftEvent) -> dict[str, Any]:
        from prefect.client.schemas.objects import FlowRun
        from prefect.deployments import run_deployment

        run: FlowRun = run_deployment(  # type: ignore[assignment]  # the sync variant
            self.deployment,
            parameters={"drift_event_id": event.event_id, "model_name": event.model_name},
            flow_run_name=f"retrain-{event.model_name}-{event.event_id}",
            idempotency_key=event.event_id,
            tags=run_tags(event),
            timeout=0,
            as_subflow=False,
        )
        return {"mode": "deployment", "deployment": self.deployment, "flow_run_id": str(run.id)}

    def close(self) -> None:
        pass


class InProcessLauncher:
    """Runs the flow in a background thread of this process (one at a time)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._thread: threading.Thread | None = None

    def launch(self, event: DriftEvent) -> dict[str, Any]:
        def run() -> None:
            try:
                run_in_process(self.settings, event.event_id, tuple(run_tags(event)))
            except Exception as exc:  # the flow published "failed" already (if Kafka let it)
                log.error("retraining run failed: %s", exc, extra={"drift_event_id": event.event_id})

        self.close()  # the policy allows one run at a time; never leave two threads
        self._thread = threading.Thread(target=run, name=f"retrain-{event.event_id[:8]}", daemon=True)
        self._thread.start()
        return {"mode": "in-process", "thread": self._thread.name}

    def close(self, timeout_s: float | None = None) -> None:
        if self._thread is not None and self._thread.is_alive():
            log.info("waiting for the running retraining flow to finish")
            self._thread.join(timeout_s)


class ProcessLauncher:
    """Runs the flow in a child Python process, one at a time, with exactly these settings
    (passed as ``DRIFTLOOP_*`` variables; its stdout and stderr go to this process's stderr).

    The child has an interpreter of its own, so the training does not wait for the GIL
    behind this process's busy threads: beside them a 0.3 s fit took 7-30 s in a
    thread (the demo runs the simulator, scorer, join and canary in one process). The run
    shows in the Prefect UI as an in-process one does (PREFECT_API_URL is inherited).
    ``close`` waits up to ``stop_timeout_s`` (None: until the run ends), then terminates it.
    """

    def __init__(self, settings: Settings, stop_timeout_s: float | None = None) -> None:
        self.settings = settings
        self.stop_timeout_s = stop_timeout_s
        self._process: subprocess.Popen[bytes] | None = None

    def launch(self, event: DriftEvent) -> dict[str, Any]:
        self.close()  # the policy allows one run at a time; never leave two processes
        command = [sys.executable, "-m", "streaming.retraining.flow_entrypoint"]
        command += ["--drift-event-id", event.event_id]
        for tag in run_tags(event):
            command += ["--tag", tag]
        self._process = subprocess.Popen(
            command, env=child_env(self.settings), stdin=subprocess.DEVNULL, stdout=2, stderr=2
        )
        return {"mode": "process", "pid": self._process.pid}

    def close(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        try:
            process.wait(self.stop_timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("stopping the running retraining process", extra={"pid": process.pid})
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _launcher_mode(launcher: Any) -> str:
    inner = getattr(launcher, "inner", launcher)  # a wrapper (the demo's) names what it wraps
    if isinstance(inner, DeploymentLauncher):
        return f"deployment {inner.deployment}"
    if isinstance(inner, ProcessLauncher):
        return "in a child process"
    return "in-process" if isinstance(inner, InProcessLauncher) else type(inner).__name__


class RetrainTrigger:
    """The `driftloop trigger` loop (see the module docstring)."""

    def __init__(self, settings: Settings, launcher: Launcher | None = None) -> None:
        self.settings = settings
        self.policy = RetrainPolicy(settings.trigger)
        self.launcher = launcher or (
            DeploymentLauncher(settings.trigger.deployment)
            if settings.trigger.deployment
            else InProcessLauncher(settings)
        )
        self.plan = ServingPlan()
        self.started: list[str] = []  # drift event ids that started a run, in order
        self._stop = threading.Event()
        self._codec = EventCodec(DriftEvent, settings.messages.max_bytes)
        self._consumer_name = f"{settings.kafka.client_id}/{settings.trigger.group_id}"

    def stop(self) -> None:
        self._stop.set()

    def run(self, install_signal_handlers: bool = True, on_ready: Callable[[], None] | None = None) -> None:
        if install_signal_handlers:
            stop_on_termination(self.stop)
        from streaming.control.follower import ModelUpdateFollower

        topics = self.settings.topics
        follower = ModelUpdateFollower(self.settings)
        producer = make_producer(self.settings.kafka)
        consumer = make_consumer(self.settings.kafka, self.settings.trigger.group_id)
        try:
            updates, _ = follower.catch_up()
            self._learn(updates)
            consumer.subscribe([topics.drift_events])
            wait_for_topic(consumer, topics.drift_events)
            log.info(
                "turning %s into retraining runs (%s)",
                topics.drift_events,
                _launcher_mode(self.launcher),
            )
            if on_ready is not None:
                on_ready()
            while not self._stop.is_set():
                self._learn(follower.poll()[0])
                for records in consumer.poll(timeout_ms=500).values():
                    for record in records:
                        self._handle(record, producer)
                        where = TopicPartition(record.topic, record.partition)
                        consumer.commit({where: OffsetAndMetadata(record.offset + 1, "", -1)})
        finally:
            close_all(
                partial(consumer.close, autocommit=False),
                follower.close,
                partial(producer.close, timeout=10),
                self.launcher.close,
            )

    def _handle(self, record: Any, producer: Any) -> None:
        try:
            event = self._codec.decode(record.value)
        except DecodeError as exc:
            letter = dead_letter(
                record, exc, self._consumer_name, self.settings.messages.dead_letter_value_bytes
            )
            producer.send(
                self.settings.topics.drift_events_dlq, key=record.key, value=encode_event(letter)
            ).get(30)
            log.warning(
                "dead letter: %s", exc, extra={"partition": record.partition, "offset": record.offset}
            )
            return
        if event.model_name != self.settings.model_name:
            return
        context = {"drift_event_id": event.event_id, "signal": event.signal, "partition": event.partition}
        if event.status == "resolved":
            log.info("drift episode resolved (%s): nothing to retrain", event.resolution, extra=context)
            return
        if self.plan.challenger is not None:
            # A challenger under evaluation decides first; its outcome may already fix the drift.
            log.info(
                "drift event not acted on: challenger %s is in its canary",
                self.plan.challenger,
                extra=context,
            )
            return
        decision = self.policy.decide(event.model_name, event.signal, event.severity, event.detected_at)
        if not decision.start:
            log.info("drift event not acted on: %s", decision.reason, extra=context)
            return
        run = self.launcher.launch(event)
        run["detected_at"] = event.detected_at.isoformat()
        publish_model_update(
            self.settings, started_update(event.model_name, event.event_id, run, self.plan.champion)
        )
        self.started.append(event.event_id)
        # The launcher's own fields go under "run": a key of its own (the in-process launcher's
        # "thread") must not collide with a LogRecord attribute.
        log.info("retraining run started", extra={**context, "run": run})

    def _learn(self, updates: list[ModelUpdate]) -> None:
        """Fold model.updates into the serving plan and the policy's memory."""
        for update in updates:
            self.plan = fold([update], self.plan)
            if update.status == "started":
                detected = update.evidence.get("detected_at")
                when = datetime.fromisoformat(detected) if isinstance(detected, str) else update.created_at
                self.policy.started(update.model_name, when)
            elif update.status in _OUTCOMES and update.drift_event_id is not None:
                self.policy.finished(update.model_name, labels_pending=labels_pending(update))
