"""The per-event drift detectors driftloop runs, chosen by name from configuration.

All are River detectors (``update(x)`` then a read-only ``drift_detected``), cheap enough
to run on every event. KSWIN is not offered: its per-event cost grows with its window
(~140 µs per update), which does not belong on the hot path; driftloop's window tests do
that job vectorized every ``window`` events instead. FHDDM is not offered either: River's
implementation signals a *fall* in the rate of 1s, the opposite of what an error stream
needs.

With their defaults DDM and EDDM raise false alarms on a stationary 10% error stream (the
contract tests show it); ``{"warm_start": 1000, "drift_threshold": 4.0}`` for DDM and
``{"warm_start": 500, "beta": 0.7}`` for EDDM pass them.

>>> detector = make_detector("adwin", delta=0.01)
>>> for x in [0.0] * 500 + [1.0] * 200:
...     _ = detector.update(x)
...     if detector.drift_detected:
...         break
>>> detector.drift_detected
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from river import drift
from river.drift import binary

from streaming.errors import ConfigError


class DriftDetector(Protocol):
    """River's detector shape."""

    @property
    def drift_detected(self) -> bool: ...

    def update(self, x: float, /) -> Any: ...


#: name -> (constructor, True if it takes 0/1 inputs only)
DETECTORS: dict[str, tuple[Callable[..., DriftDetector], bool]] = {
    "adwin": (drift.ADWIN, False),
    "page_hinkley": (drift.PageHinkley, False),
    "ddm": (binary.DDM, True),
    "eddm": (binary.EDDM, True),
    "hddm_a": (binary.HDDMA, False),
    "hddm_w": (binary.HDDMW, False),
}


def make_detector(name: str, **params: Any) -> DriftDetector:
    """A fresh detector; a clear :class:`ConfigError` for unknown names or parameters."""
    if name == "kswin":
        raise ConfigError(
            "kswin costs O(window) per event and is not run on the hot path; "
            "driftloop's window tests (monitoring.window) cover the same ground vectorized"
        )
    try:
        factory, _ = DETECTORS[name]
    except KeyError:
        raise ConfigError(f"unknown drift detector {name!r}; choose one of {', '.join(DETECTORS)}") from None
    try:
        return factory(**params)
    except TypeError as exc:
        raise ConfigError(f"detector {name!r}: {exc}") from exc


def is_binary(name: str) -> bool:
    """True for detectors that read 0/1 inputs (error indicators) only."""
    return DETECTORS[name][1]


def check_detector(name: str, params: Mapping[str, Any], binary_input: bool) -> None:
    """Fail early (at configuration time) on a detector that cannot watch a signal."""
    if name in DETECTORS and is_binary(name) and not binary_input:
        raise ConfigError(f"detector {name!r} reads 0/1 inputs only; pick adwin, page_hinkley or hddm_*")
    make_detector(name, **params)
