"""``driftloop schemas generate`` and ``driftloop config show``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from streaming.cli._common import app, settings_of

schemas_app = typer.Typer(
    help="JSON Schema and AsyncAPI files generated from the event definitions.", no_args_is_help=True
)
config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
app.add_typer(schemas_app, name="schemas")
app.add_typer(config_app, name="config")


@schemas_app.command("generate")
def schemas_generate(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="Folder to write into.")] = Path("schemas"),
    check: Annotated[bool, typer.Option("--check", help="Only compare; exit 1 on any difference.")] = False,
) -> None:
    """Write (or with --check, verify) the JSON Schema files and asyncapi.yaml.

    The Transaction and Label schemas follow the configured feature spec and messages.*
    limits (--config): the contract a producer can validate against before it sends.
    """
    from streaming.schema_export import schema_differences, write_schemas

    settings = settings_of(ctx)
    if check:
        problems = schema_differences(out, settings)
        for problem in problems:
            typer.echo(problem, err=True)
        if problems:
            typer.echo("run `driftloop schemas generate` and commit the result", err=True)
            raise typer.Exit(1)
        typer.echo(f"{out}/ matches the event definitions")
        return
    for path in write_schemas(out, settings):
        typer.echo(f"wrote {path}")


@config_app.command("show")
def config_show(ctx: typer.Context) -> None:
    """Print the effective configuration as JSON (secrets masked)."""
    settings = settings_of(ctx)
    typer.echo(json.dumps(json.loads(settings.model_dump_json()), indent=2))
