"""``driftloop registry list | show | promote | rollback``: the registry and the serving plan by hand."""

from __future__ import annotations

import json
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from streaming.cli._common import app, kafka_settings_of, settings_of
from streaming.config import Settings

registry_app = typer.Typer(
    help="List, inspect, promote and roll back model versions (changes go out on model.updates).",
    no_args_is_help=True,
)
app.add_typer(registry_app, name="registry")

YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


@registry_app.command("list")
def registry_list(ctx: typer.Context) -> None:
    """Every registered version, its role in the serving plan (from model.updates) and lineage."""
    from rich.table import Table

    from streaming.control.follower import current_plan
    from streaming.control.manual import describe

    settings = kafka_settings_of(ctx)
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
    from streaming.control.manual import shown_manifest
    from streaming.models.first_champion import open_registry

    settings = settings_of(ctx)
    manifest = open_registry(settings).manifest(settings.model_name, version)
    typer.echo(json.dumps(shown_manifest(manifest), indent=2, default=str))


@registry_app.command("promote")
def registry_promote(
    ctx: typer.Context, version: Annotated[str, typer.Argument(help="e.g. v2")], yes: YesOption = False
) -> None:
    """Make VERSION the champion on every scorer (after verifying it loads)."""
    from streaming.control.follower import current_plan
    from streaming.control.manual import promotion
    from streaming.kafka.publishing import publish_model_update

    settings = kafka_settings_of(ctx)
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
    from streaming.control.follower import current_plan
    from streaming.control.manual import rollback
    from streaming.kafka.publishing import publish_model_update

    settings = kafka_settings_of(ctx)
    update, change = rollback(settings, current_plan(settings), to)
    _confirm_and_publish(settings, update, change, yes, publish_model_update)


def _confirm_and_publish(settings: Settings, update: Any, change: str, yes: bool, publish: Any) -> None:
    typer.echo(f"{settings.model_name}: {change}")
    if not yes and not typer.confirm("Publish this on model.updates?", default=False):
        raise typer.Exit(1)
    publish(settings, update)
    typer.echo(f"published {update.status} {update.version} on {settings.topics.model_updates}")
