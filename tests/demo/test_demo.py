"""`driftloop demo --short` end to end: the loop closes and pays for itself; Ctrl-C is clean."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streaming.config import KafkaSettings
from streaming.kafka.clients import make_admin
from tests.clients import CLIENTS
from tests.kafka_helpers import records_written
from tests.waiting import eventually

pytestmark = pytest.mark.integration


def demo_env(kafka_bootstrap: str, home: Path, client: str = "kafka-python") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLOOP_")}
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, DRIFTLOOP_HOME=str(home), DRIFTLOOP_KAFKA__CLIENT=client
    )
    return env


def run_demo(
    kafka_bootstrap: str, home: Path, *args: str, client: str = "kafka-python"
) -> subprocess.CompletedProcess[str]:
    """`driftloop <args>` (a demo) on ``client`` to its end, at most 10 minutes."""
    return subprocess.run(
        [sys.executable, "-m", "streaming.cli", *args],
        env=demo_env(kafka_bootstrap, home, client),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def demo_topics(kafka_bootstrap: str, run_home: Path) -> list[str]:
    admin = make_admin(KafkaSettings(bootstrap_servers=kafka_bootstrap))
    try:
        return [t for t in admin.list_topics() if t.startswith(f"demo-{run_home.name}-")]
    finally:
        admin.close()


def scores_written(kafka_bootstrap: str, home: Path) -> int:
    """Scores on the running demo's scores topic so far (0 before it exists)."""
    runs = list(home.glob("demo/*"))
    if not runs:
        return 0
    return records_written(KafkaSettings(bootstrap_servers=kafka_bootstrap), f"demo-{runs[0].name}-scores")


def assert_running(demo: subprocess.Popen[str]) -> None:
    assert demo.poll() is None, demo.communicate()[1][-3000:]


@pytest.mark.parametrize("client", CLIENTS)
def test_the_demo_detects_retrains_promotes_and_beats_the_static_model(
    kafka_bootstrap: str, tmp_path: Path, client: str
) -> None:
    report = tmp_path / "report.html"
    done = run_demo(
        kafka_bootstrap, tmp_path / "home", "demo", "--short", "--report", str(report), client=client
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(summary))  # the whole summary in the test's output (pytest cuts dicts short)
    assert summary["interrupted"] is False
    # Labels a day late in event time at the median, matched by the join: the report reads them.
    assert summary["median_label_delay_h"] >= 12, summary
    assert summary["labelled"] >= 0.95 * summary["transactions"], summary
    assert summary["drift_events_after_onset"] >= 1, summary
    assert summary["challengers"] >= 1 and summary["promotions"] >= 1, json.dumps(summary)
    assert summary["loop_fraud_caught"] > summary["static_fraud_caught"], summary
    assert summary["seconds_onset_to_detection"] <= summary["seconds_onset_to_promotion"], summary

    page = report.read_text()
    assert not re.search(r"<script[^>]+src=", page), "the report must not load scripts from anywhere"
    assert "Plotly.newPlot" in page and "plotly.js" in page.lower()
    for heading in ("Drift signals over time", "Feature distributions", "Model performance", "Timeline"):
        assert heading in page
    assert f"{summary['loop_fraud_caught']}" in page
    assert "Interrupted run" not in page

    # The live view kept the terminal; every log line went to the run's log file.
    (run_home,) = (tmp_path / "home" / "demo").iterdir()
    log = (run_home / "demo.log").read_text()
    assert f"logs: {run_home / 'demo.log'}" in done.stdout
    assert '"message":"scoring ' in log and "Traceback" not in done.stderr
    assert demo_topics(kafka_bootstrap, run_home) == [], "the demo deletes its topics"


def test_ctrl_c_stops_the_demo_within_seconds_and_keeps_the_previous_report(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    report = tmp_path / "report.html"
    report.write_text("the last complete report")
    home = tmp_path / "home"
    demo = subprocess.Popen(
        [sys.executable, "-m", "streaming.cli", "demo", "--short", "--report", str(report)],
        env=demo_env(kafka_bootstrap, home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Interrupt once a few thousand transactions are scored: there is something to report.
        eventually(
            lambda: scores_written(kafka_bootstrap, home) >= 3000,
            "the demo scoring 3,000 transactions",
            timeout_s=180,
            every_s=0.5,
            alive=lambda: assert_running(demo),
        )
        demo.send_signal(signal.SIGINT)
        interrupted_at = time.monotonic()
        stdout, stderr = demo.communicate(timeout=60)
        took = time.monotonic() - interrupted_at
    finally:
        demo.kill()
    assert demo.returncode == 130, stderr[-3000:]
    assert took < 10, f"the demo took {took:.1f} s to stop"
    assert "stopping" in stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["interrupted"] is True and summary["transactions"] > 0, summary
    assert report.read_text() == "the last complete report", "a partial run never overwrites a report"
    partial = (tmp_path / "report.interrupted.html").read_text()
    assert "Interrupted run" in partial
    (run_home,) = (home / "demo").iterdir()
    assert demo_topics(kafka_bootstrap, run_home) == [], "an interrupted demo deletes its topics too"
