"""The monitors: each watches one signal and says when its distribution moved.

Two kinds, one shape (River's: ``update(x)`` then a read-only ``drift_detected``, plus a
vectorized ``update_many`` that returns the detections of a whole micro-batch):

- :class:`DetectorMonitor` runs a cheap River detector on every value of a scalar signal
  (a feature's reference rank, a score's rank, a label, an error);
- :class:`WindowTestMonitor` collects tumbling windows of ``window`` rows and tests each
  against the reference sample, all columns at once (KS for numbers, chi-square for
  categories), with Holm's correction across the columns.

Both are plain Python objects that pickle, which is how :mod:`.state` snapshots them.

>>> import numpy as np
>>> monitor = DetectorMonitor("label", "adwin", {"delta": 0.001})
>>> rng = np.random.default_rng(0)
>>> monitor.update_many(rng.binomial(1, 0.02, 3000).astype(float))
[]
>>> [d.index for d in monitor.update_many(rng.binomial(1, 0.3, 1000).astype(float))][:1]
[71]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import compress, count, islice
from typing import Any

import numpy as np
from river import drift

from streaming.detectors import DriftDetector, make_detector
from streaming.monitoring.window_tests import chi_square, decile_psi, holm, ks_many


@dataclass(frozen=True)
class Detection:
    """One detection inside an ``update_many`` call."""

    signal: str
    detector: str
    index: int  # row within the values given to update_many
    feature: str | None = None
    statistic: float | None = None
    p_value: float | None = None
    effect: float | None = None  # PSI for window tests; None for per-event detectors
    window_rows: int | None = None  # how many rows back the changed window starts


class DetectorMonitor:
    """A River detector on every value of one scalar signal.

    Parameters
    ----------
    signal
        What is watched ("feature", "prediction", "label" or "error").
    detector
        A name from :data:`streaming.detectors.DETECTORS`.
    params
        The detector's keyword arguments.
    feature
        The feature's name, for feature monitors.
    """

    def __init__(
        self, signal: str, detector: str, params: Mapping[str, Any], feature: str | None = None
    ) -> None:
        self.signal = signal
        self.detector = detector
        self.params = dict(params)
        self.feature = feature
        self._detector: DriftDetector = make_detector(detector, **self.params)
        self.seen = 0

    @property
    def drift_detected(self) -> bool:
        return self._detector.drift_detected

    def update(self, x: float) -> DetectorMonitor:
        self._detector.update(x)
        self.seen += 1
        return self

    @staticmethod
    def _adwin_many(detector: drift.ADWIN, values: list[float]) -> list[int]:
        """River's ``ADWIN.update`` over ``values``, with its Rust core fed from C (``map``
        and ``compress`` stop at the first detection), a third of the wrapper loop's cost.

        ``update`` resets the whole detector (a new, empty window) when the previous update
        detected a drift, then feeds the core; so the batch is fed in runs that end at a
        detection, with that reset before the next run, exactly as River's loop does (the
        tests compare the two on seeded streams with drifts).
        """
        hits: list[int] = []
        start = 0
        while start < len(values):
            if detector.drift_detected:
                detector._reset()
            flags = map(detector._helper.update, islice(values, start, None))
            hit = next(compress(count(start), flags), None)  # lazy: feeds up to the detection
            detector._drift_detected = hit is not None
            if hit is None:
                break
            hits.append(hit)
            start = hit + 1
        return hits

    def update_many(self, values: np.ndarray) -> list[Detection]:
        detector = self._detector
        helper = getattr(detector, "_helper", None)
        if isinstance(detector, drift.ADWIN) and helper is not None:
            hits = self._adwin_many(detector, values.tolist())
        else:
            hits = []
            update = detector.update
            for i, x in enumerate(values.tolist()):
                update(x)
                if detector.drift_detected:
                    hits.append(i)
        self.seen += len(values)
        if not hits:
            return []
        width = getattr(detector, "width", None)  # the window ADWIN kept: the changed part
        return [
            Detection(
                self.signal,
                self.detector,
                i,
                feature=self.feature,
                window_rows=int(width) if width is not None else None,
            )
            for i in hits
        ]


class WindowTestMonitor:
    """Tumbling-window two-sample tests of several columns against a reference.

    Parameters
    ----------
    signal
        "feature" or "prediction".
    numeric_reference
        Column name -> reference sample (the samples must have equal lengths).
    categorical_reference
        Column name -> reference category counts.
    window
        Rows per tested window.
    alpha
        Family-wise false-alarm level of one window's tests (Holm across columns).
    """

    def __init__(
        self,
        signal: str,
        numeric_reference: Mapping[str, Sequence[float]],
        categorical_reference: Mapping[str, Mapping[str, int]],
        window: int,
        alpha: float,
    ) -> None:
        self.signal = signal
        self.detector = "window_test"
        self.window = window
        self.alpha = alpha
        self.numeric_names = list(numeric_reference)
        self.categorical_names = list(categorical_reference)
        self._reference: np.ndarray | None = None
        self.attach_reference(numeric_reference)
        self._categories = {name: dict(counts) for name, counts in categorical_reference.items()}
        self._numeric: list[np.ndarray] = []
        self._categorical: list[list[str]] = [[] for _ in self.categorical_names]
        self._buffered = 0
        self._drift = False
        self.seen = 0

    def __getstate__(self) -> dict[str, Any]:
        # The reference sample is not state: it is re-attached from the model on restore.
        state = dict(self.__dict__)
        state["_reference"] = None
        return state

    def attach_reference(self, numeric_reference: Mapping[str, Sequence[float]]) -> None:
        """Give a restored monitor its reference sample back."""
        self._reference = (
            np.column_stack([np.asarray(numeric_reference[n], dtype=np.float64) for n in self.numeric_names])
            if self.numeric_names
            else np.empty((0, 0))
        )

    @property
    def drift_detected(self) -> bool:
        """True if the latest completed window differed from the reference."""
        return self._drift

    def update(self, x: Sequence[Any]) -> WindowTestMonitor:
        """One row: the numeric values (in ``numeric_names`` order), then the categories."""
        k = len(self.numeric_names)
        numeric = np.asarray([x[:k]], dtype=np.float64)
        self.update_many(numeric, [[v] for v in x[k:]])
        return self

    def update_many(self, numeric: np.ndarray, categorical: Sequence[Sequence[str]] = ()) -> list[Detection]:
        """Rows as a matrix (numeric columns) and per-column category lists."""
        n = len(numeric) if self.numeric_names else len(categorical[0])
        carried = self._buffered  # rows of earlier calls not tested yet
        if self.numeric_names:
            self._numeric.append(numeric)
        for buffer, column in zip(self._categorical, categorical, strict=False):
            buffer.extend(column)
        self._buffered += n
        found: list[Detection] = []
        tested = 0
        while self._buffered >= self.window:
            detection = self._test_window()
            tested += 1
            if detection is not None:
                last_row = tested * self.window - carried - 1  # the window's last row, in this call
                found.append(
                    Detection(
                        detection.signal,
                        detection.detector,
                        last_row,
                        detection.feature,
                        detection.statistic,
                        detection.p_value,
                        detection.effect,
                        self.window,
                    )
                )
        self.seen += n
        return found

    def _take_window(self) -> tuple[np.ndarray, list[list[str]]]:
        w = self.window
        if self.numeric_names:
            stacked = np.concatenate(self._numeric) if len(self._numeric) > 1 else self._numeric[0]
            window, rest = stacked[:w], stacked[w:]
            self._numeric = [rest] if len(rest) else []
        else:
            window = np.empty((w, 0))
        categories = [buffer[:w] for buffer in self._categorical]
        self._categorical = [buffer[w:] for buffer in self._categorical]
        self._buffered -= w
        return window, categories

    def _test_window(self) -> Detection | None:
        numeric, categorical = self._take_window()
        names: list[str] = []
        statistics: list[float] = []
        p_values: list[float] = []
        if self.numeric_names:
            assert self._reference is not None, "restored without attach_reference()"
            ks, p = ks_many(self._reference, numeric)
            names += self.numeric_names
            statistics += ks.tolist()
            p_values += p.tolist()
        effects: dict[int, float] = {}
        for name, column in zip(self.categorical_names, categorical, strict=True):
            chi2, p_value, effect = chi_square(self._categories[name], column)
            effects[len(names)] = effect
            names.append(name)
            statistics.append(chi2)
            p_values.append(p_value)
        rejected = holm(p_values, self.alpha)
        self._drift = bool(rejected.any())
        if not self._drift:
            return None
        strongest = int(min(np.flatnonzero(rejected), key=lambda j: p_values[j]))
        if strongest < len(self.numeric_names):  # PSI only for what is reported
            assert self._reference is not None
            effects[strongest] = decile_psi(self._reference[:, strongest], numeric[:, strongest])
        return Detection(
            self.signal,
            "ks" if strongest < len(self.numeric_names) else "chi_square",
            0,
            feature=names[strongest] if self.signal == "feature" else None,
            statistic=statistics[strongest],
            p_value=p_values[strongest],
            effect=effects[strongest],
        )
