"""``driftloop kafka start | stop | status`` (the local broker) and ``driftloop topics``."""

from __future__ import annotations

from typing import Annotated

import typer

from streaming.cli._common import app, console, kafka_settings_of, local_broker, settings_of

kafka_app = typer.Typer(
    help="Run a local Apache Kafka broker (KRaft, loopback) from Maven Central jars.", no_args_is_help=True
)
topics_app = typer.Typer(help="Create and list driftloop's topics.", no_args_is_help=True)
app.add_typer(kafka_app, name="kafka")
app.add_typer(topics_app, name="topics")


@kafka_app.command("start")
def kafka_start(ctx: typer.Context) -> None:
    """Fetch (once), format and start the broker; a no-op when it already runs."""
    settings = settings_of(ctx)
    broker = local_broker(settings)
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
    broker = local_broker(settings_of(ctx))
    typer.echo("Kafka stopped" if broker.stop() else "Kafka was not running")


@kafka_app.command("status")
def kafka_status(ctx: typer.Context) -> None:
    """Say whether the broker runs, where, and where its log is. Exit 1 when it does not run."""
    status = local_broker(settings_of(ctx)).status()
    typer.echo(status.describe())
    raise typer.Exit(0 if status.running else 1)


@topics_app.command("create")
def topics_create(
    ctx: typer.Context,
    partitions: Annotated[int, typer.Option(min=1, help="Partitions of the data topics.")] = 4,
    replication_factor: Annotated[int, typer.Option(min=1, help="Replicas of every topic.")] = 1,
) -> None:
    """Create every driftloop topic that does not exist yet."""
    from streaming.kafka.clients import ensure_topics
    from streaming.topics import topic_catalogue

    settings = kafka_settings_of(ctx)
    created = ensure_topics(
        settings.kafka,
        topic_catalogue(settings.topics, partitions, replication_factor, settings.monitoring.state_max_bytes),
    )
    typer.echo(f"created: {', '.join(created)}" if created else "all topics exist")


@topics_app.command("list")
def topics_list(ctx: typer.Context) -> None:
    """Print the topic catalogue: name, message, key, cleanup policy."""
    from streaming.topics import topic_catalogue

    for topic in topic_catalogue(settings_of(ctx).topics):
        message = topic.message.__name__ if topic.message else "(internal)"
        policy = "compact" if topic.compacted else "delete"
        typer.echo(f"{topic.name:20} {message:12} key={topic.key:18} {policy}")
