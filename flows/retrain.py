"""The Prefect flow ``retrain``: a drift event in, a validated, signed challenger out.

fetch the training window from Kafka → snapshot it (Parquet, content hash) → data checks →
train one candidate per training window (since the drift, the most recent rows, all history
with recency weights: :mod:`streaming.models.candidates`, the code the backtest's
``--retrain`` runs too) and keep the one that does best on the newest labelled rows →
validate (holdout bars, then at least as good as the champion on the same rows) → register
(signed; its threshold, calibration and every candidate's figures in the manifest) → publish
it on ``model.updates`` as the challenger (0% traffic until a canary widens it).

Every outcome is a ModelUpdate on ``model.updates``: ``challenger`` (with the version),
``rejected`` (with the reasons; the candidate is not registered, so no scorer can load it)
or ``failed`` (with the error; the flow run fails too, so Prefect shows it). The ``started``
update is written by whoever starts the run (`driftloop trigger`, `driftloop retrain`).
Kafka and registry tasks retry with backoff.

Run it in-process with :func:`streaming.retraining.flow_entrypoint.run_in_process` (as
`driftloop retrain` and the trigger's in-process launcher do), or serve it as a deployment with
`driftloop worker` and start runs with `driftloop trigger` (see the README).
"""

from __future__ import annotations

import subprocess
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE

from streaming.config import RetrainingSettings, Settings
from streaming.control.plan import ServingPlan
from streaming.control.updates import challenger_update, run_ended_update
from streaming.errors import DriftloopError
from streaming.events import DriftEvent, ModelUpdate
from streaming.kafka.publishing import publish_model_update
from streaming.logs import get_logger
from streaming.models.candidates import Selection, select_candidate
from streaming.models.first_champion import open_registry, training_params
from streaming.models.registry import LoadedModel, ModelManifest
from streaming.models.training import TrainedModel
from streaming.models.validation import DEGRADED_SIGNALS, Validation, check_window, validate_candidate
from streaming.retraining.datasets import DatasetSnapshot, snapshot_dataset
from streaming.retraining.flow_entrypoint import run_settings
from streaming.retraining.window import TrainingWindow, fetch_training_window, find_drift_event

log = get_logger("driftloop.retrain")

#: Default backoff of the tasks that talk to Kafka or the registry store (the settings'
#: defaults); each run uses its own ``retraining.retries`` and ``retraining.retry_delays_s``.
IO_RETRIES = RetrainingSettings().retries
IO_BACKOFF_S = RetrainingSettings().retry_delays_s


@dataclass
class RetrainOutcome:
    """What a run ended with; also its Prefect result."""

    status: str  # challenger | rejected | failed
    model_name: str
    drift_event_id: str
    version: str | None = None
    reasons: list[str] = field(default_factory=list)
    dataset_sha256: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)


def code_version() -> str:
    """driftloop's version, plus the git commit when the code runs from a checkout."""
    version = metadata.version("driftloop")
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return version
    return f"{version}+g{commit}" if commit else version


# -- tasks ------------------------------------------------------------------------------


@task(retries=IO_RETRIES, retry_delay_seconds=IO_BACKOFF_S, cache_policy=NONE)
def read_serving_plan(settings: Settings) -> ServingPlan:
    """Which champion serves now (read from model.updates)."""
    from streaming.control.follower import current_plan

    return current_plan(settings)


@task(retries=IO_RETRIES, retry_delay_seconds=IO_BACKOFF_S, cache_policy=NONE)
def fetch_window(settings: Settings, end: datetime) -> TrainingWindow:
    return fetch_training_window(settings, end)


@task(retries=IO_RETRIES, retry_delay_seconds=IO_BACKOFF_S, cache_policy=NONE)
def snapshot_window(settings: Settings, window: TrainingWindow) -> DatasetSnapshot:
    return snapshot_dataset(window.frame, settings.registry_path, settings.model_name, window.lineage)


@task(retries=IO_RETRIES, retry_delay_seconds=IO_BACKOFF_S, cache_policy=NONE)
def find_drift(settings: Settings, drift_event_id: str) -> DriftEvent | None:
    """The drift event that started the run (None for a manual run, or one not on drift.events):
    where the drift began (its ``window_start``), and whether the champion itself got worse."""
    if drift_event_id == "manual":
        return None
    return find_drift_event(settings, drift_event_id)


@task(cache_policy=NONE)
def select_candidates(
    settings: Settings, frame: pd.DataFrame, drift_start: datetime | None, champion: LoadedModel | None
) -> Selection:
    """One candidate per training window, judged (with the champion) on the newest rows."""
    retraining = settings.retraining
    params = training_params(settings, max_iter=retraining.max_iter, min_rows=retraining.min_rows)
    start_row = None
    if drift_start is not None:
        times = pd.to_datetime(frame["event_time"], utc=True)
        start_row = int(times.searchsorted(pd.Timestamp(drift_start), side="left"))
    return select_candidate(
        frame,
        settings.feature_spec(),
        "label",
        params,
        settings.decision,
        retraining,
        drift_start_row=start_row,
        champion_scores=_scorer(champion),
        champion_threshold=champion.manifest.threshold if champion is not None else None,
    )


@task(retries=IO_RETRIES, retry_delay_seconds=IO_BACKOFF_S, cache_policy=NONE)
def load_champion(settings: Settings, plan: ServingPlan) -> LoadedModel | None:
    if plan.champion is None:
        return None
    return open_registry(settings).load(settings.model_name, plan.champion)


