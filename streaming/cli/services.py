"""The long-running commands (``score``, ``join``, ``trigger``, ``canary``, ``worker``) and ``retrain``.

Each runs until SIGTERM or SIGINT, logs JSON lines on stderr at ``--log-level`` (INFO by
default), and ends with exit code 0 after a clean stop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from streaming.cli._common import (
    LogLevelOption,
    app,
    kafka_settings_of,
    require_prefect_server,
    setting_default,
)
from streaming.errors import DriftloopError


@app.command("score")
def score(
    ctx: typer.Context,
    max_batch: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            min=1, help="Records per micro-batch.", show_default=setting_default("scoring", "max_batch")
        ),
    ] = None,
    max_wait_ms: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            min=1,
            help="Longest wait to fill a batch, from its first record's timestamp.",
            show_default=setting_default("scoring", "max_wait_ms"),
        ),
    ] = None,
    metrics_port: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            min=0,
            help="Prometheus port (0: off); listens on scoring.metrics_address.",
            show_default=setting_default("scoring", "metrics_port"),
        ),
    ] = None,
    log_level: LogLevelOption = "INFO",
) -> None:
    """Score `transactions` with the champion into `scores` until SIGTERM/SIGINT.

    With monitoring.enabled (the default) every batch is also summarized into drift evidence
    (histograms of the features and scores on the champion's reference bins) written to
    `drift.evidence` at each checkpoint, for `driftloop monitor`. Waits for a champion on
    model.updates if none was published yet. Logs are JSON lines on stderr; Prometheus
    metrics on --metrics-port (the address is logged at start).
    """
    from streaming.logs import configure_logging

    configure_logging(log_level)
    settings = kafka_settings_of(ctx)  # before the heavy imports: a missing broker fails fast
    from streaming.metrics import serve_metrics
    from streaming.models.first_champion import open_registry
    from streaming.scoring.service import ScoringService

    overrides = {
        k: v
        for k, v in {"max_batch": max_batch, "max_wait_ms": max_wait_ms, "metrics_port": metrics_port}.items()
        if v is not None
    }
    if overrides:
        settings = settings.model_copy(update={"scoring": settings.scoring.model_copy(update=overrides)})
    serve_metrics(settings.scoring.metrics_port, settings.scoring.metrics_address)
    registry = open_registry(settings)
    observers = []
    if settings.monitoring.enabled:
        from streaming.monitoring.publisher import EvidencePublisher

        observers.append(EvidencePublisher(settings, registry))
    stats = ScoringService(settings, registry, observers).run()
    typer.echo(
        f"scored {stats.scored} transactions in {stats.batches} batches; {stats.dead_letters} dead letters"
    )


@app.command("monitor")
def monitor(
    ctx: typer.Context,
    metrics_port: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            min=0,
            help="Prometheus port (0: off); listens on scoring.metrics_address.",
            show_default=setting_default("monitoring", "metrics_port"),
        ),
    ] = None,
    log_level: LogLevelOption = "INFO",
) -> None:
    """Watch the model for drift on the evidence of every partition, until SIGTERM/SIGINT.

    Merges `drift.evidence` (from every scorer) and the labelled `outcomes` (from `driftloop
    join`) in event time, runs the detectors on the pooled stream and publishes one drift
    event per drift episode on `drift.events`, with its scope (the partitions that moved)
    and an explanation (the columns that moved most). Also posts each to Prefect's event
    feed when PREFECT_API_URL is set (monitoring.prefect_events). Start two or more: one is
    active, the others stand by in the consumer group monitoring.group_id and take over
    from its last snapshot on driftloop.state.
    """
    from streaming.logs import configure_logging

    configure_logging(log_level)
    settings = kafka_settings_of(ctx)
    from streaming.metrics import serve_metrics
    from streaming.models.first_champion import open_registry
    from streaming.monitoring.service import MonitorService

    if metrics_port is not None:
        settings = settings.model_copy(
            update={"monitoring": settings.monitoring.model_copy(update={"metrics_port": metrics_port})}
        )
    serve_metrics(settings.monitoring.metrics_port, settings.scoring.metrics_address)
    stats = MonitorService(settings, open_registry(settings)).run()
    typer.echo(
        f"read {stats.evidence} evidence records and {stats.outcomes} outcomes; "
        f"published {stats.drift_events} drift events"
    )


@app.command("trigger")
def trigger(
    ctx: typer.Context,
    deployment: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            help="Prefect deployment to run, e.g. retrain/driftloop.",
            show_default="trigger.deployment; unset: the flow runs in this process",
        ),
    ] = None,
    log_level: LogLevelOption = "INFO",
) -> None:
    """Turn drift events into retraining runs until SIGTERM/SIGINT.

    Policy: trigger.signals, trigger.min_severity, trigger.cooldown_s (one run per model per
    cooldown window of drift events; trigger.labels_pending_retry_s after a run rejected only
    for labels still to come), at most one run in flight. With a deployment, runs are
    created on the Prefect server (PREFECT_API_URL) with the drift event id as idempotency
    key and served by `driftloop worker`; without one, the flow runs in this process.
    """
    from streaming.logs import configure_logging

    configure_logging(log_level)
    settings = kafka_settings_of(ctx)
    from streaming.retraining.trigger import RetrainTrigger

    if deployment:
        settings = settings.model_copy(
            update={"trigger": settings.trigger.model_copy(update={"deployment": deployment})}
        )
    if settings.trigger.deployment:
        require_prefect_server()
    RetrainTrigger(settings).run()


@app.command("join")
def join(
    ctx: typer.Context,
    metrics_port: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            min=0,
            help="Prometheus port (0: off); listens on scoring.metrics_address.",
            show_default=setting_default("join", "metrics_port"),
        ),
    ] = None,
    log_level: LogLevelOption = "INFO",
) -> None:
    """Join `scores` with their delayed `labels` into `outcomes` until SIGTERM/SIGINT.

    Each prediction waits on local disk (RocksDB, join.state_dir, default
    `<home>/state/join`) until its label comes or join.ttl_s (120 days of event time) passes.
    Labels must be keyed by transaction_id, on as many partitions as scores. Late,
    duplicate, unknown and malformed labels go to labels.dlq with the reason. The stores
    are backed by the compacted driftloop.outcomes.changelog topic: a restart, or another
    machine taking a partition over, continues where the last checkpoint left off.
    """
    from streaming.logs import configure_logging

    configure_logging(log_level)
    settings = kafka_settings_of(ctx)
    from streaming.metrics import serve_metrics
    from streaming.outcomes.service import JoinService

    if metrics_port is not None:
        settings = settings.model_copy(
            update={"join": settings.join.model_copy(update={"metrics_port": metrics_port})}
        )
    serve_metrics(settings.join.metrics_port, settings.scoring.metrics_address)
    stats = JoinService(settings).run()
    refused = ", ".join(f"{n} {reason}" for reason, n in sorted(stats.refused.items())) or "none"
    typer.echo(
        f"joined {stats.outcomes} outcomes from {stats.scores} scores and {stats.labels} labels; refused: {refused}"
    )


@app.command("canary")
def canary(ctx: typer.Context, log_level: LogLevelOption = "INFO") -> None:
    """Step a challenger through canary.schedule, then promote or roll it back (run one per model).

    Compares the challenger with the champion on the outcomes of the current step (scores
    with their labels, from `driftloop join`): rolls back when it is worse by more than canary.margin
    (Brier loss or error rate, at canary.confidence), slower than canary.latency_factor x,
    or undecided after canary.step_timeout_s; steps up when it is not worse; holds otherwise.
    Every decision is a ModelUpdate on model.updates with its evidence.
    """
    from streaming.logs import configure_logging

    configure_logging(log_level)
    settings = kafka_settings_of(ctx)
    from streaming.canary.service import CanaryService

    CanaryService(settings).run()


@app.command("worker")
def worker(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Option(help="Deployment name: runs are started as retrain/NAME.")
    ] = "driftloop",
    on_drift: Annotated[
        bool,
        typer.Option(
            help="Also start a run for every drift event `driftloop monitor` posts to Prefect (a "
            "deployment trigger: the Prefect automation alternative to `driftloop trigger`)."
        ),
    ] = False,
    min_severity: Annotated[
        str,
        typer.Option(
            help="With --on-drift: the lowest drift severity that starts a run (low, medium, high)."
        ),
    ] = "medium",
    log_level: LogLevelOption = "INFO",
) -> None:
    """Serve the retrain flow as the Prefect deployment retrain/NAME and execute its runs.

    Needs a Prefect server: set PREFECT_API_URL (e.g. `prefect server start`, then
    http://127.0.0.1:4200/api). The flow reads its driftloop settings from this process's
    environment and --config. With --on-drift the deployment carries a trigger on the
    `driftloop.drift.detected` events of the model: one run per drift episode, shown under
    Automations in the Prefect UI.
    """
    import os

    from streaming.logs import configure_logging

    configure_logging(log_level)
    settings = kafka_settings_of(ctx)  # fail early on a bad configuration or a missing broker
    require_prefect_server()
    from streaming.retraining.flow_entrypoint import load_flow

    config = ctx.find_root().obj
    if config:  # the flow runs load their settings themselves
        os.environ["DRIFTLOOP_CONFIG"] = str(Path(config).resolve())
    if min_severity not in ("low", "medium", "high"):
        raise typer.BadParameter(f"--min-severity is low, medium or high, not {min_severity!r}")
    triggers = []
    if on_drift:
        from streaming.retraining.automation import drift_trigger

        triggers.append(drift_trigger(settings.model_name, min_severity))
    load_flow(settings.retraining.flow).serve(
        name=name, tags=["driftloop"], limit=1, triggers=triggers or None
    )


@app.command("retrain")
def retrain(
    ctx: typer.Context,
    drift_event_id: Annotated[str, typer.Option(help="Recorded in the lineage and the run name.")] = "manual",
    log_level: LogLevelOption = "INFO",
) -> None:
    """Run the retraining flow once, in this process.

    Fetches the training window from Kafka (retraining.window_s, retraining.max_rows),
    snapshots it, trains, validates against retraining.* thresholds and the champion,
    registers and publishes the challenger, or publishes `rejected` with the reasons. Uses
    the Prefect server at PREFECT_API_URL when set (the run shows in its UI), otherwise a
    temporary local one. Exits 1 when the run fails.
    """
    from streaming.control.follower import current_plan
    from streaming.control.updates import started_update
    from streaming.kafka.publishing import publish_model_update
    from streaming.logs import configure_logging
    from streaming.retraining.flow_entrypoint import run_in_process

    configure_logging(log_level)
    settings = kafka_settings_of(ctx)
    plan = current_plan(settings)
    publish_model_update(
        settings, started_update(settings.model_name, drift_event_id, {"mode": "cli"}, plan.champion)
    )
    try:
        outcome = run_in_process(settings, drift_event_id, ("driftloop", "manual"))
    except Exception as exc:
        raise DriftloopError(f"retraining failed: {exc}") from exc
    if outcome["status"] == "challenger":
        typer.echo(
            f"published {outcome['version']} as the challenger (dataset {outcome['dataset_sha256'][:12]})"
        )
    else:
        typer.echo(f"candidate rejected: {'; '.join(outcome['reasons'])}")
