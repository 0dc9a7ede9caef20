"""`driftloop registry list | show | promote | rollback`: the registry and the serving plan by hand.

``promote`` and ``rollback`` publish a ModelUpdate on ``model.updates`` that every scorer
follows, after showing what will change and asking for confirmation (``--yes`` skips it).
A version is promoted only after it passes the same verification a scorer applies
(signature, hash, trusted types).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from streaming.config import Settings
from streaming.errors import DriftloopError
from streaming.events import ModelUpdate, ModelUpdateStatus
from streaming.registry import ModelManifest
from streaming.scoring.serving import ServingPlan
from streaming.training import open_registry


class RegistryCommandError(DriftloopError):
    """A registry command cannot do what was asked; the message says why."""


def describe(settings: Settings, plan: ServingPlan) -> list[dict[str, Any]]:
    """One row per registered version: role in the plan, creation, headline metrics, lineage."""
    registry = open_registry(settings)
    rows = []
    for version in registry.versions(settings.model_name):
        manifest = registry.manifest(settings.model_name, version)
        role = "champion" if version == plan.champion else "challenger" if version == plan.challenger else ""
        if role == "challenger":
            role = f"challenger ({plan.challenger_percent:g}%)"
        rows.append(
            {
                "version": version,
                "role": role,
                "created_at": manifest.created_at.isoformat(timespec="seconds"),
                "roc_auc": manifest.metrics.get("roc_auc"),
                "drift_event_id": manifest.lineage.get("drift_event_id"),
                "dataset": (manifest.lineage.get("dataset") or {}).get("sha256", "")[:12],
            }
        )
    return rows


def shown_manifest(manifest: ModelManifest) -> dict[str, Any]:
    """The manifest without the bulky reference samples (their size is shown instead)."""
    data = msgspec.to_builtins(manifest)
    reference = data.pop("reference", None)
    if reference is not None:
        data["reference"] = {"rows": reference["rows"], "features": sorted(reference["numeric"])}
    return data


def promotion(settings: Settings, plan: ServingPlan, version: str) -> tuple[ModelUpdate, str]:
    """The update that makes ``version`` the champion, and a sentence saying what changes."""
    model = open_registry(settings).load(settings.model_name, version)  # refuses what a scorer would
    if version == plan.champion and plan.challenger is None:
        raise RegistryCommandError(f"{version} is already the champion and no challenger serves")
    status: ModelUpdateStatus = "promoted" if version == plan.challenger else "champion"
    change = f"champion {plan.champion or '(none)'} -> {version}"
    if plan.challenger and plan.challenger != version:
        change += f"; challenger {plan.challenger} withdrawn"
    update = ModelUpdate(
        model_name=settings.model_name,
        version=version,
        status=status,
        sha256=model.manifest.sha256,
        signature=model.manifest.signature,
        traffic_percent=100.0,
        champion_version=version,
        reasons=["promoted by hand (driftloop registry promote)"],
        evidence={"previous_champion": plan.champion, "previous_challenger": plan.challenger},
        created_at=datetime.now(UTC),
    )
    return update, change


def rollback(settings: Settings, plan: ServingPlan, to: str | None) -> tuple[ModelUpdate, str]:
    """Withdraw the challenger, or (``to``) make an earlier version the champion again."""
    if to is not None:
        update, change = promotion(settings, plan, to)
        return msgspec.structs.replace(update, status="champion", reasons=["rolled back by hand"]), change
    if plan.challenger is None:
        raise RegistryCommandError(
            f"no challenger serves (champion {plan.champion}); name a version to return to with --to"
        )
    update = ModelUpdate(
        model_name=settings.model_name,
        version=plan.challenger,
        status="rolled_back",
        traffic_percent=0.0,
        champion_version=plan.champion,
        reasons=["rolled back by hand (driftloop registry rollback)"],
        created_at=datetime.now(UTC),
    )
    return update, f"challenger {plan.challenger} withdrawn; champion {plan.champion} serves all traffic"
