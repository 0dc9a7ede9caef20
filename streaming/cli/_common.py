"""What every command module shares: the app, the console, the settings, the broker check.

Only light modules are imported here (typer, rich, pydantic through the settings), so
``driftloop --help`` and the light commands start quickly; each command imports what it
needs inside its function.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console

from streaming.config import Settings, load_settings
from streaming.errors import DriftloopError

if TYPE_CHECKING:
    from streaming.kafka.local_broker import LocalBroker, LocalCluster

app = typer.Typer(
    name="driftloop",
    help="Event-driven drift detection and retraining for models that score Kafka streams.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Markdown joins a paragraph's lines (typer 0.28 keeps a docstring's line breaks, and
    # rich then wraps them again: ragged help).
    rich_markup_mode="markdown",
)

#: Messages for the user (progress, errors) go to stderr; results go to stdout.
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

LogLevelOption = Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR (JSON lines on stderr).")]


def settings_of(ctx: typer.Context) -> Settings:
    """The effective settings: --config (or $DRIFTLOOP_CONFIG), DRIFTLOOP_* variables, defaults."""
    return load_settings(ctx.find_root().obj)


def kafka_settings_of(ctx: typer.Context) -> Settings:
    """The settings, once a broker has answered at their bootstrap servers (one clear line and
    exit 1 within seconds otherwise)."""
    from streaming.kafka.clients import require_broker

    settings = settings_of(ctx)
    require_broker(settings.kafka)
    return settings


def setting_default(section: str, field: str) -> str:
    """``"scoring.max_batch = 1000"``: the --help default of an option that overrides a setting."""
    from pydantic import BaseModel

    model = Settings.model_fields[section].annotation
    assert isinstance(model, type) and issubclass(model, BaseModel)
    return f"{section}.{field} = {model.model_fields[field].default}"


def local_broker(settings: Settings, nodes: int | None = None) -> LocalBroker | LocalCluster:
    """The local broker, or the local cluster of ``nodes`` (default: ``local_kafka.nodes``, or
    as many as `kafka start --nodes` made under the home folder)."""
    from streaming.kafka.local_broker import LocalBroker, LocalCluster
    from streaming.kafka.local_security import LocalSecurity

    local = settings.local_kafka
    if nodes is None:
        made = len(list((settings.home / "kafka").glob("node-*")))
        nodes = local.nodes if local.nodes > 1 or not made else made
    security = LocalSecurity(settings.home)
    secured = security.mode() == "sasl_ssl"
    options: dict[str, Any] = {"heap": local.heap}
    if secured:  # SASL_SSL with SCRAM users and ACLs (`kafka start --security sasl_ssl`)
        options.update(scram_users=security.passwords(), tls=True, acls=True)
    if nodes == 1:
        return LocalBroker(settings.home, local.version, local.port, local.controller_port, **options)
    controller = local.controller_port
    overlap = controller < local.port + nodes and local.port < controller + nodes
    if overlap or "controller_port" not in local.model_fields_set:
        controller = local.port + 100  # the clients' ports + 100: 9192-9194 next to 9092-9094
    return LocalCluster(settings.home, local.version, nodes, local.port, controller, **options)


def require_prefect_server() -> None:
    if not os.environ.get("PREFECT_API_URL"):
        raise DriftloopError(
            "a Prefect server is needed: start one (`prefect server start` or `docker compose up -d prefect`) "
            "and set PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
