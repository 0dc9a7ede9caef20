"""A model's drift episode, from its first detection to its end: opened, ongoing, resolved.

One drift raises one episode. Its first detection *opens* it (a drift event with status
``opened``); every later detection, of any signal, extends it and adds what moved to what
the episode knows; while detections keep coming, the episode is re-reported as ``ongoing``
at most once per ``ongoing_every_ms`` of event time, with everything that moved so far; it
*resolves* (status ``resolved``) once no detection has come for its quiet period and every
rate signal that fired is back within its reference band, or at once when a new model takes
over. Positions are pooled scored rows, times event times (ms).

>>> episode = Episode.open("e1", signal="feature", position=100, time_ms=0, quiet_rows=1000)
>>> episode.extend("prediction", position=600, quiet_rows=1000)
>>> episode.quiet(1500), episode.quiet(1600)
(False, True)
>>> episode.report_due(time_ms=30_000, every_ms=60_000), episode.report_due(time_ms=61_000, every_ms=60_000)
(False, True)
>>> sorted(episode.signals), episode.detections
(['feature', 'prediction'], 2)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streaming.events import FeatureShift


@dataclass
class Episode:
    """The open episode of one model (see the module docstring)."""

    episode_id: str  # the event id of the drift event that opened it
    opened_at: int  # position of the opening detection
    opened_time_ms: int
    quiet_from: int  # the position from which, without a new detection, it may resolve
    last_report_ms: int  # event time of the latest opened or ongoing report
    signals: set[str] = field(default_factory=set)
    detections: int = 1
    detections_reported: int = 1  # detections when it was last reported
    reports: int = 1  # opened and ongoing events published
    scope: set[int] = field(default_factory=set)
    moved: dict[str, FeatureShift] = field(default_factory=dict)  # column -> its largest shift so far
    opening: Any = None  # the alarm that opened it (the monitor's ModelAlarm)
    #: For each rate signal that fired (label, error): its level before the drift, the band's centre.
    baselines: dict[str, float] = field(default_factory=dict)

    @classmethod
    def open(cls, episode_id: str, *, signal: str, position: int, time_ms: int, quiet_rows: int) -> Episode:
        return cls(episode_id, position, time_ms, position + quiet_rows, time_ms, {signal})

    def extend(self, signal: str, *, position: int, quiet_rows: int) -> None:
        """A detection within the episode: it stays open at least ``quiet_rows`` longer."""
        self.signals.add(signal)
        self.detections += 1
        self.quiet_from = max(self.quiet_from, position + quiet_rows)

    def quiet(self, position: int) -> bool:
        """No detection for the whole quiet period."""
        return position >= self.quiet_from

    def report_due(self, time_ms: int, every_ms: int) -> bool:
        return time_ms - self.last_report_ms >= every_ms

    def reported(self, time_ms: int) -> None:
        self.last_report_ms = max(self.last_report_ms, time_ms)
        self.detections_reported = self.detections
        self.reports += 1

    def note(self, shifts: list[FeatureShift], scope: list[int]) -> None:
        """Columns that moved, each kept at its largest effect; partitions that moved."""
        for shift in shifts:
            known = self.moved.get(shift.column)
            if known is None or shift.psi > known.psi:
                self.moved[shift.column] = shift
        self.scope.update(scope)

    def explanation(self) -> list[FeatureShift]:
        """Every column that moved in the episode, largest effect first."""
        return sorted(self.moved.values(), key=lambda s: -s.psi)
