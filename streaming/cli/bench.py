"""``driftloop bench throughput | detection | loop | labels``: figures printed next to a same-run baseline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import click
import typer
from rich.console import Console

from streaming.cli._common import app, console, kafka_settings_of, settings_of
from streaming.config import Settings

bench_app = typer.Typer(
    help="Benchmarks that print their figure next to a baseline from the same run.", no_args_is_help=True
)
app.add_typer(bench_app, name="bench")


@bench_app.command("throughput")
def bench_throughput(
    ctx: typer.Context,
    events: Annotated[
        int, typer.Option(min=1000, help="Transactions preloaded and scored per run.")
    ] = 100_000,
    naive_events: Annotated[
        int,
        typer.Option(
            min=100,
            help="Transactions for the naive loop through scikit-learn's predict_proba (10x for the compiled one).",
        ),
    ] = 2_000,
    repeats: Annotated[
        int,
        typer.Option(
            min=1,
            help="Rounds of every pipeline; medians are reported, and the scorer/passthrough ratio is the median of the rounds' ratios.",
        ),
    ] = 5,
    latency_seconds: Annotated[
        float, typer.Option(min=1, help="Duration of the fixed-rate latency run.")
    ] = 20,
    evidence: Annotated[
        bool,
        typer.Option(
            help="Also run the scorer with the drift evidence (drift.evidence) and report its cost."
        ),
    ] = True,
    delivery: Annotated[
        str,
        typer.Option(
            click_type=click.Choice(["at_least_once", "exactly_once"]),
            metavar="[at_least_once|exactly_once]",
            help="exactly_once: also run the scorer (with the evidence) with scoring.delivery "
            "exactly_once, right after its at-least-once twin in every round, and report the ratio.",
        ),
    ] = "at_least_once",
) -> None:
    """Scorer vs raw passthrough vs a naive per-message loop on the real broker, each on
    kafka-python and on librdkafka (kafka.client), rounds interleaved; last line is JSON."""
    import tempfile

    from streaming.benchmarks.throughput import run_throughput_benchmark

    settings = kafka_settings_of(ctx)
    factory = None
    if evidence:
        from streaming.models.first_champion import open_registry
        from streaming.monitoring.publisher import EvidencePublisher

        def factory(s: Settings) -> list[EvidencePublisher]:
            return [EvidencePublisher(s, open_registry(s))]

    with tempfile.TemporaryDirectory(prefix="driftloop-bench-") as home:
        run_throughput_benchmark(
            settings,
            Path(home),
            events,
            naive_events,
            repeats,
            latency_seconds,
            observers_factory=factory,
            echo=typer.echo,
            exactly_once=delivery == "exactly_once",
        )


@bench_app.command("detection")
def bench_detection(
    ctx: typer.Context,
    seeds: Annotated[int, typer.Option(min=1, help="Streams per stream type.")] = 10,
    label_delay: Annotated[int, typer.Option(min=0, help="Rows before each label is revealed.")] = 0,
    stream_type: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--type", help="Only these stream types (repeatable); default: all."),
    ] = None,
    partitions: Annotated[
        str, typer.Option(help="Comma-separated partition counts the rows are split over (round-robin).")
    ] = "1,4,12,48",
    batch: Annotated[int, typer.Option(min=1, help="Rows per micro-batch (all partitions together).")] = 100,
    horizon: Annotated[
        int, typer.Option(min=100, help="A detection counts if it comes within this many rows of the onset.")
    ] = 10_000,
) -> None:
    """Detection rate, delay and false alarms on River's synthetic streams, per partition count.

    For each partition count N: `monitor@N` is one `driftloop monitor` (ModelMonitor) over the
    evidence of N partitions; `per_partition@N`, the baseline, is the monitors as the scorer ran
    them before, one suite per partition. Single-stream baselines on the same rows: a static
    model with ADWIN on its 0/1 errors, and per-feature window tests (1,000 rows vs the training
    rows, p < 0.05, uncorrected). Delays are in total rows (all partitions); the last line is
    one JSON object.
    """
    from rich.table import Table

    from streaming.benchmarks.detection import run_detection_benchmark, summary

    try:
        counts = tuple(int(n) for n in partitions.split(","))
    except ValueError:
        raise typer.BadParameter(
            f"--partitions takes numbers separated by commas, not {partitions!r}"
        ) from None
    if not counts or min(counts) < 1:
        raise typer.BadParameter("--partitions: every count must be at least 1")
    settings = settings_of(ctx)
    table = run_detection_benchmark(
        seeds=seeds,
        label_delay=label_delay,
        settings=settings.monitoring,
        types=tuple(stream_type or ()),
        partitions=counts,
        batch_size=batch,
        horizon=horizon,
        progress=lambda line: console.print(line, highlight=False),
    )
    out = Table(
        title=f"drift detection, {seeds} seeds per stream type, batches of {batch} rows "
        f"(detected within {horizon:,} rows / median delay in total rows / false alarms per 10k / alarms per drift)"
    )
    out.add_column("stream")
    out.add_column("partitions", justify="right")
    out.add_column("monitor (pooled evidence)", justify="right")
    out.add_column("per-partition suites (baseline)", justify="right")

    def cell(r: dict[str, float | None], drifting: bool) -> str:
        rate = f"{r['detection_rate']:.0%}" if drifting else "-"
        delay = "-" if r["median_delay"] is None else f"{r['median_delay']:.0f}"
        fa = "-" if r["false_alarms_per_10k"] is None else f"{r['false_alarms_per_10k']:.2f}"
        per_drift = f"{r['alarms_per_drift']:.1f}" if drifting and r["alarms_per_drift"] is not None else "-"
        return f"{rate} / {delay} / {fa} / {per_drift}"

    for name, row in table.items():
        drifting = name != "stationary"
        for n in counts:
            out.add_row(
                name, str(n), cell(row[f"monitor@{n}"], drifting), cell(row[f"per_partition@{n}"], drifting)
            )
        for baseline in ("adwin_errors", "ks_windows"):
            out.add_row(name, f"({baseline})", cell(row[baseline], drifting), "")
    Console().print(out)
    typer.echo(json.dumps({"streams": table, "summary": summary(table)}))


@bench_app.command("loop")
def bench_loop(
    ctx: typer.Context,
    seeds: Annotated[int, typer.Option(min=1, help="Streams per stream type and label delay.")] = 5,
    stream_type: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--type", help="covariate, tactic or wave (repeatable); default: all."),
    ] = None,
    label_delay: Annotated[
        Optional[list[int]],  # noqa: UP045
        typer.Option(help="Rows before each label is revealed (repeatable); default: 0 and 5000."),
    ] = None,
    window: Annotated[
        int, typer.Option(min=1000, help="Rows per window of the performance estimate.")
    ] = 20_000,
) -> None:
    """What retraining after a drift pays, and the performance estimate's error; last line is JSON.

    Simulated card streams at 0.5% fraud: a pure covariate shift (the labelling rule unchanged),
    a new fraud tactic, a fraud wave (4x the fraud), each with labels at once and late. For each:
    the static first model, the earlier retraining rule (rows since the alarm, a fixed 0.5
    threshold) and the retraining flow's candidate selection with the cost-chosen threshold,
    through the backtest. After the onset: the share of the fraud caught at the alert budget
    (decision.alert_budget, 1%), the decisions' cost per 1,000 transactions (decision.fp_cost,
    decision.fn_cost), and for the static model the mean error of the online estimate of recall
    at the budget per window, next to the realized value's own sampling noise (the binomial
    standard error over the window's frauds). Beside them: the fraud the new rule catches once
    its first retrained model serves, and the ceiling, a model trained on 100,000 fully labelled
    rows of the new world (what no retraining on the stream's late labels can beat). Medians
    over the seeds.
    """
    from rich.table import Table

    from streaming.benchmarks.loop import KINDS, run_loop_benchmark

    kinds = tuple(stream_type or KINDS)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise typer.BadParameter(f"--type takes {', '.join(KINDS)}, not {', '.join(unknown)}")
    settings = settings_of(ctx)
    result = run_loop_benchmark(
        seeds=seeds,
        kinds=kinds,
        label_delays=tuple(label_delay or (0, 5000)),
        window=window,
        decision=settings.decision,
        progress=lambda line: console.print(line, highlight=False),
    )
    budget, d = settings.decision.alert_budget, settings.decision
    out = Table(
        title=f"the loop after a drift, median of {seeds} seeds: fraud caught at the {budget:.0%} budget / "
        f"cost per 1,000 transactions (false alert {d.fp_cost:g}, missed fraud {d.fn_cost:g}) / retrains"
    )
    for column in (
        "stream @ label delay",
        "static",
        "today's rule",
        "new rule",
        "new, once retrained",
        "ceiling",
        "estimate error (recall@budget) / realized's noise",
    ):
        out.add_column(column, justify="right")
    for name, r in result["streams"].items():
        out.add_row(
            name,
            f"{r['caught_static']:.1%} / {r['cost_static']:.1f}",
            f"{r['caught_today']:.1%} / {r['cost_today']:.1f} / {r['retrains_today']:.0f}",
            f"{r['caught_new']:.1%} / {r['cost_new']:.1f} / {r['retrains_new']:.0f}",
            f"{r['caught_new_served']:.1%}",
            f"{r['caught_ceiling']:.1%}",
            f"{r['estimate_error']:.3f} / {r['realized_noise']:.3f}",
        )
    Console().print(out)
    typer.echo(json.dumps(result))


@bench_app.command("labels")
def bench_labels(
    ctx: typer.Context,
    transactions: Annotated[
        int, typer.Option(min=10_000, help="Transactions preloaded (a score and a label each).")
    ] = 2_000_000,
    days: Annotated[float, typer.Option(min=1, help="Days of event time they span.")] = 35.0,
    scorer_events: Annotated[
        int,
        typer.Option(
            min=0, help="Transactions for the scorer's rate on this machine (the goal); 0 skips it."
        ),
    ] = 100_000,
    timeout_s: Annotated[
        float, typer.Option(min=60, help="Give up on a joiner that has not read everything by then.")
    ] = 3600.0,
) -> None:
    """The outcome join (`driftloop join`) vs the old in-memory joiner, labels 1-14 days late.

    On the real broker: scores over `--days` of event time on 4 partitions and their labels,
    each 1 to 14 days later (log-normal, median 3 days), read by each joiner in its own
    process. Prints labels matched, throughput, RSS at 10/50/100% of the run, checkpoint
    p50/p99 at the start and the end, the store's size; the last line is one JSON object.
    """
    import tempfile

    from streaming.benchmarks.labels import run_label_benchmark

    settings = kafka_settings_of(ctx)
    with tempfile.TemporaryDirectory(prefix="driftloop-bench-") as home:
        run_label_benchmark(
            settings,
            Path(home),
            transactions=transactions,
            days=days,
            scorer_events=scorer_events,
            timeout_s=timeout_s,
            echo=typer.echo,
        )
