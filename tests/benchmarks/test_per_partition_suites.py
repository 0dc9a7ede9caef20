"""The detection benchmark's baseline, the per-partition suites the scorer used to run."""

from __future__ import annotations

from typing import Any

import numpy as np

from streaming.benchmarks.per_partition_suites import MonitorSuite
from streaming.config import MonitoringSettings
from streaming.features import FeatureSpec
from streaming.monitoring.state import seal, unseal
from streaming.simulation.generator import SCENARIOS, TransactionSimulator


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
