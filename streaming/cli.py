"""The `driftloop` command line: the front door that wires the subpackages together."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

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
app.add_typer(kafka_app, name="kafka")
app.add_typer(topics_app, name="topics")
app.add_typer(schemas_app, name="schemas")
app.add_typer(config_app, name="config")

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
