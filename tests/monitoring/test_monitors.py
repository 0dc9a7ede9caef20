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
from streaming.monitoring.suite import MonitorSuite
from streaming.simulation.generator import SCENARIOS, TransactionSimulator

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


# -- the suite -------------------------------------------------------------------------


def simulated_suite(settings: MonitoringSettings | None = None) -> tuple[MonitorSuite, FeatureSpec]:
    from streaming.config import DEFAULT_FEATURES
    from streaming.models.training import TrainingParams, train_classifier

    spec = FeatureSpec.from_mapping(DEFAULT_FEATURES)
    history = TransactionSimulator(seed=7).generate(6000)
    model = train_classifier(history, spec, params=TrainingParams(max_iter=20))
    suite = MonitorSuite(settings or MonitoringSettings(), spec, model.reference)
    suite.model = model  # type: ignore[attr-defined]
    return suite, spec


def run_suite(
    suite: MonitorSuite, spec: FeatureSpec, frame: Any, start: int, label_lag: int = 0
) -> list[Any]:
    model = suite.model  # type: ignore[attr-defined]
    alarms = []
    for begin in range(0, len(frame), 500):
        chunk = frame.iloc[begin : begin + 500]
        scores = model.predict_proba(model.encoder.frame_matrix(chunk))
        positions = np.arange(start + begin, start + begin + len(chunk))
        alarms += suite.observe_scored(
            chunk[list(spec.numeric)].to_numpy(dtype=np.float64),
            [chunk[name].tolist() for name in spec.categorical],
            scores,
            positions,
        )
        alarms += suite.observe_outcomes(scores, scores >= 0.5, chunk["label"].to_numpy())
    return alarms


def test_the_suite_stays_quiet_on_the_baseline_and_raises_one_feature_alarm_on_a_covariate_shift() -> None:
    suite, spec = simulated_suite()
    simulator = TransactionSimulator(seed=8)
    assert run_suite(suite, spec, simulator.generate(20_000), 0) == []
    alarms = run_suite(suite, spec, simulator.generate(10_000, SCENARIOS["covariate"]), 20_000)
    signals = [a.signal for a in alarms]
    assert "feature" in signals
    assert signals.count("feature") == 1, "one alarm per signal per episode, not a storm"
    first = next(a for a in alarms if a.signal == "feature")
    assert first.position - 20_000 < 2000
    event = first.to_event("fraud", "v1", partition=3)
    assert event.partition == 3 and event.offset_end == first.position
    assert event.before is not None and event.after is not None and event.after.count > 0
    assert event.event_id == first.to_event("fraud", "v1", partition=3).event_id  # deterministic
    assert event.event_id != first.to_event("fraud", "v1", partition=2).event_id


def test_the_suite_sees_a_fraud_wave_in_the_labels() -> None:
    suite, spec = simulated_suite()
    simulator = TransactionSimulator(seed=9)
    assert run_suite(suite, spec, simulator.generate(10_000), 0) == []
    alarms = run_suite(suite, spec, simulator.generate(10_000, SCENARIOS["prior"]), 10_000)
    assert "label" in {a.signal for a in alarms}


def test_a_restored_suite_detects_exactly_like_the_uninterrupted_one() -> None:
    suite, spec = simulated_suite()
    simulator = TransactionSimulator(seed=10)
    baseline, shifted = simulator.generate(8000), simulator.generate(6000, SCENARIOS["covariate"])
    run_suite(suite, spec, baseline, 0)
    key = b"k" * 32
    model = suite.model  # type: ignore[attr-defined]
    del suite.model  # type: ignore[attr-defined]
    raw = seal(
        suite, key, group="g", topic="t", partition=0, offset=8000, labels_offset=0, model_version="v1"
    )
    suite.model = model  # type: ignore[attr-defined]
    _, restored = unseal(raw, key)
    assert len(raw) < 150_000, "the model's reference must not travel in snapshots"
    restored.attach_reference(suite.model.reference)  # type: ignore[attr-defined]
    restored.model = suite.model  # type: ignore[attr-defined]
    expected = [(a.signal, a.position) for a in run_suite(suite, spec, shifted, 8000)]
    assert expected
    assert [(a.signal, a.position) for a in run_suite(restored, spec, shifted, 8000)] == expected


def test_a_model_without_a_reference_takes_its_first_live_rows_as_one() -> None:
    suite, spec = simulated_suite(MonitoringSettings(reference_rows=2000))
    fresh = MonitorSuite(suite.settings, spec, None)
    fresh.model = suite.model  # type: ignore[attr-defined]
    simulator = TransactionSimulator(seed=11)
    assert run_suite(fresh, spec, simulator.generate(12_000), 0) == []
    assert fresh.reference is not None and fresh.reference.rows == 2000
    alarms = run_suite(fresh, spec, simulator.generate(6000, SCENARIOS["covariate"]), 12_000)
    assert "feature" in {a.signal for a in alarms}


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
