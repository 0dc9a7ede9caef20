"""`driftloop canary`: the Kafka side of :class:`CanaryController`. Run one per model.

It follows ``model.updates`` from the beginning (the canary's state), and reads the
``outcomes`` of `driftloop join` (scores with their labels) from the current step's start
(by timestamp); the controller counts those scored within the step by the serving pair.
Every ``evaluate_every_s`` it weighs the evidence; a
decision is published on ``model.updates``, applied at once, and every scorer follows it.
Restarted, it rebuilds the same step from the same topics: nothing of its own is stored.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from streaming.canary.controller import CanaryController
from streaming.config import Settings
from streaming.errors import DecodeError
from streaming.events import EventCodec, Outcome
from streaming.kafka.clients import close_all
from streaming.kafka.publishing import publish_model_update
from streaming.kafka.reading import TopicReader
from streaming.logs import get_logger
from streaming.signals import stop_on_termination

log = get_logger("driftloop.canary")


class CanaryService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.controller = CanaryController(settings.canary, settings.model_name, settings.decision)
        self.decisions: list[Any] = []
        self._stop = threading.Event()
        self._codec = EventCodec(Outcome, settings.messages.max_bytes)
        self._window_start: datetime | None = None
        self._reader: TopicReader | None = None

    def stop(self) -> None:
        self._stop.set()

    def run(self, install_signal_handlers: bool = True, on_ready: Callable[[], None] | None = None) -> None:
        if install_signal_handlers:
            stop_on_termination(self.stop)
        from streaming.control.follower import ModelUpdateFollower

        follower = ModelUpdateFollower(self.settings)
        try:
            for update in follower.catch_up()[0]:
                self.controller.on_update(update)
            self._follow_window()
            log.info("canary controller ready", extra=self._state())
            if on_ready is not None:
                on_ready()
            last = 0.0
            while not self._stop.is_set():
                for update in follower.poll()[0]:
                    self.controller.on_update(update)
                self._follow_window()
                self._read()
                if time.monotonic() - last >= self.settings.canary.evaluate_every_s:
                    last = time.monotonic()
                    self._decide()
        finally:
            close_all(follower.close, self._close_reader)

    def _decide(self) -> None:
        decision = self.controller.decide(datetime.now(UTC))
        if decision is None:
            return
        publish_model_update(self.settings, decision)
        self.controller.on_update(decision)
        self.decisions.append(decision)
        log.info(
            "canary decision: %s %s at %s%%",
            decision.status,
            decision.version,
            decision.traffic_percent,
            extra={"reason": decision.reasons[0], **self._state()},
        )

    def _follow_window(self) -> None:
        """(Re)open the outcomes reader at the current step's start when it changes."""
        start = self.controller.state.step_started_at
        if start == self._window_start:
            return
        self._window_start = start
        self._close_reader()
        if start is None or self.controller.state.challenger is None:
            return
        since_ms = int(start.timestamp() * 1000)
        self._reader = TopicReader(
            self.settings.kafka, self.settings.topics.outcomes, since_ms, topic_timeout_s=30.0
        )

    def _close_reader(self) -> None:
        if self._reader is not None:
            reader, self._reader = self._reader, None
            reader.close()

    def _read(self) -> None:
        if self._reader is None or self.controller.state.challenger is None:
            time.sleep(0.2)
            return
        for record in self._reader.poll(timeout_ms=200):
            try:
                o = self._codec.decode(record.value)
            except DecodeError:
                continue  # `driftloop join` wrote it; a bad one is not evidence
            self.controller.on_outcome(
                o.role, o.model_version, o.score, o.label, o.decision, o.latency_ms, o.scored_at
            )

    def _state(self) -> dict[str, Any]:
        s = self.controller.state
        return {"champion": s.champion, "challenger": s.challenger, "percent": s.percent}
