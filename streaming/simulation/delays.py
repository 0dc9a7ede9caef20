"""How late the simulator's labels come: a count of transactions, or days of event time.

Chargebacks are filed days after the purchase, a few weeks for some. An event-time delay
is drawn per label from a log-normal with the given median (``spread`` is its sigma: 0.7
puts 90% within 2.5x the median and a tail to about 5x; 0 makes every delay the median),
capped at ``max_s``. The label's ``label_time`` is the transaction's event time plus its
delay, and the streamer publishes it once the stream's event time has passed it.

>>> parse_label_delay("500")
LabelDelay(transactions=500, median_s=None, spread=0.7, max_s=5184000.0)
>>> parse_label_delay("36h").median_s, parse_label_delay("3d").median_s, parse_label_delay("90m").median_s
(129600.0, 259200.0, 5400.0)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from streaming.errors import ConfigError

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 7 * 86_400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


@dataclass(frozen=True)
class LabelDelay:
    """``transactions`` later (event time ignored), or ``median_s`` of event time later."""

    transactions: int = 0
    median_s: float | None = None
    spread: float = 0.7
    max_s: float = 60 * 86_400.0

    @property
    def in_event_time(self) -> bool:
        return self.median_s is not None

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` delays in seconds of event time."""
        if self.median_s is None:
            return np.zeros(n)
        if self.spread <= 0:
            return np.full(n, self.median_s)
        return np.minimum(rng.lognormal(np.log(self.median_s), self.spread, n), self.max_s)


def parse_label_delay(text: str, spread: float = 0.7) -> LabelDelay:
    """``"500"`` (transactions), or a duration: ``"45s"``, ``"90m"``, ``"36h"``, ``"3d"``, ``"2w"``."""
    if text.strip().isdigit():
        return LabelDelay(transactions=int(text), spread=spread)
    found = _DURATION.match(text)
    if found is None:
        raise ConfigError(
            f"label delay {text!r}: give a number of transactions (500) or a duration (45s, 90m, 36h, 3d, 2w)"
        )
    return LabelDelay(median_s=float(found[1]) * _UNITS[found[2]], spread=spread)
