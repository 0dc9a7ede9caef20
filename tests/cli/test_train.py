"""`driftloop simulate --output` and `driftloop train` from the command line, against the real broker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from streaming.config import Settings, child_env
from streaming.events import ModelUpdate
from streaming.models.first_champion import open_registry
from tests.kafka_helpers import decode_all, read_topic

pytestmark = pytest.mark.integration


def driftloop(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streaming.cli", *args],
        env=child_env(settings),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_simulate_train_register_and_publish(driftloop_settings: Settings, tmp_path: Path) -> None:
    history = tmp_path / "history.csv"
    made = driftloop(driftloop_settings, "simulate", "--count", "3000", "--output", str(history))
    assert made.returncode == 0, made.stderr
    assert len(pd.read_csv(history)) == 3000

    trained = driftloop(driftloop_settings, "train", "--input", str(history), "--threshold", "0.4")
    assert trained.returncode == 0, trained.stderr
    assert "registered fraud v1" in trained.stdout and "published v1 as champion" in trained.stdout

    manifest = open_registry(driftloop_settings).manifest("fraud", "v1")
    assert manifest.threshold == 0.4
    assert manifest.lineage["source"] == str(history)
    assert manifest.metrics["roc_auc"] > 0.8
    updates = decode_all(
        read_topic(driftloop_settings, driftloop_settings.topics.model_updates, lambda rs: len(rs) >= 1),
        ModelUpdate,
    )
    assert [(u.version, u.status, u.sha256, u.signature) for u in updates] == [
        ("v1", "champion", manifest.sha256, manifest.signature)
    ]


def test_a_bad_training_file_is_one_clear_error(driftloop_settings: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"amount": [1.0, 2.0], "label": [0, 1]}).to_csv(bad, index=False)
    result = driftloop(driftloop_settings, "train", "--input", str(bad))
    assert result.returncode == 1
    assert "lacks column(s): hour_of_day" in result.stderr
    assert "Traceback" not in result.stderr
