"""``driftloop demo``: the whole loop in one command, with a live view."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from streaming.cli._common import app, console, local_broker, settings_of


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
    settings = settings_of(ctx)
    plan = dataclasses.replace(SHORT if short else DemoPlan(), scenario=scenario)
    if rate:
        plan = dataclasses.replace(plan, rate=rate)
    broker = None
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and not os.environ.get(
        "DRIFTLOOP_KAFKA__BOOTSTRAP_SERVERS"
    ):
        local = local_broker(settings)
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