@task(cache_policy=NONE)
def validate(settings: Settings, selection: Selection, drift: DriftEvent | None) -> Validation:
    degraded = drift is not None and drift.signal in DEGRADED_SIGNALS
    return validate_candidate(selection, settings.retraining, settings.decision, champion_degraded=degraded)


@task(retries=IO_RETRIES, retry_delay_seconds=IO_BACKOFF_S, cache_policy=NONE)
def register_candidate(settings: Settings, candidate: TrainedModel, lineage: dict[str, Any]) -> ModelManifest:
    return open_registry(settings).register(settings.model_name, candidate, lineage=lineage)


def _scorer(champion: LoadedModel | None) -> Any:
    if champion is None:
        return None
    return lambda rows: champion.predict_proba(champion.encoder.frame_matrix(rows))


@task(retries=IO_RETRIES, retry_delay_seconds=IO_BACKOFF_S, cache_policy=NONE)
def publish(settings: Settings, update: ModelUpdate) -> None:
    publish_model_update(settings, update)


# -- the flow ---------------------------------------------------------------------------


@flow(
    name="retrain",
    flow_run_name="retrain-{model_name}-{drift_event_id}",
    description="Fetch the training window from Kafka, snapshot it, train, validate, sign, register, "
    "publish the challenger.",
)
def retrain(drift_event_id: str = "manual", model_name: str = "") -> dict[str, Any]:
    """Retrain ``model_name`` (default: the configured one) after drift event ``drift_event_id``."""
    settings = run_settings()
    if model_name and model_name != settings.model_name:
        settings = settings.model_copy(update={"model_name": model_name})
    logger = get_run_logger()
    outcome = RetrainOutcome("failed", settings.model_name, drift_event_id)
    plan = ServingPlan()
    retries, delays = settings.retraining.retries, settings.retraining.retry_delays_s
    try:
        plan = read_serving_plan.with_options(retries=retries, retry_delay_seconds=delays)(settings)
        window = fetch_window.with_options(retries=retries, retry_delay_seconds=delays)(
            settings, datetime.now(UTC)
        )
        snapshot = snapshot_window.with_options(retries=retries, retry_delay_seconds=delays)(settings, window)
        outcome.dataset_sha256 = snapshot.sha256
        outcome.evidence["dataset"] = {**snapshot.as_lineage(), **window.lineage}
        logger.info("training window: %s labelled rows, dataset %s", snapshot.rows, snapshot.sha256[:12])
        problems = check_window(window.frame, settings.feature_spec(), settings.retraining)
        if problems:
            outcome.status, outcome.reasons = "rejected", problems
        else:
            drift = find_drift.with_options(retries=retries, retry_delay_seconds=delays)(
                settings, drift_event_id
            )
            drift_start = drift.window_start if drift is not None else None
            champion = load_champion.with_options(retries=retries, retry_delay_seconds=delays)(settings, plan)
            selection = select_candidates(settings, window.frame, drift_start, champion)
            logger.info(
                "candidates: %s; kept %s",
                ", ".join(
                    f"{c.name} ({c.rows} rows): {c.skipped or f'{c.objective:.4f}'}"
                    for c in selection.candidates
                ),
                selection.winner_name,
            )
            verdict = validate(settings, selection, drift)
            verdict.champion_version = plan.champion
            outcome.evidence["validation"] = verdict.evidence()
            outcome.evidence["selection"] = selection.lineage()
            if not verdict.passed or selection.winner is None:
                outcome.status, outcome.reasons = "rejected", verdict.reasons
            else:
                lineage = {
                    "drift_event_id": drift_event_id,
                    "drift_started_at": drift_start.isoformat() if drift_start is not None else None,
                    "dataset": snapshot.as_lineage(),
                    "window": window.lineage,
                    "selection": selection.lineage(),
                    "code_version": code_version(),
                    "champion_version": plan.champion,
                    "trained_at": datetime.now(UTC).isoformat(),
                }
                manifest = register_candidate.with_options(retries=retries, retry_delay_seconds=delays)(
                    settings, selection.winner, lineage
                )
                outcome.status, outcome.version = "challenger", manifest.version
                update = challenger_update(manifest, plan.champion, drift_event_id, outcome.evidence)
                publish.with_options(retries=retries, retry_delay_seconds=delays)(settings, update)
                logger.info("published %s as the challenger", manifest.version)
                return asdict(outcome)
        logger.warning("candidate rejected: %s", "; ".join(outcome.reasons))
        publish.with_options(retries=retries, retry_delay_seconds=delays)(settings, _ended(outcome, plan))
        return asdict(outcome)
    except Exception as exc:
        outcome.status, outcome.reasons = "failed", [f"{type(exc).__name__}: {exc}"]
        logger.error("retraining failed: %s", exc)
        try:
            publish_model_update(settings, _ended(outcome, plan))
        except DriftloopError as publish_error:  # Kafka itself may be what failed
            logger.error("could not publish the failure either: %s", publish_error)
        raise


def _ended(outcome: RetrainOutcome, plan: ServingPlan) -> ModelUpdate:
    status: Literal["rejected", "failed"] = "failed" if outcome.status == "failed" else "rejected"
    return run_ended_update(
        outcome.model_name,
        status,
        plan.champion,
        outcome.drift_event_id,
        outcome.reasons,
        outcome.evidence,
        version=outcome.version,
    )
