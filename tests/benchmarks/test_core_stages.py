"""`driftloop bench throughput`'s in-process stages (no Kafka): every stage of the scorer's
own work is measured, and the compiled walk is measured against its signed-index baseline."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from streaming.benchmarks.throughput import measure_core
from streaming.config import load_settings
from streaming.models.first_champion import open_registry, train_and_register
from streaming.models.training import TrainingParams


def test_every_stage_of_the_scorers_own_work_is_measured(history: pd.DataFrame, tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home")
    manifest = train_and_register(settings, history, params=TrainingParams(max_iter=20))
    core = measure_core(settings, count=2000, batch=500, repeats=1)
    stages = ["decode", "model_input", "predict", "score_events", "encode_scores"]
    assert all(core[f"core_{stage}_us_per_event"] > 0 for stage in stages), core
    total = sum(core[f"core_{stage}_us_per_event"] for stage in stages)
    assert abs(core["core_us_per_event"] - total) < 0.01, core
    # The baseline walks the same trees: the same numbers, from signed node indices.
    loaded = open_registry(settings).load(settings.model_name, manifest.version)
    assert loaded.walker is not None
    matrix = loaded.encoder.matrix(
        [settings.feature_spec().values(r) for r in history.head(300).to_dict("records")]
    )
    signed = loaded.walker.with_signed_indices()
    assert (signed.predict_proba(matrix) == loaded.predict_proba(matrix)).all()
    assert core["core_predict_signed_indices_us_per_event"] > 0
