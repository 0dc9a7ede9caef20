"""`driftloop demo --short` end to end: the loop closes and pays for itself."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_the_demo_detects_retrains_promotes_and_beats_the_static_model(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    report = tmp_path / "report.html"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLOOP_")}
    env.update(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, DRIFTLOOP_HOME=str(tmp_path / "home"))
    done = subprocess.run(
        [sys.executable, "-m", "streaming.cli", "demo", "--short", "--report", str(report)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["drift_events_after_onset"] >= 1, summary
    assert summary["challengers"] >= 1 and summary["promotions"] >= 1, summary
    assert summary["loop_fraud_caught"] > summary["static_fraud_caught"], summary
    assert summary["seconds_onset_to_detection"] <= summary["seconds_onset_to_promotion"], summary

    page = report.read_text()
    assert not re.search(r"<script[^>]+src=", page), "the report must not load scripts from anywhere"
    assert "Plotly.newPlot" in page and "plotly.js" in page.lower()
    for heading in ("Drift signals over time", "Feature distributions", "Model performance", "Timeline"):
        assert heading in page
    assert f"{summary['loop_fraud_caught']}" in page
