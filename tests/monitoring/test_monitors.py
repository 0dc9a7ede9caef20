"""Contract tests: every monitor through the same checks, plus the suite and its state."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from streaming.config import MonitoringSettings
from streaming.detectors import DETECTORS, is_binary, make_detector
from streaming.errors import ConfigError, StateRejectedError
from streaming.features import FeatureSpec
from streaming.models.reference import build_reference
from streaming.monitoring.episodes import Episodes
from streaming.monitoring.monitors import DetectorMonitor, WindowTestMonitor
from streaming.monitoring.state import seal, unseal

# -- the contract ------------------------------------------------------------------------

Stream = Callable[[np.random.Generator, int, bool], Any]  # (rng, n, shifted) -> inputs


def continuous(rng: np.random.Generator, n: int, shifted: bool) -> np.ndarray:
    """Reference ranks: uniform while nothing moves, pushed upwards after a shift."""
    values = rng.random(n)
    return np.sqrt(values) if shifted else values


def binary(rng: np.random.Generator, n: int, shifted: bool) -> np.ndarray:
    """Error indicators: 10% errors, 30% after the shift."""
    return rng.binomial(1, 0.3 if shifted else 0.1, n).astype(np.float64)


_REFERENCE = np.sort(np.random.default_rng(99).normal(size=(2000, 2)), axis=0)
_CATEGORIES = {"channel": {"pos": 1400, "online": 600}}


def window_rows(rng: np.random.Generator, n: int, shifted: bool) -> tuple[np.ndarray, list[list[str]]]:
    numeric = rng.normal(loc=0.4 if shifted else 0.0, size=(n, 2))
    channel = rng.choice(["pos", "online"], p=[0.7, 0.3], size=n).tolist()
    return numeric, [channel]


#: Parameters under which each detector meets the contract (DDM and EDDM's defaults do not).
CONTRACT_PARAMS: dict[str, dict[str, Any]] = {
    "adwin": {"delta": 1e-4},
    "ddm": {"warm_start": 1000, "drift_threshold": 4.0},
    "eddm": {"warm_start": 500, "beta": 0.7},
}


def detector_monitor(name: str) -> Callable[[], Any]:
    params = CONTRACT_PARAMS.get(name, {})
    return lambda: DetectorMonitor("error" if is_binary(name) else "feature", name, params)


MONITORS: dict[str, tuple[Callable[[], Any], Stream]] = {
    **{
        f"detector:{name}": (
            detector_monitor(name),
            binary if is_binary(name) or name == "hddm_a" else continuous,
        )
        for name in DETECTORS
    },
    "window_test": (
        lambda: WindowTestMonitor(
            "feature", {"a": _REFERENCE[:, 0], "b": _REFERENCE[:, 1]}, _CATEGORIES, window=500, alpha=0.001
        ),
        window_rows,
    ),
}


def feed(monitor: Any, inputs: Any) -> list[int]:
    """Feed in micro-batches of 250; the rows (from 0) at which the monitor detected drift."""
    found = []
    numeric = inputs[0] if isinstance(inputs, tuple) else inputs
    for start in range(0, len(numeric), 250):
        if isinstance(inputs, tuple):
            detections = monitor.update_many(
                inputs[0][start : start + 250], [c[start : start + 250] for c in inputs[1]]
            )
        else:
            detections = monitor.update_many(inputs[start : start + 250])
        found += [start + d.index for d in detections]
    return found


@pytest.mark.parametrize("name", sorted(MONITORS))
def test_no_alarm_on_a_stationary_stream(name: str) -> None:
    make, stream = MONITORS[name]
    assert feed(make(), stream(np.random.default_rng(1), 10_000, False)) == []


@pytest.mark.parametrize("name", sorted(MONITORS))
def test_an_alarm_soon_after_a_shift(name: str) -> None:
    make, stream = MONITORS[name]
    rng = np.random.default_rng(2)
    monitor = make()
    assert feed(monitor, stream(rng, 5000, False)) == []
    after = feed(monitor, stream(rng, 3000, True))
    assert after, "no detection within 3,000 rows of the shift"


@pytest.mark.parametrize("name", sorted(MONITORS))
def test_state_round_trip_gives_identical_behaviour(name: str) -> None:
    make, stream = MONITORS[name]
    rng = np.random.default_rng(3)
    before, after = stream(rng, 4000, False), stream(rng, 3000, True)
    original = make()
    feed(original, before)
    copy = pickle.loads(pickle.dumps(original))
    if isinstance(copy, WindowTestMonitor):
        copy.attach_reference({"a": _REFERENCE[:, 0], "b": _REFERENCE[:, 1]})
    assert feed(copy, after) == feed(original, after)
    assert feed(copy, after) != [] or name.startswith("detector:")  # window tests see every window


def test_kswin_and_unknown_detectors_are_refused_with_a_reason() -> None:
    with pytest.raises(ConfigError, match="hot path"):
        make_detector("kswin")
    with pytest.raises(ConfigError, match="unknown drift detector 'adwn'"):
        make_detector("adwn")
    with pytest.raises(ConfigError, match="0/1 inputs"):
        MonitoringSettings(feature_detector="ddm")


# -- pieces --------------------------------------------------------------------------


def test_episodes_need_a_quiet_cooldown_before_a_new_alarm() -> None:
    episodes = Episodes(warmup=10, cooldown=100)
    assert not episodes.fire("error", 5)  # warm-up
    assert episodes.fire("error", 20)
    assert not any(episodes.fire("error", at) for at in range(30, 500, 50))  # keeps detecting
    assert episodes.fire("error", 700)
    assert episodes.fire("label", 30)  # signals are independent
    assert episodes.alarms == {"error": 2, "label": 1}


def test_a_snapshot_that_driftloop_did_not_sign_is_never_unpickled() -> None:
    class Bomb:
        def __reduce__(self) -> Any:
            return (pytest.fail, ("unpickled an unsigned snapshot",))

    raw = seal(
        Bomb(),
        b"attacker-key-000000",
        group="g",
        topic="t",
        partition=0,
        offset=1,
        labels_offset=0,
        model_version="v1",
    )
    with pytest.raises(StateRejectedError, match="bad_signature"):
        unseal(raw, b"driftloop-key-0000000")
    with pytest.raises(StateRejectedError, match="invalid"):
        unseal(b"\x00garbage", b"driftloop-key-0000000")


def test_the_reference_is_built_from_the_holdout_and_pit_is_uniform_on_it() -> None:
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=5000), "c": rng.choice(["a", "b"], size=5000)})
    spec = FeatureSpec.from_mapping({"x": "numeric", "c": "categorical"})
    reference = build_reference(frame, spec, rng.random(5000), rng.binomial(1, 0.1, 5000))
    assert reference.rows == 2000 and len(reference.numeric["x"]) == 2000
    ranks = reference.pit("x", rng.normal(size=20_000))
    assert abs(ranks.mean() - 0.5) < 0.02 and ranks.min() >= 0.0 and ranks.max() <= 1.0


@pytest.mark.parametrize("name", sorted(DETECTORS))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_update_many_detects_at_the_same_rows_as_rivers_own_update_loop(name: str, seed: int) -> None:
    """The vectorized batch path (ADWIN's core mapped over the batch) against River's plain
    ``update`` loop, on seeded streams with two drifts, fed in uneven micro-batches."""
    rng = np.random.default_rng(seed)
    make = binary if is_binary(name) else continuous
    stream = np.concatenate([make(rng, 3000, False), make(rng, 1500, True), make(rng, 3000, False)])
    params = {"delta": 0.002} if name == "adwin" else {}
    river = make_detector(name, **params)
    expected = []
    for i, x in enumerate(stream.tolist()):
        river.update(x)
        if river.drift_detected:
            expected.append(i)
    monitor = DetectorMonitor("error", name, params)
    found: list[int] = []
    start = 0
    for size in [1, 999, 1000, 17, 2500, 3000]:
        batch = stream[start : start + size]
        found += [start + d.index for d in monitor.update_many(batch)]
        start += size
    assert start >= len(stream)
    assert found == expected
    assert expected or name != "adwin", "ADWIN sees the drifts at all"
    assert monitor.drift_detected == river.drift_detected
