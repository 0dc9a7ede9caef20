"""Every ModelUpdate driftloop writes on ``model.updates``, built in one place.

A ModelUpdate always names the champion serving when it was written
(``champion_version``), so the newest update of a model is enough to rebuild its serving
plan (see :func:`streaming.control.plan.fold`). The life of a version:

``champion`` (first model, or by hand) · ``started`` (a retraining run exists) ·
``challenger`` (registered, 0% traffic) or ``rejected`` / ``failed`` (the run's end) ·
``canary_step`` (a wider slice) · ``promoted`` or ``rolled_back``.

>>> update = started_update("fraud", "evt-1", {"mode": "cli"}, champion="v1")
>>> update.status, update.version, update.champion_version, update.drift_event_id
('started', 'candidate', 'v1', 'evt-1')
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from streaming.events import ModelUpdate
from streaming.models.registry import ModelManifest

#: The version named by updates about a run that has not registered one.
CANDIDATE = "candidate"


def _now() -> datetime:
    return datetime.now(UTC)


def champion_update(
    manifest: ModelManifest,
    *,
    status: Literal["champion", "promoted"] = "champion",
    reasons: list[str] | None = None,
    evidence: dict[str, Any] | None = None,
) -> ModelUpdate:
    """``manifest``'s version serves all traffic (``promoted`` when it was the challenger)."""
    return ModelUpdate(
        model_name=manifest.name,
        version=manifest.version,
        status=status,
        sha256=manifest.sha256,
        signature=manifest.signature,
        traffic_percent=100.0,
        champion_version=manifest.version,
        reasons=reasons or [],
        evidence={"metrics": manifest.metrics} if evidence is None else evidence,
        created_at=_now(),
    )


def started_update(
    model_name: str, drift_event_id: str, run: dict[str, Any], champion: str | None
) -> ModelUpdate:
    """A retraining run for ``drift_event_id`` exists; ``run`` says which (mode, ids)."""
    return ModelUpdate(
        model_name=model_name,
        version=CANDIDATE,
        status="started",
        champion_version=champion,
        drift_event_id=drift_event_id,
        evidence=run,
        created_at=_now(),
    )


def challenger_update(
    manifest: ModelManifest, champion: str | None, drift_event_id: str, evidence: dict[str, Any]
) -> ModelUpdate:
    """A registered, validated candidate; it serves nothing until a canary step widens it."""
    return ModelUpdate(
        model_name=manifest.name,
        version=manifest.version,
        status="challenger",
        sha256=manifest.sha256,
        signature=manifest.signature,
        traffic_percent=0.0,
        champion_version=champion,
        drift_event_id=drift_event_id,
        evidence=evidence,
        created_at=_now(),
    )


def run_ended_update(
    model_name: str,
    status: Literal["rejected", "failed"],
    champion: str | None,
    drift_event_id: str,
    reasons: list[str],
    evidence: dict[str, Any],
    version: str | None = None,
) -> ModelUpdate:
    """A retraining run ended without a challenger: its candidate was rejected, or it failed."""
    return ModelUpdate(
        model_name=model_name,
        version=version or CANDIDATE,
        status=status,
        champion_version=champion,
        drift_event_id=drift_event_id,
        reasons=reasons,
        evidence=evidence,
        created_at=_now(),
    )


def canary_decision_update(
    model_name: str,
    challenger: str,
    champion: str | None,
    status: Literal["canary_step", "promoted", "rolled_back"],
    percent: float,
    reason: str,
    evidence: dict[str, Any],
) -> ModelUpdate:
    """The canary controller's decision about ``challenger``: a wider step, or the end."""
    return ModelUpdate(
        model_name=model_name,
        version=challenger,
        status=status,
        traffic_percent=percent,
        champion_version=challenger if status == "promoted" else champion,
        reasons=[reason],
        evidence=evidence,
        created_at=_now(),
    )


def withdrawn_update(model_name: str, challenger: str, champion: str | None, reason: str) -> ModelUpdate:
    """The challenger is withdrawn by hand; the champion serves all traffic."""
    return ModelUpdate(
        model_name=model_name,
        version=challenger,
        status="rolled_back",
        traffic_percent=0.0,
        champion_version=champion,
        reasons=[reason],
        created_at=_now(),
    )


def labels_pending(update: ModelUpdate) -> bool:
    """Was this run's candidate rejected only for labels still to come (so a retry once more
    have come may pass)? The flow writes it as ``evidence["validation"]["labels_pending"]``."""
    validation = update.evidence.get("validation")
    return (
        update.status == "rejected"
        and isinstance(validation, dict)
        and validation.get("labels_pending") is True
    )


__all__ = [
    "CANDIDATE",
    "canary_decision_update",
    "challenger_update",
    "champion_update",
    "labels_pending",
    "run_ended_update",
    "started_update",
    "withdrawn_update",
]
