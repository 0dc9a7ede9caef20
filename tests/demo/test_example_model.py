"""The whole loop with a team's own model and training code: examples/card_model.

`driftloop --config examples/card_model/driftloop.toml demo --short` on the real broker and
a real Prefect server: the first champion comes from the team's training function (a
Pipeline with its own feature transformer and a LogisticRegression), the drift starts a
retraining flow run that calls the same function, and its challenger is canaried and promoted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streaming.config import load_settings
from streaming.models.first_champion import open_registry
from tests.demo.test_demo import run_demo

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).parents[2] / "examples" / "card_model" / "driftloop.toml"


def test_the_example_model_is_trained_retrained_by_its_own_function_canaried_and_promoted(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    done = run_demo(kafka_bootstrap, home, "--config", str(CONFIG), "demo", "--short")
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["drift_events_after_onset"] >= 1, summary
    assert summary["challengers"] >= 1 and summary["promotions"] >= 1, summary

    [run] = list((home / "demo").iterdir())
    settings = load_settings(CONFIG, home=run, registry={"path": run / "registry"})
    registry = open_registry(settings)
    versions = registry.versions("card")
    assert len(versions) >= 2, versions
    for version in versions:  # every version: the team's pipeline, fitted by the team's function
        manifest = registry.manifest("card", version)
        assert manifest.model_input == "frame"
        assert manifest.lineage["training_code"]["function"] == "card_model.train:train"
        assert manifest.lineage["training_code"]["params"] == {"C": 0.5}
        loaded = registry.load("card", version)
        assert type(loaded.estimator).__name__ == "Pipeline"
        assert type(loaded.estimator.steps[0][1]).__name__ == "CardFeatures"
    challenger = registry.manifest("card", versions[1])
    assert challenger.lineage.get("drift_event_id"), challenger.lineage
