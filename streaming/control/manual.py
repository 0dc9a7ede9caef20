"""`driftloop registry list | show | promote | rollback`: the registry and the serving plan by hand.

``promote`` and ``rollback`` publish a ModelUpdate on ``model.updates`` that every scorer
follows, after showing what will change and asking for confirmation (``--yes`` skips it).
A version is promoted only after it passes the same verification a scorer applies
(signature, hash, trusted types).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from streaming.config import Settings
from streaming.control.plan import ServingPlan
from streaming.control.updates import champion_update, withdrawn_update
from streaming.errors import RegistryCommandError
from streaming.events import ModelUpdate
from streaming.models.first_champion import open_registry
from streaming.models.registry import ModelManifest


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
    status: Literal["champion", "promoted"] = "promoted" if version == plan.challenger else "champion"
    change = f"champion {plan.champion or '(none)'} -> {version}"
    if plan.challenger and plan.challenger != version:
        change += f"; challenger {plan.challenger} withdrawn"
    update = champion_update(
        model.manifest,
        status=status,
        reasons=["promoted by hand (driftloop registry promote)"],
        evidence={"previous_champion": plan.champion, "previous_challenger": plan.challenger},
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
    update = withdrawn_update(
        settings.model_name,
        plan.challenger,
        plan.champion,
        "rolled back by hand (driftloop registry rollback)",
    )
    return update, f"challenger {plan.challenger} withdrawn; champion {plan.champion} serves all traffic"
