"""`driftloop backtest` and `driftloop bench detection` from the command line (no Kafka)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from streaming.benchmarks.detection import STREAM_TYPES, make_stream


def driftloop(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streaming.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def drifting_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An Agrawal stream (numeric and categorical columns) whose concept changes at row 6,000."""
    kind = next(t for t in STREAM_TYPES if t.name == "agrawal_abrupt")
    frame = make_stream(kind, seed=3, rows=9000, onset=6000)
    frame.insert(0, "id", [f"row-{i}" for i in range(len(frame))])
    path = tmp_path_factory.mktemp("backtest") / "agrawal.csv"
    frame.to_csv(path, index=False)
    return path


def test_backtest_writes_one_event_per_line_with_the_row_it_fired_at(
    drifting_csv: Path, tmp_path: Path
) -> None:
    output = tmp_path / "detections.jsonl"
    done = driftloop(
        "backtest", str(drifting_csv), "--label-column", "y", "--train-rows", "3000",
        "--ignore", "id", "--output", str(output),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in output.read_text().splitlines()]
    assert events, done.stdout
    assert all(
        isinstance(e["row"], int) and e["signal"] in {"feature", "prediction", "label", "error"}
        for e in events
    )
    assert min(e["row"] for e in events) >= 6000, "an alarm before the drift"
    assert min(e["row"] for e in events) < 7000
    assert "drift event(s)" in done.stdout


def test_backtest_with_retraining_runs_the_flows_candidate_selection_and_reports_both_outcomes(
    drifting_csv: Path, tmp_path: Path
) -> None:
    done = driftloop(
        "backtest", str(drifting_csv), "--label-column", "y", "--train-rows", "3000", "--ignore", "id",
        "--retrain", "--output", str(tmp_path / "d.jsonl"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "prequential results" in done.stdout
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    static, retrained = summary["static"], summary["retrained"]
    assert retrained["retrains_at_rows"], summary
    attempt = retrained["attempts"][0]
    assert attempt["accepted"] and attempt["winner"] in {w["name"] for w in attempt["windows"]}
    assert {w["name"] for w in attempt["windows"]} == {"since_drift", "recent", "history"}
    assert all(w["skipped"] or w["objective"] >= 0 for w in attempt["windows"])
    # The new concept (Agrawal function 1 -> 4) costs the static model; the loop recovers.
    assert retrained["cost"] < static["cost"] and retrained["accuracy"] > static["accuracy"], summary
    assert summary["decision"]["policy"] == "cost" and 0 < attempt["threshold"] < 1


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f.drop(columns=["y"]), "label column 'y' not found"),
        (lambda f: f.assign(y=f["y"].replace({1: 2})), "label column 'y' must hold 0/1; row"),
        (lambda f: f.assign(salary=f["salary"].where(f.index != 17)), "numeric column 'salary': row 17"),
        (lambda f: f.iloc[:100], "more than --train-rows=3000 are needed"),
    ],
)
def test_a_bad_file_is_one_clear_error_naming_the_column_or_row(
    drifting_csv: Path,
    tmp_path: Path,
    mutate,
    message: str,  # type: ignore[no-untyped-def]
) -> None:
    bad = tmp_path / "bad.csv"
    mutate(pd.read_csv(drifting_csv)).to_csv(bad, index=False)
    done = driftloop("backtest", str(bad), "--label-column", "y", "--train-rows", "3000", "--ignore", "id")
    assert done.returncode == 1
    assert message in " ".join(done.stderr.split()), done.stderr
    assert "Traceback" not in done.stderr
    assert "np." not in done.stderr, "values are shown as plain Python, not numpy reprs"


def test_columns_that_look_like_ids_or_timestamps_are_refused_as_features_by_name(
    drifting_csv: Path, tmp_path: Path
) -> None:
    frame = pd.read_csv(drifting_csv)
    frame["seq"] = range(len(frame))
    frame["opened"] = pd.date_range("2020-01-01", periods=len(frame), freq="h").strftime("%d/%m/%Y %H:%M")
    table = tmp_path / "with_ids.csv"
    frame.to_csv(table, index=False)
    base = ("backtest", str(table), "--label-column", "y", "--train-rows", "3000")
    done = driftloop(*base)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    message = " ".join(done.stderr.split())
    for named in ("'id' (unique per row)", "'seq' (monotonic)", "'opened' (date-like)", "--ignore id"):
        assert named in message, message
    assert "--allow-column" in message
    output = tmp_path / "d.jsonl"
    kept = driftloop(
        *base, "--ignore", "id", "--ignore", "opened", "--allow-column", "seq", "--output", str(output)
    )
    assert kept.returncode == 0, kept.stderr
    assert any(e["feature"] == "seq" for e in map(json.loads, output.read_text().splitlines())), (
        "a counter, kept as a feature, drifts by construction"
    )


def test_bench_detection_prints_its_table_and_a_json_line() -> None:
    done = driftloop(
        "bench",
        "detection",
        "--seeds",
        "1",
        "--type",
        "sea_prior",
        "--type",
        "stationary",
        "--partitions",
        "1,4",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(result["streams"]) == {"sea_prior", "stationary"}
    methods = {"monitor@1", "per_partition@1", "monitor@4", "per_partition@4", "adwin_errors", "ks_windows"}
    assert set(result["summary"]) == methods
    sea_prior = result["streams"]["sea_prior"]
    assert sea_prior["monitor@4"]["streams"] == 1
    assert sea_prior["monitor@4"]["alarms_per_drift"] == 1.0, "one drift, one event"


def test_a_label_delay_in_event_time_reveals_labels_as_late_as_the_same_delay_in_rows(
    drifting_csv: Path, tmp_path: Path
) -> None:
    """One row a minute: labels 3 hours late are labels 180 rows late, alarm for alarm."""
    frame = pd.read_csv(drifting_csv)
    frame["event_time"] = pd.date_range("2026-01-01", periods=len(frame), freq="min", tz="UTC")
    timed = tmp_path / "timed.csv"
    frame.to_csv(timed, index=False)
    rows: dict[str, list[tuple[int, str]]] = {}
    for delay in ("180", "3h"):
        output = tmp_path / f"{delay}.jsonl"
        done = driftloop(
            "backtest", str(timed), "--label-column", "y", "--train-rows", "3000", "--ignore", "id",
            "--ignore", "event_time", "--label-delay", delay, "--output", str(output),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        rows[delay] = [(e["row"], e["signal"]) for e in map(json.loads, output.read_text().splitlines())]
    assert rows["3h"] == rows["180"]
    assert any(signal == "error" for _, signal in rows["3h"]), rows["3h"]

    unsorted = tmp_path / "unsorted.csv"
    frame.iloc[::-1].to_csv(unsorted, index=False)
    done = driftloop(
        "backtest", str(unsorted), "--label-column", "y", "--ignore", "id", "--label-delay", "3d"
    )
    assert done.returncode != 0
    assert "needs the rows in 'event_time' order" in done.stderr, done.stderr
