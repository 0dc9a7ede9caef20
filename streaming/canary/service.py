"""`driftloop canary`: the Kafka side of :class:`CanaryController`. Run one per model.

It follows ``model.updates`` from the beginning (the canary's state), and reads ``scores``
and ``labels`` from the current step's start (by timestamp), joining them by
transaction_id in bounded maps. Every ``evaluate_every_s`` it weighs the evidence; a
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
from streaming.events import EventCodec, Score, label_type
from streaming.kafka.clients import close_all
from streaming.kafka.publishing import publish_model_update
from streaming.kafka.reading import TopicReader
from streaming.logs import get_logger
from streaming.signals import stop_on_termination

log = get_logger("driftloop.canary")


class CanaryService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.controller = CanaryController(settings.canary, settings.model_name)
        self.decisions: list[Any] = []
        self._stop = threading.Event()
        self._scores: dict[str, Score] = {}
        self._labels: dict[str, int] = {}
        self._score_codec = EventCodec(Score, settings.messages.max_bytes)
        self._label_codec = EventCodec(label_type(settings.messages.limits()), settings.messages.max_bytes)
        self._window_start: datetime | None = None
        self._readers: tuple[TopicReader, TopicReader] | None = None  # scores, labels

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
            close_all(follower.close, self._close_readers)

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
        """(Re)open both readers at the current step's start when it changes."""
        start = self.controller.state.step_started_at
        if start == self._window_start:
            return
        self._window_start = start
        self._scores.clear()
        self._labels.clear()
        self._close_readers()
        if start is None or self.controller.state.challenger is None:
            return
        since_ms = int(start.timestamp() * 1000)
        topics = self.settings.topics
        scores = TopicReader(self.settings.kafka, topics.scores, since_ms, topic_timeout_s=30.0)
        try:
            self._readers = (
                scores,
                TopicReader(self.settings.kafka, topics.labels, since_ms, topic_timeout_s=30.0),
            )
        except BaseException:
            scores.close()
            raise

    def _close_readers(self) -> None:
        if self._readers is not None:
            readers, self._readers = self._readers, None
            close_all(*(reader.close for reader in readers))

    def _read(self) -> None:
        if self._readers is None or self.controller.state.challenger is None:
            time.sleep(0.2)
            return
        scores, labels = self._readers
        limit = self.settings.canary.max_pending
        for record in scores.poll(timeout_ms=200):
            try:
                score = self._score_codec.decode(record.value)
            except DecodeError:
                continue  # the scorer wrote it; a bad one is not evidence
            label = self._labels.pop(score.transaction_id, None)
            if label is None:
                if len(self._scores) < limit:
                    self._scores[score.transaction_id] = score
            else:
                self._count(score, label)
        for record in labels.poll(timeout_ms=0):
            try:
                truth = self._label_codec.decode(record.value)
            except DecodeError:
                continue  # the scorer dead-letters bad labels
            matched = self._scores.pop(truth.transaction_id, None)
            if matched is None:
                if len(self._labels) < limit:
                    self._labels[truth.transaction_id] = truth.label
            else:
                self._count(matched, truth.label)

    def _count(self, score: Score, label: int) -> None:
        self.controller.on_outcome(
            score.role,
            score.model_version,
            score.score,
            label,
            score.decision,
            score.latency_ms,
            score.scored_at,
        )

    def _state(self) -> dict[str, Any]:
        s = self.controller.state
        return {"champion": s.champion, "challenger": s.challenger, "percent": s.percent}
