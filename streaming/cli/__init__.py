"""The `driftloop` command line: the front door that wires the subpackages together.

One module per command or command group:

- :mod:`.demo` — ``demo``: the whole loop in one command;
- :mod:`.data` — ``simulate``, ``train``;
- :mod:`.services` — the long-running ``score``, ``trigger``, ``canary``, ``worker``, and
  ``retrain`` (one run now);
- :mod:`.backtest` — ``backtest`` over a file, without Kafka;
- :mod:`.events` — ``events tail``: follow a topic, readable or as JSON lines;
- :mod:`.registry` — ``registry list | show | promote | rollback``;
- :mod:`.broker` — ``kafka start | stop | status`` (the local broker), ``topics``;
- :mod:`.schemas` — ``schemas generate``, ``config show``;
- :mod:`.bench` — ``bench throughput | detection | labels``.
"""

from __future__ import annotations

import sys

import typer

from streaming.cli._common import ConfigOption, app, console
from streaming.errors import DriftloopError


@app.callback()
def main(ctx: typer.Context, config: ConfigOption = None) -> None:
    """driftloop: score a Kafka stream, watch it drift, retrain and canary the model."""
    ctx.obj = config


# Registration order is the order of `driftloop --help`.
from streaming.cli import (  # noqa: E402, I001
    demo,
    data,
    services,
    backtest,
    events,
    registry,
    broker,
    schemas,
    bench,
)

__all__ = ["app", "run"]
_ = (demo, data, services, backtest, events, registry, broker, schemas, bench)


def run() -> None:
    """Console-script entry point: project errors become one clear line and exit code 1."""
    try:
        app()
    except DriftloopError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
