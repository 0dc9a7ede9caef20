"""The `driftloop` command line: the front door that wires the subpackages together."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from streaming.config import Settings, load_settings
from streaming.errors import DriftloopError

app = typer.Typer(
    name="driftloop",
    help="Event-driven drift detection and retraining for models that score Kafka streams.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
kafka_app = typer.Typer(
    help="Run a local Apache Kafka broker (KRaft, loopback) from Maven Central jars.", no_args_is_help=True
)
topics_app = typer.Typer(help="Create and list driftloop's topics.", no_args_is_help=True)
schemas_app = typer.Typer(
    help="JSON Schema and AsyncAPI files generated from the event definitions.", no_args_is_help=True
)
config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
registry_app = typer.Typer(
    help="List, inspect, promote and roll back model versions (changes go out on model.updates).",
    no_args_is_help=True,
)
app.add_typer(kafka_app, name="kafka")
app.add_typer(topics_app, name="topics")
app.add_typer(schemas_app, name="schemas")
app.add_typer(config_app, name="config")
app.add_typer(registry_app, name="registry")

console = Console(stderr=True)

ConfigOption = Annotated[
    Optional[Path],  # noqa: UP045 - typer needs Optional here
    typer.Option(
        "--config",
        "-c",
        help="TOML or YAML config file (default: $DRIFTLOOP_CONFIG).",
        exists=True,
        dir_okay=False,
    ),
]


@app.callback()
def main(ctx: typer.Context, config: ConfigOption = None) -> None:
    """driftloop: score a Kafka stream, watch it drift, retrain and canary the model."""
    ctx.obj = config


def _settings(ctx: typer.Context) -> Settings:
    root = ctx.find_root()
    return load_settings(root.obj)


# -- kafka ---------------------------------------------------------------------------


def _local_broker(settings: Settings):  # type: ignore[no-untyped-def]
    from streaming.kafka.local_broker import LocalBroker

    local = settings.local_kafka
    return LocalBroker(settings.home, local.version, local.port, local.controller_port, local.heap)


@kafka_app.command("start")
def kafka_start(ctx: typer.Context) -> None:
    """Fetch (once), format and start the broker; a no-op when it already runs."""
    settings = _settings(ctx)
    broker = _local_broker(settings)
    if not broker.status().running:
        console.print(
            f"starting Apache Kafka {broker.version} on {broker.bootstrap_servers} "
            "(the first start downloads the jars with Maven)..."
        )
    status = broker.start(timeout_s=settings.local_kafka.start_timeout_s)
    typer.echo(status.describe())


@kafka_app.command("stop")
def kafka_stop(ctx: typer.Context) -> None:
    """Stop the broker (controlled shutdown); no error when none runs."""
    broker = _local_broker(_settings(ctx))
    typer.echo("Kafka stopped" if broker.stop() else "Kafka was not running")


@kafka_app.command("status")
def kafka_status(ctx: typer.Context) -> None:
    """Say whether the broker runs, where, and where its log is. Exit 1 when it does not run."""
    status = _local_broker(_settings(ctx)).status()
    typer.echo(status.describe())
    raise typer.Exit(0 if status.running else 1)


# -- topics --------------------------------------------------------------------------


@topics_app.command("create")
def topics_create(
    ctx: typer.Context,
    partitions: Annotated[int, typer.Option(min=1, help="Partitions of the data topics.")] = 4,
    replication_factor: Annotated[int, typer.Option(min=1)] = 1,
) -> None:
    """Create every driftloop topic that does not exist yet."""
    from streaming.kafka.clients import ensure_topics
    from streaming.topics import topic_catalogue

    settings = _settings(ctx)
    created = ensure_topics(settings.kafka, topic_catalogue(settings.topics, partitions, replication_factor))
    typer.echo(f"created: {', '.join(created)}" if created else "all topics exist")


@topics_app.command("list")
def topics_list(ctx: typer.Context) -> None:
    """Print the topic catalogue: name, message, key, cleanup policy."""
    from streaming.topics import topic_catalogue

    for topic in topic_catalogue(_settings(ctx).topics):
        message = topic.message.__name__ if topic.message else "(internal)"
        policy = "compact" if topic.compacted else "delete"
        typer.echo(f"{topic.name:20} {message:12} key={topic.key:18} {policy}")


# -- schemas -------------------------------------------------------------------------


@schemas_app.command("generate")
def schemas_generate(
    out: Annotated[Path, typer.Option(help="Folder to write into.")] = Path("schemas"),
    check: Annotated[bool, typer.Option("--check", help="Only compare; exit 1 on any difference.")] = False,
) -> None:
    """Write (or with --check, verify) the JSON Schema files and asyncapi.yaml."""
    from streaming.schema_export import schema_differences, write_schemas

    if check:
        problems = schema_differences(out)
        for problem in problems:
            typer.echo(problem)
        if problems:
            typer.echo("run `driftloop schemas generate` and commit the result", err=True)
            raise typer.Exit(1)
        typer.echo(f"{out}/ matches the event definitions")
        return
    for path in write_schemas(out):
        typer.echo(f"wrote {path}")


# -- simulate / train / score --------------------------------------------------------


@app.command("simulate")
def simulate(
    ctx: typer.Context,
    count: Annotated[int, typer.Option(min=1, help="Transactions to generate.")] = 10_000,
    scenario: Annotated[str, typer.Option(help="baseline | concept | covariate | prior")] = "baseline",
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same stream.")] = 0,
    rate: Annotated[float, typer.Option(min=0, help="Transactions per second (0: as fast as possible).")] = 0,
    label_delay: Annotated[
        int, typer.Option(min=0, help="Publish each label this many transactions later.")
    ] = 0,
    output: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            help="Write a labeled CSV/Parquet file instead of producing to Kafka (training history)."
        ),
    ] = None,
) -> None:
    """Generate card transactions with fraud; produce them (and labels) to Kafka or a file."""
    from rich.progress import Progress

    from streaming.simulation import stream_transactions
    from streaming.simulator import SCENARIOS, TransactionSimulator

    if scenario not in SCENARIOS:
        raise typer.BadParameter(f"choose one of {', '.join(SCENARIOS)}", param_hint="--scenario")
    simulator = TransactionSimulator(seed=seed)
    if output is not None:
        frame = simulator.generate(count, SCENARIOS[scenario])
        if output.suffix == ".parquet":
            frame.to_parquet(output, index=False)
        else:
            frame.to_csv(output, index=False)
        typer.echo(f"wrote {count} labeled transactions ({frame['label'].mean():.2%} fraud) to {output}")
        return
    settings = _settings(ctx)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(f"{scenario} → {settings.topics.transactions}", total=count)
        stats = stream_transactions(
            settings,
            simulator,
            count,
            SCENARIOS[scenario],
            rate or None,
            label_delay,
            progress=lambda n: bar.advance(task, n),
        )
    typer.echo(
        f"produced {stats.transactions} transactions and {stats.labels} labels "
        f"in {stats.seconds:.1f}s ({stats.transactions / max(stats.seconds, 1e-9):,.0f}/s)"
    )


@app.command("train")
def train(
    ctx: typer.Context,
    input: Annotated[Path, typer.Option("--input", "-i", help="Labeled history: CSV or Parquet.")],
    label_column: Annotated[str, typer.Option(help="The 0/1 label column.")] = "label",
    threshold: Annotated[
        float, typer.Option(min=0, max=1, help="Decision threshold recorded in the manifest.")
    ] = 0.5,
    publish: Annotated[bool, typer.Option(help="Publish the version as champion on model.updates.")] = True,
) -> None:
    """Train a first champion on a file, register it (signed) and publish it."""
    from streaming.kafka.publishing import publish_model_update
    from streaming.training import champion_update, read_table, train_and_register

    settings = _settings(ctx)
    frame = read_table(input)
    manifest = train_and_register(
        settings, frame, label_column=label_column, threshold=threshold, source=str(input)
    )
    shown = ", ".join(f"{k}={v:.4g}" for k, v in manifest.metrics.items())
    typer.echo(f"registered {manifest.name} {manifest.version} in {settings.registry_path} ({shown})")
    if publish:
        publish_model_update(settings, champion_update(manifest))
        typer.echo(f"published {manifest.version} as champion on {settings.topics.model_updates}")


@app.command("score")
def score(
    ctx: typer.Context,
    max_batch: Annotated[Optional[int], typer.Option(min=1, help="Records per micro-batch.")] = None,  # noqa: UP045
    max_wait_ms: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(min=1, help="Longest wait to fill a batch, from its first record's timestamp."),
    ] = None,
    metrics_port: Annotated[Optional[int], typer.Option(min=0, help="Prometheus port (0: off).")] = None,  # noqa: UP045
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
) -> None:
    """Score `transactions` with the champion into `scores` until SIGTERM/SIGINT.

    The drift monitors ride along (monitoring.enabled): they join delayed `labels` back to
    the predictions and publish drift events on `drift.events`. Waits for a champion on
    model.updates if none was published yet. Logs are JSON lines on stderr; Prometheus
    metrics on --metrics-port.
    """
    from streaming.logs import configure_logging
    from streaming.metrics import serve_metrics
    from streaming.scoring.service import ScoringService
    from streaming.training import open_registry

    configure_logging(log_level)
    settings = _settings(ctx)
    overrides = {
        k: v
        for k, v in {"max_batch": max_batch, "max_wait_ms": max_wait_ms, "metrics_port": metrics_port}.items()
        if v is not None
    }
    if overrides:
        settings = settings.model_copy(update={"scoring": settings.scoring.model_copy(update=overrides)})
    serve_metrics(settings.scoring.metrics_port)
    registry = open_registry(settings)
    observers = []
    if settings.monitoring.enabled:
        from streaming.monitoring.service import DriftMonitor

        observers.append(DriftMonitor(settings, registry))
    stats = ScoringService(settings, registry, observers).run()
    typer.echo(
        f"scored {stats.scored} transactions in {stats.batches} batches; {stats.dead_letters} dead letters"
    )


# -- bench ----------------------------------------------------------------------------

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
    monitors: Annotated[
        bool, typer.Option(help="Also run the scorer with the drift monitors and report their cost.")
    ] = True,
) -> None:
    """Scorer vs raw passthrough vs a naive per-message loop on the real broker; last line is JSON."""
    import tempfile

    from streaming.benchmarks.throughput import run_throughput_benchmark

    settings = _settings(ctx)
    factory = None
    if monitors:
        from streaming.monitoring.service import DriftMonitor
        from streaming.training import open_registry

        def factory(s: Settings) -> list[DriftMonitor]:
            return [DriftMonitor(s, open_registry(s))]

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
) -> None:
    """Detection rate, delay and false alarms on River's synthetic streams vs two baselines.

    Baselines, measured on the same rows: a static model with ADWIN on its 0/1 errors, and
    per-feature window tests (1,000 rows vs the training rows, p < 0.05, uncorrected).
    The last line is one JSON object.
    """
    from rich.table import Table

    from streaming.benchmarks.detection import METHODS, run_detection_benchmark, summary

    settings = _settings(ctx)
    table = run_detection_benchmark(
        seeds=seeds,
        label_delay=label_delay,
        settings=settings.monitoring,
        types=tuple(stream_type or ()),
        progress=lambda line: console.print(line, highlight=False),
    )
    out = Table(title=f"drift detection, {seeds} seeds per stream type (within 2,000 rows of onset)")
    out.add_column("stream")
    for method in METHODS:
        out.add_column(f"{method}\ndetected / median delay / FA per 10k", justify="right")
    for name, row in table.items():
        cells = []
        for method in METHODS:
            r = row[method]
            rate = "-" if name == "stationary" else f"{r['detection_rate']:.0%}"
            delay = "-" if r["median_delay"] is None else f"{r['median_delay']:.0f}"
            fa = "-" if r["false_alarms_per_10k"] is None else f"{r['false_alarms_per_10k']:.2f}"
            cells.append(f"{rate} / {delay} / {fa}")
        out.add_row(name, *cells)
    Console().print(out)
    typer.echo(json.dumps({"streams": table, "summary": summary(table)}))


# -- backtest ------------------------------------------------------------------------


@app.command("backtest")
def backtest(
    ctx: typer.Context,
    input_file: Annotated[
        Path, typer.Argument(metavar="INPUT", help="CSV (or Parquet) with feature columns and a 0/1 label.")
    ],
    label_column: Annotated[str, typer.Option(help="The binary label column.")] = "label",
    output: Annotated[Path, typer.Option(help="Write one DriftEvent JSON object per line here.")] = Path(
        "detections.jsonl"
    ),
    train_rows: Annotated[int, typer.Option(min=100, help="Rows that train the initial model.")] = 5000,
    label_delay: Annotated[int, typer.Option(min=0, help="Rows after its row that a label is revealed.")] = 0,
    ignore: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(help="Columns that are not features (ids, timestamps); repeatable."),
    ] = None,
    retrain: Annotated[
        bool, typer.Option(help="Also simulate retraining on drift; compare accuracy and cost.")
    ] = False,
    fp_cost: Annotated[float, typer.Option(help="Cost of a false positive, for --retrain.")] = 1.0,
    fn_cost: Annotated[float, typer.Option(help="Cost of a false negative, for --retrain.")] = 5.0,
    config: ConfigOption = None,
) -> None:
    """Run the drift monitors over a table, without Kafka.

    Trains the initial model on the first --train-rows rows, streams the rest in order
    (labels revealed --label-delay rows later) and writes each drift event, with the `row`
    (0-based, in INPUT) at which it fired, to --output. Numeric columns become numeric
    features, the others categorical. Monitor settings come from the `monitoring` section
    of the configuration.
    """
    from rich.table import Table

    from streaming.events import encode_event
    from streaming.monitoring.backtest import infer_spec, run_backtest
    from streaming.training import read_table

    settings = load_settings(config) if config is not None else _settings(ctx)
    frame = read_table(input_file)
    spec = infer_spec(frame, label_column, tuple(ignore or ()))
    result = run_backtest(
        frame,
        label_column,
        settings.monitoring,
        train_rows=train_rows,
        label_delay=label_delay,
        retrain=retrain,
        spec=spec,
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("wb") as handle:
        for event in result.events:
            handle.write(encode_event(event) + b"\n")
    streamed = len(frame) - train_rows
    table = Table(title=f"{len(result.events)} drift event(s) in {streamed} streamed rows -> {output}")
    for column in ("row", "signal", "detector", "feature", "severity", "p-value"):
        table.add_column(column)
    for event in result.events:
        p_value = "" if event.p_value is None else f"{event.p_value:.2g}"
        table.add_row(
            str(event.row), event.signal, event.detector, event.feature or "", event.severity, p_value
        )
    Console().print(table)
    if result.retrained is not None:
        outcomes = Table(title="prequential results on the streamed rows")
        for column in ("model", "accuracy", "false pos.", "false neg.", "cost", "retrains at rows"):
            outcomes.add_column(column)
        for name, outcome in (("static", result.static), ("retrained on drift", result.retrained)):
            outcomes.add_row(
                name,
                f"{outcome.accuracy:.4f}",
                str(outcome.false_positives),
                str(outcome.false_negatives),
                f"{outcome.cost(fp_cost, fn_cost):.0f}",
                ", ".join(map(str, outcome.retrains)) or "-",
            )
        Console().print(outcomes)


# -- retraining ----------------------------------------------------------------------


@app.command("retrain")
def retrain(
    ctx: typer.Context,
    drift_event_id: Annotated[str, typer.Option(help="Recorded in the lineage and the run name.")] = "manual",
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
) -> None:
    """Run the retraining flow once, in this process.

    Fetches the training window from Kafka (retraining.window_s, retraining.max_rows),
    snapshots it, trains, validates against retraining.* thresholds and the champion,
    registers and publishes the challenger, or publishes `rejected` with the reasons. Uses
    the Prefect server at PREFECT_API_URL when set (the run shows in its UI), otherwise a
    temporary local one. Exits 1 when the run fails.
    """
    from flows.retrain import run_retrain, started_update
    from streaming.kafka.publishing import publish_model_update
    from streaming.logs import configure_logging
    from streaming.scoring.service import current_plan

    configure_logging(log_level)
    settings = _settings(ctx)
    plan = current_plan(settings)
    publish_model_update(settings, started_update(settings, drift_event_id, {"mode": "cli"}, plan.champion))
    try:
        outcome = run_retrain(settings, drift_event_id, ("driftloop", "manual"))
    except Exception as exc:
        raise DriftloopError(f"retraining failed: {exc}") from exc
    if outcome["status"] == "challenger":
        typer.echo(
            f"published {outcome['version']} as the challenger (dataset {outcome['dataset_sha256'][:12]})"
        )
    else:
        typer.echo(f"candidate rejected: {'; '.join(outcome['reasons'])}")


@app.command("trigger")
def trigger(
    ctx: typer.Context,
    deployment: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Prefect deployment to run, e.g. retrain/driftloop (default: trigger.deployment)."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
) -> None:
    """Turn drift events into retraining runs until SIGTERM/SIGINT.

    Policy: trigger.signals, trigger.min_severity, trigger.cooldown_s (one run per model per
    cooldown window of drift events), at most one run in flight. With a deployment, runs are
    created on the Prefect server (PREFECT_API_URL) with the drift event id as idempotency
    key and served by `driftloop worker`; without one, the flow runs in this process.
    """
    from streaming.logs import configure_logging
    from streaming.retraining.trigger import RetrainTrigger

    configure_logging(log_level)
    settings = _settings(ctx)
    if deployment:
        settings = settings.model_copy(
            update={"trigger": settings.trigger.model_copy(update={"deployment": deployment})}
        )
    if settings.trigger.deployment:
        _require_prefect_server()
    RetrainTrigger(settings).run()


@app.command("demo")
def demo(
    ctx: typer.Context,
    scenario: Annotated[
        str, typer.Option(help="concept | covariate | prior: the drift to play.")
    ] = "concept",
    short: Annotated[bool, typer.Option(help="A shorter stream (CI).")] = False,
    report: Annotated[Path, typer.Option(help="Where to write the HTML report.")] = Path("report.html"),
    rate: Annotated[Optional[float], typer.Option(min=50, help="Transactions per second.")] = None,  # noqa: UP045
) -> None:
    """The whole loop in one command: stream, score, detect, retrain (Prefect), canary, promote.

    Uses KAFKA_BOOTSTRAP_SERVERS when set, otherwise starts the local broker (and stops it
    at the end). Shows a live view; ends with a summary (last line: one JSON object) and a
    self-contained report.html. Ctrl-C stops everything cleanly.
    """
    import dataclasses
    import os
    import threading

    from rich.live import Live
    from rich.table import Table

    from streaming.demo import SHORT, DemoPlan, run_demo, summary_json
    from streaming.logs import configure_logging
    from streaming.signals import stop_on_termination
    from streaming.simulator import SCENARIOS

    if scenario not in SCENARIOS or scenario == "baseline":
        raise typer.BadParameter("choose concept, covariate or prior", param_hint="--scenario")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # the live view tells the story
    configure_logging("WARNING")
    settings = _settings(ctx)
    plan = dataclasses.replace(SHORT if short else DemoPlan(), scenario=scenario)
    if rate:
        plan = dataclasses.replace(plan, rate=rate)
    broker = None
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and not os.environ.get(
        "DRIFTLOOP_KAFKA__BOOTSTRAP_SERVERS"
    ):
        local = _local_broker(settings)
        kafka = settings.kafka.model_copy(update={"bootstrap_servers": local.bootstrap_servers})
        settings = settings.model_copy(update={"kafka": kafka})
        if not local.status().running:
            console.print("starting the local Kafka broker...")
            local.start(timeout_s=settings.local_kafka.start_timeout_s)
            broker = local  # ours: stopped at the end

    stop = threading.Event()
    stop_on_termination(stop.set)

    def table(state: dict[str, object]) -> Table:
        view = Table(title="driftloop demo (Ctrl-C stops)", show_header=False)
        for key, value in state.items():
            view.add_row(key, f"{value:,.1f}" if isinstance(value, float) else str(value))
        return view

    try:
        with Live(
            table({"status": "training the first champion"}), console=console, refresh_per_second=4
        ) as live:
            summary = run_demo(settings, plan, report, stop, view=lambda state: live.update(table(state)))
    finally:
        if broker is not None:
            broker.stop()
    for key, value in summary.items():
        typer.echo(f"{key:32} {value}")
    typer.echo(f"report: {report.resolve()}")
    typer.echo(summary_json(summary))


@app.command("canary")
def canary(
    ctx: typer.Context,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
) -> None:
    """Step a challenger through canary.schedule, then promote or roll it back (run one per model).

    Compares the challenger with the champion on labelled outcomes of the current step
    (scores joined with labels): rolls back when it is worse by more than canary.margin
    (Brier loss or error rate, at canary.confidence), slower than canary.latency_factor x,
    or undecided after canary.step_timeout_s; steps up when it is not worse; holds otherwise.
    Every decision is a ModelUpdate on model.updates with its evidence.
    """
    from streaming.canary.service import CanaryService
    from streaming.logs import configure_logging

    configure_logging(log_level)
    CanaryService(_settings(ctx)).run()


@app.command("worker")
def worker(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Option(help="Deployment name: runs are started as retrain/NAME.")
    ] = "driftloop",
) -> None:
    """Serve the retrain flow as the Prefect deployment retrain/NAME and execute its runs.

    Needs a Prefect server: set PREFECT_API_URL (e.g. `prefect server start`, then
    http://127.0.0.1:4200/api). The flow reads its driftloop settings from this process's
    environment and --config.
    """
    import os

    from flows.retrain import retrain as retrain_flow

    _settings(ctx)  # fail early on a bad configuration
    _require_prefect_server()
    config = ctx.find_root().obj
    if config:  # the flow runs load their settings themselves
        os.environ["DRIFTLOOP_CONFIG"] = str(Path(config).resolve())
    retrain_flow.serve(name=name, tags=["driftloop"], limit=1)


def _require_prefect_server() -> None:
    import os

    if not os.environ.get("PREFECT_API_URL"):
        raise DriftloopError(
            "a Prefect server is needed: start one (`prefect server start` or `docker compose up -d prefect`) "
            "and set PREFECT_API_URL=http://127.0.0.1:4200/api"
        )


# -- registry ------------------------------------------------------------------------

YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


@registry_app.command("list")
def registry_list(ctx: typer.Context) -> None:
    """Every registered version, its role in the serving plan (from model.updates) and lineage."""
    from rich.table import Table

    from streaming.registry_commands import describe
    from streaming.scoring.service import current_plan

    settings = _settings(ctx)
    rows = describe(settings, current_plan(settings))
    table = Table(title=f"{settings.model_name} in {settings.registry_path}")
    for column in ("version", "role", "created_at", "roc_auc", "drift_event_id", "dataset"):
        table.add_column(column)
    for row in rows:
        auc = row["roc_auc"]
        table.add_row(
            row["version"],
            row["role"],
            row["created_at"],
            "" if auc is None else f"{auc:.4f}",
            row["drift_event_id"] or "",
            row["dataset"],
        )
    Console().print(table)


@registry_app.command("show")
def registry_show(ctx: typer.Context, version: Annotated[str, typer.Argument(help="e.g. v2")]) -> None:
    """One version's verified manifest as JSON (reference samples summarized)."""
    from streaming.registry_commands import shown_manifest
    from streaming.training import open_registry

    settings = _settings(ctx)
    manifest = open_registry(settings).manifest(settings.model_name, version)
    typer.echo(json.dumps(shown_manifest(manifest), indent=2, default=str))


@registry_app.command("promote")
def registry_promote(
    ctx: typer.Context, version: Annotated[str, typer.Argument(help="e.g. v2")], yes: YesOption = False
) -> None:
    """Make VERSION the champion on every scorer (after verifying it loads)."""
    from streaming.kafka.publishing import publish_model_update
    from streaming.registry_commands import promotion
    from streaming.scoring.service import current_plan

    settings = _settings(ctx)
    update, change = promotion(settings, current_plan(settings), version)
    _confirm_and_publish(settings, update, change, yes, publish_model_update)


@registry_app.command("rollback")
def registry_rollback(
    ctx: typer.Context,
    to: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Make this earlier version the champion again (default: withdraw the challenger)."),
    ] = None,
    yes: YesOption = False,
) -> None:
    """Withdraw the challenger (all traffic to the champion), or return to an earlier champion."""
    from streaming.kafka.publishing import publish_model_update
    from streaming.registry_commands import rollback
    from streaming.scoring.service import current_plan

    settings = _settings(ctx)
    update, change = rollback(settings, current_plan(settings), to)
    _confirm_and_publish(settings, update, change, yes, publish_model_update)


def _confirm_and_publish(settings: Settings, update: Any, change: str, yes: bool, publish: Any) -> None:
    typer.echo(f"{settings.model_name}: {change}")
    if not yes and not typer.confirm("Publish this on model.updates?", default=False):
        raise typer.Exit(1)
    publish(settings, update)
    typer.echo(f"published {update.status} {update.version} on {settings.topics.model_updates}")


# -- config --------------------------------------------------------------------------


@config_app.command("show")
def config_show(ctx: typer.Context) -> None:
    """Print the effective configuration as JSON (secrets masked)."""
    settings = _settings(ctx)
    typer.echo(json.dumps(json.loads(settings.model_dump_json()), indent=2))


def run() -> None:
    """Console-script entry point: project errors become one clear line and exit code 1."""
    try:
        app()
    except DriftloopError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    run()
