"""``driftloop backtest``: the drift monitors over a table, without Kafka."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console

from streaming.cli._common import ConfigOption, app, settings_of
from streaming.config import load_settings

if TYPE_CHECKING:
    from streaming.config import DecisionSettings
    from streaming.monitoring.backtest import BacktestResult, Outcome


_Output = Annotated[Path, typer.Option(help="Write one DriftEvent JSON object per line here.")]
_AllowColumn = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option(
        help="Keep this column as a feature although it looks like an identifier or a timestamp "
        "(unique per row, monotonic, date-like); repeatable."
    ),
]
_RetrainRule = Annotated[
    str,
    typer.Option(
        help="selection: the retraining flow's own candidate selection (windows since the drift, "
        "recent rows, weighted history; the best on the newest labelled rows, if it beats the "
        "champion); since_drift: the earlier rule (rows since the alarm, fixed 0.5 threshold)."
    ),
]
_FpCost = Annotated[
    Optional[float],  # noqa: UP045
    typer.Option(min=0, help="Cost of a false alert; default: decision.fp_cost from the configuration."),
]
_FnCost = Annotated[
    Optional[float],  # noqa: UP045
    typer.Option(min=0, help="Cost of a missed fraud; default: decision.fn_cost from the configuration."),
]
_Partitions = Annotated[
    int,
    typer.Option(
        min=1,
        help="Simulated source partitions the rows are split over (round-robin), each micro-batch "
        "one evidence record per partition, merged by one monitor as `driftloop monitor` does.",
    ),
]


@app.command("backtest")
def backtest(
    ctx: typer.Context,
    input_file: Annotated[
        Path, typer.Argument(metavar="INPUT", help="CSV (or Parquet) with feature columns and a 0/1 label.")
    ],
    label_column: Annotated[str, typer.Option(help="The binary label column.")] = "label",
    output: _Output = Path("detections.jsonl"),
    train_rows: Annotated[int, typer.Option(min=100, help="Rows that train the initial model.")] = 5000,
    label_delay: Annotated[
        str,
        typer.Option(
            help="When each label is revealed: a number of rows after its row (500), or a duration "
            "after its row's time (45s, 90m, 36h, 3d, 2w; needs --time-column, rows in time order).",
        ),
    ] = "0",
    time_column: Annotated[
        str, typer.Option(help="The event-time column, for a --label-delay duration (not a feature then).")
    ] = "event_time",
    ignore: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(help="Columns that are not features (ids, timestamps); repeatable."),
    ] = None,
    allow_column: _AllowColumn = None,
    retrain: Annotated[
        bool, typer.Option(help="Also simulate retraining on drift; compare accuracy and cost.")
    ] = False,
    retrain_rule: _RetrainRule = "selection",
    fp_cost: _FpCost = None,
    fn_cost: _FnCost = None,
    partitions: _Partitions = 1,
    config: ConfigOption = None,
) -> None:
    """Run the drift monitor over a table, without Kafka.

    Trains the initial model on the first --train-rows rows, streams the rest in order
    (labels revealed --label-delay rows, or that long in event time, later) through the
    evidence and the monitor of `driftloop score` and `driftloop monitor`, over --partitions
    simulated partitions, and writes each drift event, with the `row` (0-based, in INPUT) at
    which it fired, to --output. Numeric columns become numeric features, the others
    categorical, never the --time-column; one that looks like an identifier or a timestamp
    is refused, named: --ignore it, or keep it with --allow-column. With --retrain, retraining
    runs the flow's candidate selection; the last line is JSON. Settings: the configuration's
    `monitoring`, `decision`, `retraining` and `training` (your own training code) sections.
    """
    from streaming.events import encode_event
    from streaming.models.first_champion import read_table, training_params
    from streaming.monitoring.backtest import infer_spec, run_backtest
    from streaming.simulation.delays import parse_label_delay

    settings = load_settings(config) if config is not None else settings_of(ctx)
    if retrain_rule not in ("selection", "since_drift"):
        raise typer.BadParameter("selection or since_drift", param_hint="--retrain-rule")
    costs = {k: v for k, v in (("fp_cost", fp_cost), ("fn_cost", fn_cost)) if v is not None}
    decision = settings.decision.model_copy(update=costs)
    delay = parse_label_delay(label_delay)
    frame = read_table(input_file)
    spec = infer_spec(frame, label_column, tuple(ignore or ()), tuple(allow_column or ()), time_column)
    result = run_backtest(
        frame,
        label_column,
        settings.monitoring,
        train_rows=train_rows,
        label_delay=delay.transactions,
        label_delay_s=delay.median_s,
        time_column=time_column,
        retrain=retrain,
        retrain_rule=retrain_rule,  # type: ignore[arg-type]
        spec=spec,
        decision=decision,
        retraining=settings.retraining.model_copy(
            update={"min_rows": min(settings.retraining.min_rows, train_rows)}
        ),
        partitions=partitions,
        params=training_params(settings, min_rows=min(200, train_rows)),
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("wb") as handle:
        for event in result.events:
            handle.write(encode_event(event) + b"\n")
    _print_result(result, output, len(frame) - train_rows, decision)


def _print_result(result: BacktestResult, output: Path, streamed: int, decision: DecisionSettings) -> None:
    """The drift events as a table, with --retrain the prequential results, and one JSON line."""
    from rich.table import Table

    table = Table(title=f"{len(result.events)} drift event(s) in {streamed} streamed rows -> {output}")
    for column in ("row", "status", "signal", "detector", "feature", "severity", "p-value", "moved"):
        table.add_column(column)
    for event in result.events:
        p_value = "" if event.p_value is None else f"{event.p_value:.2g}"
        moved = ", ".join(s.column for s in event.explanation if s.moved)
        table.add_row(
            str(event.row),
            event.status + (f" ({event.resolution})" if event.resolution else ""),
            event.signal,
            event.detector,
            event.feature or "",
            event.severity,
            p_value,
            moved,
        )
    console = Console()
    console.print(table)
    summary = backtest_summary(result, decision)
    if result.retrained is not None:
        outcomes = Table(title="prequential results on the streamed rows")
        budget = f"fraud caught at {decision.alert_budget:.0%}"
        for column in ("model", "accuracy", "false pos.", "false neg.", "cost", budget, "retrains at rows"):
            outcomes.add_column(column)
        for name, outcome in (("static", result.static), ("retrained on drift", result.retrained)):
            outcomes.add_row(
                name,
                f"{outcome.accuracy:.4f}",
                str(outcome.false_positives),
                str(outcome.false_negatives),
                f"{outcome.cost(decision.fp_cost, decision.fn_cost):.0f}",
                f"{outcome.caught_at_budget(result.labels, decision.alert_budget):.1%}",
                ", ".join(map(str, outcome.retrains)) or "-",
            )
        console.print(outcomes)
        for attempt in result.retrained.attempts:
            tried = attempt.get("selection", {}).get("candidates", [])
            windows = ", ".join(
                f"{c['name']} {c['rows']} rows: " + (c["skipped"] or f"{c['holdout']['objective']:.4f}")
                for c in tried
            )
            verdict = (
                "accepted" if attempt.get("accepted") else "; ".join(attempt.get("reasons") or ["waiting"])
            )
            console.print(
                f"row {attempt['row']}: {attempt['rows']} labelled rows; {windows or attempt['rule']} -> {verdict}"
            )
    typer.echo(json.dumps(summary, default=str))


def backtest_summary(result: BacktestResult, decision: DecisionSettings) -> dict[str, Any]:
    """What the final JSON line says: the events, and with --retrain both passes' results."""
    summary: dict[str, Any] = {
        "drift_episodes": sum(1 for e in result.events if e.status == "opened"),
        "drift_events": len(result.events),
        "rows": len(result.labels),
    }

    def figures(outcome: Outcome) -> dict[str, Any]:
        return {
            "accuracy": outcome.accuracy,
            "false_positives": outcome.false_positives,
            "false_negatives": outcome.false_negatives,
            "cost": outcome.cost(decision.fp_cost, decision.fn_cost),
            "fraud_caught_at_budget": outcome.caught_at_budget(result.labels, decision.alert_budget),
        }

    summary["static"] = {
        **figures(result.static),
        "threshold": result.model.threshold if result.model else None,
    }
    if result.retrained is not None:
        summary["retrained"] = {
            **figures(result.retrained),
            "retrains_at_rows": result.retrained.retrains,
            "attempts": [
                {
                    "row": a["row"],
                    "rule": a["rule"],
                    "rows_available": a["rows"],
                    "accepted": a.get("accepted", False),
                    "threshold": a.get("threshold"),
                    "winner": a.get("winner"),
                    "windows": [
                        {"name": c["name"], "rows": c["rows"], "skipped": c["skipped"], **c["holdout"]}
                        for c in a.get("selection", {}).get("candidates", [])
                    ],
                    "reasons": a.get("reasons", []),
                }
                for a in result.retrained.attempts
            ],
        }
    summary["decision"] = decision.model_dump()
    return summary
