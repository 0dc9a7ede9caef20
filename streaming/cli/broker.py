"""``driftloop kafka start | stop | status`` (the local broker) and ``driftloop topics``."""

from __future__ import annotations

from typing import Annotated, Optional

import click
import typer

from streaming.cli._common import app, console, kafka_settings_of, local_broker, settings_of
from streaming.config import KafkaSettings, Settings
from streaming.kafka.local_broker import BrokerStatus, LocalBroker, LocalCluster
from streaming.kafka.local_security import LocalSecurity

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
    security: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            click_type=click.Choice(["plaintext", "sasl_ssl"]),
            metavar="[plaintext|sasl_ssl]",
            help="sasl_ssl: clients connect over TLS (a local CA in DRIFTLOOP_HOME/kafka/tls/ca.pem) "
            "with SCRAM-SHA-512 users, one per component plus `driftloop` (all of them and the "
            "demo), each allowed only its component's topics by ACLs; each user's settings are "
            "written to a USER.env file in DRIFTLOOP_HOME/kafka/users/. Fixed when the storage is first "
            "formatted; default: as it was, else plaintext.",
        ),
    ] = None,
) -> None:
    """Fetch (once), format and start the broker (or cluster); a no-op when it already runs."""
    from streaming.kafka.local_security import LocalSecurity

    settings = settings_of(ctx)
    local_security = LocalSecurity(settings.home)
    formatted = any((settings.home / "kafka").glob("**/data/meta.properties"))
    mode = local_security.choose(security, formatted)  # type: ignore[arg-type]
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
    if mode == "sasl_ssl":
        _secure(settings, broker, local_security)
    elif isinstance(broker, LocalCluster):
        typer.echo(
            f"clients: KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap_servers} "
            "DRIFTLOOP_KAFKA__REPLICATION_FACTOR=3 DRIFTLOOP_KAFKA__MIN_INSYNC_REPLICAS=2"
        )


def _secure(settings: Settings, broker: LocalBroker | LocalCluster, security: LocalSecurity) -> None:
    """Apply every user's ACLs (as the brokers' own user) and write the users' env files."""
    from streaming.kafka.acls import apply_acls

    replicas = len(broker.nodes) if isinstance(broker, LocalCluster) else 1
    options = broker.client_options()
    admin = KafkaSettings(
        bootstrap_servers=broker.bootstrap_servers,
        client=settings.kafka.client,
        security_protocol="SASL_SSL",
        ssl_cafile=options["ssl_cafile"],
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username=options["sasl_plain_username"],
        sasl_plain_password=options["sasl_plain_password"],
    )
    applied = apply_acls(admin, security.bindings(settings.topics))
    security.write_env_files(broker.bootstrap_servers, replicas)
    typer.echo(
        f"secured: SASL_SSL, SCRAM-SHA-512, {applied} ACLs (`driftloop topics acls` lists them); users: "
        + ", ".join(security.users())
    )
    typer.echo(
        f"connect as a user: set -a; . {security.env_file('driftloop')}; set +a   "
        f"(or scorer.env, trigger.env, ... in {security.users_folder})"
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


@topics_app.command("acls")
def topics_acls(
    ctx: typer.Context,
    user: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            help="USER=COMPONENT[,COMPONENT...]: the ACLs of USER acting as those components "
            "(scorer, join, monitor, trigger, retrainer, canary, producer, operator); repeatable. "
            "Default: each component's own user of the local secured broker, and `driftloop`.",
        ),
    ] = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="Create them on the cluster (as a user allowed to alter ACLs).")
    ] = False,
) -> None:
    """Print (or --apply) the Kafka ACLs each driftloop component needs on its topics."""
    from streaming.kafka.acls import acls_for, apply_acls

    settings = settings_of(ctx)
    if user:
        bindings = []
        for item in user:
            name, _, components = item.partition("=")
            try:
                bindings += acls_for(
                    name, [c.strip() for c in components.split(",") if c.strip()], settings.topics
                )
            except ValueError as exc:
                raise typer.BadParameter(str(exc), param_hint="--user") from exc
    else:
        bindings = LocalSecurity(settings.home).bindings(settings.topics)
    for binding in bindings:
        typer.echo(binding.describe())
    if apply:
        applied = apply_acls(kafka_settings_of(ctx).kafka, bindings)
        typer.echo(f"applied {applied} ACLs")
