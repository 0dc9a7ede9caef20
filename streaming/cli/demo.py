"""``driftloop demo``: the whole loop in one command, with a live view."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from streaming.cli._common import app, console, local_broker, settings_of

if TYPE_CHECKING:
    from rich.console import RenderableType

    from streaming.config import Settings
    from streaming.demo.run import DemoPlan, DemoResult, DemoStatus
    from streaming.kafka.local_broker import LocalBroker, LocalCluster

#: The exit code of a run stopped by Ctrl-C (128 + SIGINT, as shells report it).
INTERRUPTED_EXIT = 130


@app.command("demo")
def demo(
    ctx: typer.Context,
    scenario: Annotated[
        str, typer.Option(help="concept | covariate | prior: the drift to play.")
    ] = "concept",
    short: Annotated[
        bool,
        typer.Option(
            help="A shorter stream (90,000 transactions instead of 120,000; either goes on while a "
            "retraining run or its canary is still undecided, then 15,000 more; 300 s or 360 s at most)."
        ),
    ] = False,
    report: Annotated[Path, typer.Option(help="Where to write the HTML report.")] = Path("report.html"),
    rate: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(min=50, help="Transactions per second.", show_default="1000"),
    ] = None,
    keep_topics: Annotated[
        bool, typer.Option("--keep-topics", help="Keep the run's `demo-<id>-*` topics (deleted by default).")
    ] = False,
    label_delay: Annotated[
        str,
        typer.Option(
            help="How late labels come: a median duration of event time, drawn per label from a "
            "log-normal capped at 14 days (1d, 36h; the demo's transactions are 40 s of event time "
            "apart: a day is about 2,160 transactions), or a number of transactions.",
        ),
    ] = "1d",
) -> None:
    """The whole loop in one command: stream, score, detect, retrain (Prefect), canary, promote.

    Uses the configured broker (KAFKA_BOOTSTRAP_SERVERS, or kafka.bootstrap_servers in the
    environment or --config), otherwise starts the local one (and stops it at the end). Shows
    a live view while every log line goes to a file (its path is shown); ends with a summary
    (the last line is one JSON object) and a self-contained report.html. Ctrl-C stops within
    seconds, marks the summary interrupted, writes the report to report.interrupted.html
    (a complete report is never overwritten) and exits with 130.
    """
    from streaming.demo.outcomes import summary_json
    from streaming.demo.run import new_run_id
    from streaming.kafka.clients import require_broker

    plan = _plan(scenario, short, rate, label_delay)
    settings, broker = _on_a_broker(settings_of(ctx))
    try:
        require_broker(settings.kafka)
        run_id = new_run_id()
        run_dir = (settings.home / "demo" / run_id).resolve()
        log_path = run_dir / "demo.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        result, note = _run_in_live_view(settings, plan, report, keep_topics, run_id, run_dir, log_path)
    finally:
        if broker is not None:
            broker.stop()
    if result is None:
        console.print(f"stopped: {note}; logs: {log_path}", highlight=False, soft_wrap=True)
        raise typer.Exit(INTERRUPTED_EXIT)
    for key, value in result.summary.items():
        typer.echo(f"{key:32} {value}")
    typer.echo(f"report: {result.report.resolve()}")
    typer.echo(f"logs: {log_path}")
    typer.echo(summary_json(result.summary))
    sys.stdout.flush()
    if result.summary["interrupted"]:
        raise typer.Exit(INTERRUPTED_EXIT)


def _plan(scenario: str, short: bool, rate: float | None, label_delay: str) -> DemoPlan:
    import dataclasses

    from streaming.demo.run import DEMO_LABEL_DELAY, SHORT, DemoPlan
    from streaming.errors import ConfigError
    from streaming.simulation.delays import parse_label_delay
    from streaming.simulation.generator import SCENARIOS

    if scenario not in SCENARIOS or scenario == "baseline":
        raise typer.BadParameter("choose concept, covariate or prior", param_hint="--scenario")
    try:
        delay = parse_label_delay(label_delay)
        if delay.in_event_time:
            delay = dataclasses.replace(delay, max_s=DEMO_LABEL_DELAY.max_s)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--label-delay") from exc
    plan = dataclasses.replace(SHORT if short else DemoPlan(), scenario=scenario, label_delay=delay)
    return dataclasses.replace(plan, rate=rate) if rate else plan


def _on_a_broker(settings: Settings) -> tuple[Settings, LocalBroker | LocalCluster | None]:
    """The configured broker, or else the local one or local cluster (started if it is not
    running: then it is returned, to be stopped at the end)."""
    configured = (
        os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or "bootstrap_servers" in settings.kafka.model_fields_set
    )
    if configured:
        return settings, None
    from streaming.kafka.local_broker import LocalCluster

    local = local_broker(settings)
    update: dict[str, object] = {"bootstrap_servers": local.bootstrap_servers}
    if isinstance(local, LocalCluster):  # replicated like a production cluster
        update |= {
            "replication_factor": min(3, len(local.nodes)),
            "min_insync_replicas": min(2, len(local.nodes)),
        }
    settings = settings.model_copy(update={"kafka": settings.kafka.model_copy(update=update)})
    status = local.status()
    if all(s.running for s in (status if isinstance(status, list) else [status])):
        return settings, None
    console.print("starting the local Kafka broker...")
    local.start(timeout_s=settings.local_kafka.start_timeout_s)
    return settings, local


def _run_in_live_view(
    settings: Settings,
    plan: DemoPlan,
    report: Path,
    keep_topics: bool,
    run_id: str,
    run_dir: Path,
    log_path: Path,
) -> tuple[DemoResult | None, str]:
    """Run the demo under the live view, every log line into ``log_path``; Ctrl-C (or
    SIGTERM) interrupts it, a second one leaves at once. The result (None if there was
    nothing to report) and the view's last note."""
    from rich.console import Console
    from rich.live import Live

    from streaming.demo.run import run_demo
    from streaming.errors import NothingToReportError
    from streaming.logs import configure_logging, stderr_into

    prefect_ready, prefect_ui = _prefect_server(run_dir, log_path)
    interrupt = threading.Event()
    view = _LiveView(interrupt, log_path, prefect_ui)

    def on_signal(signum: int, frame: Any) -> None:
        if interrupt.is_set():  # a second Ctrl-C: leave at once
            os._exit(INTERRUPTED_EXIT)
        interrupt.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    result = None
    try:
        with stderr_into(log_path) as terminal:
            configure_logging("INFO")
            screen = Console(file=terminal, force_terminal=terminal.isatty())
            # stdout and stderr stay as they are: Live's redirection would print warnings and
            # stray output above the view instead of into the log file.
            with Live(
                view, console=screen, refresh_per_second=4, redirect_stdout=False, redirect_stderr=False
            ):
                try:
                    result = run_demo(
                        settings,
                        plan,
                        report,
                        interrupt,
                        view.update,
                        keep_topics=keep_topics,
                        run_id=run_id,
                        prefect_ready=prefect_ready,
                    )
                except NothingToReportError as exc:
                    view.note = str(exc)
        configure_logging("WARNING")  # what is logged after the view (Prefect's shutdown) is noise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return result, view.note


