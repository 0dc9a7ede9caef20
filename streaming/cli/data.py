"""``driftloop simulate`` and ``driftloop train``: data in, a first champion out."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from streaming.cli._common import app, console, kafka_settings_of, settings_of

if TYPE_CHECKING:
    from streaming.simulation.delays import LabelDelay


@app.command("simulate")
def simulate(
    ctx: typer.Context,
    count: Annotated[int, typer.Option(min=1, help="Transactions to generate.")] = 10_000,
    scenario: Annotated[str, typer.Option(help="baseline | concept | covariate | prior")] = "baseline",
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same stream.")] = 0,
    rate: Annotated[float, typer.Option(min=0, help="Transactions per second (0: as fast as possible).")] = 0,
    label_delay: Annotated[
        str,
        typer.Option(
            help="How late each label comes: a number of transactions (500), or a median duration "
            "of event time (36h, 3d, 2w) drawn per label from a chargeback-like log-normal.",
        ),
    ] = "0",
    label_spread: Annotated[
        float,
        typer.Option(
            min=0, help="Sigma of the log-normal delays (0: every label exactly --label-delay late)."
        ),
    ] = 0.7,
    time_scale: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(
            min=1,
            help="Event time runs this many times faster than wall time (needs --rate): a month of "
            "traffic in minutes.",
            show_default="1 s of event time between transactions",
        ),
    ] = None,
    output: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            help="Write a labeled CSV/Parquet file instead of producing to Kafka (training history)."
        ),
    ] = None,
) -> None:
    """Generate card transactions with fraud; produce them (and labels) to Kafka or a file.

    Labels are keyed by transaction_id (as `driftloop join` reads them) and come
    --label-delay late: a number of transactions, or days of event time.
    """
    from rich.progress import Progress

    from streaming.simulation.generator import SCENARIOS, TransactionSimulator
    from streaming.simulation.streamer import stream_transactions

    if scenario not in SCENARIOS:
        raise typer.BadParameter(f"choose one of {', '.join(SCENARIOS)}", param_hint="--scenario")
    delay = _label_delay(label_delay, label_spread)
    if time_scale is not None and not rate:
        raise typer.BadParameter("needs --rate (event time per wall second)", param_hint="--time-scale")
    gap_s = time_scale / rate if time_scale is not None else 1.0
    simulator = TransactionSimulator(seed=seed, mean_gap_s=gap_s)
    if output is not None:
        frame = simulator.generate(count, SCENARIOS[scenario])
        if output.suffix == ".parquet":
            frame.to_parquet(output, index=False)
        else:
            frame.to_csv(output, index=False)
        typer.echo(f"wrote {count} labeled transactions ({frame['label'].mean():.2%} fraud) to {output}")
        return
    settings = kafka_settings_of(ctx)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(f"{scenario} → {settings.topics.transactions}", total=count)
        stats = stream_transactions(
            settings,
            simulator,
            count,
            SCENARIOS[scenario],
            rate or None,
            delay,
            progress=lambda n: bar.advance(task, n),
        )
    typer.echo(
        f"produced {stats.transactions} transactions and {stats.labels} labels "
        f"in {stats.seconds:.1f}s ({stats.transactions / max(stats.seconds, 1e-9):,.0f}/s)"
    )


def _label_delay(text: str, spread: float) -> LabelDelay:
    from streaming.errors import ConfigError
    from streaming.simulation.delays import parse_label_delay

    try:
        return parse_label_delay(text, spread)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--label-delay") from exc


@app.command("train")
def train(
    ctx: typer.Context,
    input: Annotated[Path, typer.Option("--input", "-i", help="Labeled history: CSV or Parquet.")],
    label_column: Annotated[str, typer.Option(help="The 0/1 label column.")] = "label",
    threshold: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(
            min=0,
            max=1,
            help="Decision threshold recorded in the manifest; default: the one the `decision` policy "
            "(cost, budget or fixed) chooses on the holdout.",
        ),
    ] = None,
    publish: Annotated[bool, typer.Option(help="Publish the version as champion on model.updates.")] = True,
) -> None:
    """Train a first champion on a file, register it (signed) and publish it.

    The model is driftloop's gradient-boosted trees, or your own when the configuration's
    [training] names your training function or estimator factory (see the README's "Your own
    model and training code").
    """
    from streaming.control.updates import champion_update
    from streaming.kafka.publishing import publish_model_update
    from streaming.models.first_champion import read_table, train_and_register

    settings = kafka_settings_of(ctx) if publish else settings_of(ctx)
    frame = read_table(input)
    manifest = train_and_register(
        settings, frame, label_column=label_column, threshold=threshold, source=str(input)
    )
    shown = ", ".join(f"{k}={v:.4g}" for k, v in manifest.metrics.items())
    typer.echo(f"registered {manifest.name} {manifest.version} in {settings.registry_path} ({shown})")
    rule = manifest.decision
    how = f"{rule.policy} policy" if rule is not None and threshold is None else "--threshold"
    typer.echo(f"decision threshold {manifest.threshold:.4g} ({how})")
    if publish:
        publish_model_update(settings, champion_update(manifest))
        typer.echo(f"published {manifest.version} as champion on {settings.topics.model_updates}")
