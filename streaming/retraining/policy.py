"""Which drift events start a retraining run: the trigger's policy, pure and replayable.

An event retrains when its signal is one of ``signals``, its severity is at least
``min_severity``, no run for the model is in flight (an in-flight run stops blocking after
``max_run_s``), and it was detected at least ``cooldown_s`` after the drift event that
started the previous run. Times are the events' own ``detected_at``, so a replayed burst
is judged exactly like the live one: one run per cooldown window.

A run whose candidate was rejected only because labels were still to come (too few since the
drift began, too few frauds to judge it) does not cost the whole cooldown: the drift is
still unanswered, and waiting ``labels_pending_retry_s`` brings more labels. The next run
may start that long after the rejected one's drift event.

>>> from datetime import datetime, timedelta, timezone
>>> from streaming.config import TriggerSettings
>>> policy = RetrainPolicy(TriggerSettings(cooldown_s=600))
>>> t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
>>> [policy.decide("fraud", "feature", "high", t0 + timedelta(seconds=s)).start for s in (0, 5, 700)]
[True, False, False]
>>> policy.finished("fraud")
>>> policy.decide("fraud", "error", "medium", t0 + timedelta(seconds=700)).start
True

Rejected for labels still to come, the drift gets another run after ``labels_pending_retry_s``:

>>> policy = RetrainPolicy(TriggerSettings(cooldown_s=3600, labels_pending_retry_s=120))
>>> policy.decide("fraud", "error", "medium", t0).start
True
>>> policy.finished("fraud", labels_pending=True)
>>> [policy.decide("fraud", "error", "medium", t0 + timedelta(seconds=s)).start for s in (60, 130, 200)]
[False, True, False]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from streaming.config import TriggerSettings

_SEVERITY = {"low": 0, "medium": 1, "high": 2}


@dataclass(frozen=True)
class Decision:
    start: bool
    reason: str


@dataclass
class RetrainPolicy:
    settings: TriggerSettings
    last_start: dict[str, datetime] = field(default_factory=dict)  # detected_at of the event that started it
    in_flight: dict[str, datetime] = field(default_factory=dict)
    #: The wait after the last start, per model: the cooldown, or the shorter retry after a
    #: rejection for labels still to come.
    wait_s: dict[str, float] = field(default_factory=dict)

    def decide(self, model: str, signal: str, severity: str, detected_at: datetime) -> Decision:
        """Decide, and when the answer is to start, record the start."""
        s = self.settings
        if signal not in s.signals:
            return Decision(False, f"signal {signal!r} does not retrain")
        if _SEVERITY[severity] < _SEVERITY[s.min_severity]:
            return Decision(False, f"severity {severity} is below {s.min_severity}")
        running = self.in_flight.get(model)
        if running is not None and (detected_at - running).total_seconds() < s.max_run_s:
            return Decision(False, "a run for this model is in flight")
        last = self.last_start.get(model)
        wait_s = self.wait_s.get(model, s.cooldown_s)
        if last is not None and (detected_at - last).total_seconds() < wait_s:
            if wait_s < s.cooldown_s:
                return Decision(
                    False, f"within {wait_s:.0f}s of the previous run, rejected for labels still to come"
                )
            return Decision(False, f"within the {s.cooldown_s:.0f}s cooldown of the previous run")
        self.started(model, detected_at)
        return Decision(True, "retrain")

    def started(self, model: str, detected_at: datetime) -> None:
        self.last_start[model] = max(detected_at, self.last_start.get(model, detected_at))
        self.in_flight[model] = detected_at
        self.wait_s[model] = self.settings.cooldown_s

    def finished(self, model: str, labels_pending: bool = False) -> None:
        """The model's run ended; ``labels_pending``: its candidate was rejected only for labels
        still to come, so the next run may start after ``labels_pending_retry_s``."""
        self.in_flight.pop(model, None)
        if labels_pending:
            s = self.settings
            self.wait_s[model] = min(s.cooldown_s, s.labels_pending_retry_s)
