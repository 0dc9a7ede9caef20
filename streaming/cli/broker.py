"""``driftloop kafka start | stop | status`` (the local broker) and ``driftloop topics``."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from streaming.cli._common import app, console, kafka_settings_of, local_broker, settings_of
from streaming.kafka.local_broker import BrokerStatus, LocalBroker, LocalCluster

kafka_app = typer.Typer(
    help="Run a local Apache Kafka broker (KRaft, loopback) from Maven Central jars.", no_args_is_help=True
)
topics_app = typer.Typer(help="Create and list driftloop's topics.", no_args_is_help=True)
app.add_typer(kafka_app, name="kafka")
app.add_typer(topics_app, name="topics")


@kafka_app.command("start")
def kafka_start(
    ctx: typer.Context,
    nodes: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            min=1,
            max=9,
            help="Run a KRaft cluster of this many nodes (3: the brokers' internal topics "
            "replicated 3 times, min.insync.replicas 2; driftloop's own with "
            "kafka.replication_factor and kafka.min_insync_replicas, printed at the end): node i "
            "on port+i-1; default local_kafka.nodes (1).",
        ),
    ] = None,
) -> None:
    """Fetch (once), format and start the broker (or cluster); a no-op when it already runs."""
    settings = settings_of(ctx)
    broker = local_broker(settings, nodes)
    statuses = _statuses(broker)
    if not all(s.running for s in statuses):
        console.print(
            f"starting Apache Kafka {broker.version} on {broker.bootstrap_servers} "
            "(the first start downloads the jars with Maven)..."
        )
    started = broker.start(timeout_s=settings.local_kafka.start_timeout_s)
    for status in started if isinstance(started, list) else [started]:
        typer.echo(status.describe())
    if isinstance(broker, LocalCluster):
        typer.echo(
            f"clients: KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap_servers} "
            "DRIFTLOOP_KAFKA__REPLICATION_FACTOR=3 DRIFTLOOP_KAFKA__MIN_INSYNC_REPLICAS=2"
        )


@kafka_app.command("stop")
def kafka_stop(ctx: typer.Context) -> None:
    """Stop the broker, or every node of the cluster (controlled shutdown); no error when none runs."""
    broker = local_broker(settings_of(ctx))
    typer.echo("Kafka stopped" if broker.stop() else "Kafka was not running")


@kafka_app.command("status")
def kafka_status(ctx: typer.Context) -> None:
    """Say whether the broker (each node of the cluster) runs, where, and where its log is.
    Exit 1 when it (any node) does not run."""
    statuses = _statuses(local_broker(settings_of(ctx)))
    for status in statuses:
        typer.echo(status.describe())
    raise typer.Exit(0 if all(s.running for s in statuses) else 1)


def _statuses(broker: LocalBroker | LocalCluster) -> list[BrokerStatus]:
    status = broker.status()
    return status if isinstance(status, list) else [status]


@topics_app.command("create")
def topics_create(
    ctx: typer.Context,
    partitions: Annotated[int, typer.Option(min=1, help="Partitions of the data topics.")] = 4,
    replication_factor: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(min=1, help="Replicas of every topic; default kafka.replication_factor (1)."),
    ] = None,
    min_insync_replicas: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            min=1, help="min.insync.replicas of every topic; default kafka.min_insync_replicas (1)."
        ),
    ] = None,
) -> None:
    """Create every driftloop topic that does not exist yet."""
    from streaming.kafka.clients import ensure_topics
    from streaming.topics import topic_catalogue

    settings = kafka_settings_of(ctx)
    kafka = settings.kafka.model_copy(
        update={
            k: v
            for k, v in (
                ("replication_factor", replication_factor),
                ("min_insync_replicas", min_insync_replicas),
            )
            if v is not None
        }
    )
    if kafka.min_insync_replicas > kafka.replication_factor:
        raise typer.BadParameter(
            f"{kafka.min_insync_replicas} is more than the replication factor {kafka.replication_factor}: "
            "no acks=all write could ever be acknowledged",
            param_hint="--min-insync-replicas",
        )
    replication_factor = kafka.replication_factor
    created = ensure_topics(
        kafka,
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