def _prefect_server(run_dir: Path, log_path: Path) -> tuple[Any, str]:
    """The Prefect API the flow runs use: PREFECT_API_URL's, or a server of the demo's own,
    started now (it needs ~10 s) and stopped at exit. Returns its readiness wait and UI URL."""
    from streaming.demo.prefect_server import PrefectServer

    configured = os.environ.get("PREFECT_API_URL")
    if configured:
        return (lambda: None), configured.removesuffix("/api")
    server = PrefectServer(run_dir / "prefect", log_path)
    server.start()
    os.environ["PREFECT_API_URL"] = server.api_url  # before anything imports Prefect
    return server.wait_ready, server.url


class _LiveView:
    """The live view's renderable: drawn from the latest status at every refresh, so a
    Ctrl-C shows as "stopping…" within a refresh even while the demo is busy."""

    def __init__(self, interrupt: threading.Event, log_path: Path, prefect_ui: str) -> None:
        self.status: DemoStatus | None = None
        self.note = ""
        self._interrupt = interrupt
        self._log_path = log_path
        self._prefect_ui = prefect_ui

    def update(self, status: DemoStatus) -> None:
        self.status = status

    def __rich__(self) -> RenderableType:
        from rich.table import Table

        s = self.status
        grid = Table(
            title="driftloop demo", caption=f"logs: {self._log_path}", show_header=False, title_justify="left"
        )
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column()
        if self._interrupt.is_set():
            grid.add_row("", "[bold yellow]stopping… (Ctrl-C again quits at once, leaving the demo's topics)")
        if s is None:
            grid.add_row("now", "connecting")
            return grid
        minutes, seconds = divmod(int(s.elapsed_s), 60)
        grid.add_row("now", s.phase)
        if s.next_step:
            grid.add_row("next", s.next_step)
        left = s.seconds_left_in_stream
        grid.add_row(
            "stream",
            f"{s.produced:,} of {s.total:,} transactions at {s.rate:,.0f}/s"
            + (f", ends in ~{int(left) // 60}:{int(left) % 60:02d}" if left and not s.stopping else ""),
        )
        grid.add_row("scored", f"{s.scored:,} (behind by {max(0, s.produced - s.scored):,})")
        detection = (
            f", the first {s.seconds_to_detection:.1f} s after the onset" if s.seconds_to_detection else ""
        )
        grid.add_row("drift events", f"{s.drift_events}{detection}")
        grid.add_row("flow runs", f"{s.flow_runs} (Prefect UI: {self._prefect_ui})")
        serving = f"{s.champion or '-'}"
        if s.challenger:
            serving += f", challenger {s.challenger} at {s.canary_percent:g}%"
        grid.add_row("serving", serving)
        grid.add_row("canary schedule", " → ".join(f"{p:g}%" for p in s.schedule))
        if s.last_update:
            grid.add_row("last update", s.last_update)
        grid.add_row("elapsed", f"{minutes}:{seconds:02d}")
        return grid
