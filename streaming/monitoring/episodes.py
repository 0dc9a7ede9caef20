"""Alarm hygiene: a warm-up, then one alarm per signal per episode, then a cooldown.

A detection starts an *episode* unless the signal is still in one: every detection pushes
the episode's end ``cooldown`` events further, so a drift that keeps being detected (window
tests rejecting window after window, a detector re-firing on the new regime) raises one
alarm, not a storm. A new alarm needs ``cooldown`` events without any detection first.

>>> episodes = Episodes(warmup=100, cooldown=1000)
>>> [episodes.fire("feature", at) for at in (50, 200, 300, 1250, 2400)]
[False, True, False, False, True]
>>> episodes.fire("feature", 2500, hold=5000), episodes.fire("feature", 4000)  # held open to 7500
(False, False)
"""

from __future__ import annotations

import msgspec


class Episodes(msgspec.Struct, kw_only=True):
    """Per-signal episode bookkeeping; positions are counts of events seen by the monitor."""

    warmup: int
    cooldown: int
    quiet_from: dict[str, int] = {}
    alarms: dict[str, int] = {}

    def fire(self, signal: str, position: int, hold: int | None = None) -> bool:
        """Record a detection of ``signal`` at ``position``; True if it opens a new episode.
        ``hold`` (at least ``cooldown``) keeps the episode open longer: for a test that can
        fire only every so many events, the quiet period counts from its next chance."""
        if position < self.warmup:
            return False
        in_episode = position < self.quiet_from.get(signal, -1)
        self.quiet_from[signal] = max(
            self.quiet_from.get(signal, -1), position + max(self.cooldown, hold or 0)
        )
        if in_episode:
            return False
        self.alarms[signal] = self.alarms.get(signal, 0) + 1
        return True

    def in_episode(self, signal: str, position: int) -> bool:
        return position < self.quiet_from.get(signal, -1)
