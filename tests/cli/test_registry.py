"""`driftloop registry list | show | promote | rollback` against the real broker."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import pandas as pd
import pytest

from streaming.config import Settings, child_env
from streaming.control.follower import current_plan
from streaming.control.updates import champion_update
from streaming.events import ModelUpdate
from streaming.kafka.publishing import publish_model_update
from streaming.models.first_champion import train_and_register
from streaming.models.registry import ARTIFACT_FILE
from streaming.models.training import TrainingParams

pytestmark = pytest.mark.integration


def driftloop(settings: Settings, *args: str, answer: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streaming.cli", *args],
        env={**child_env(settings), "COLUMNS": "200"},
        input=answer,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def two_versions(driftloop_settings: Settings, history: pd.DataFrame) -> Settings:
    """v1 serves as champion, v2 as a 10% challenger."""
    settings = driftloop_settings
    v1 = train_and_register(settings, history, params=TrainingParams(max_iter=10))
    publish_model_update(settings, champion_update(v1))
    v2 = train_and_register(settings, history, params=TrainingParams(max_iter=20))
    publish_model_update(
        settings,
        ModelUpdate(
            model_name="fraud",
            version=v2.version,
            status="canary_step",
            sha256=v2.sha256,
            signature=v2.signature,
            traffic_percent=10.0,
            champion_version="v1",
            created_at=datetime.now(UTC),
        ),
    )
    return settings


def test_list_and_show_tell_versions_roles_and_lineage(two_versions: Settings) -> None:
    listed = driftloop(two_versions, "registry", "list")
    assert listed.returncode == 0, listed.stderr
    lines = {line.split("│")[1].strip(): line for line in listed.stdout.splitlines() if line.startswith("│")}
    assert "champion" in lines["v1"] and "challenger (10%)" in lines["v2"]
    shown = driftloop(two_versions, "registry", "show", "v2")
    assert shown.returncode == 0, shown.stderr
    manifest = json.loads(shown.stdout)
    assert manifest["version"] == "v2" and manifest["signature"] and manifest["reference"]["rows"] > 0


def test_promote_asks_first_then_publishes_and_every_follower_sees_it(two_versions: Settings) -> None:
    declined = driftloop(two_versions, "registry", "promote", "v2", answer="n\n")
    assert declined.returncode == 1 and "champion v1 -> v2" in declined.stdout
    assert current_plan(two_versions).champion == "v1"
    done = driftloop(two_versions, "registry", "promote", "v2", "--yes")
    assert done.returncode == 0, done.stderr
    plan = current_plan(two_versions)
    assert (plan.champion, plan.challenger) == ("v2", None)


def test_rollback_withdraws_the_challenger_or_returns_to_an_earlier_champion(two_versions: Settings) -> None:
    done = driftloop(two_versions, "registry", "rollback", "--yes")
    assert done.returncode == 0, done.stderr
    assert "challenger v2 withdrawn" in done.stdout
    assert current_plan(two_versions) == current_plan(two_versions).__class__("v1")
    nothing = driftloop(two_versions, "registry", "rollback", "--yes")
    assert nothing.returncode == 1 and "no challenger serves" in nothing.stderr
    assert driftloop(two_versions, "registry", "promote", "v2", "--yes").returncode == 0
    back = driftloop(two_versions, "registry", "rollback", "--to", "v1", "--yes")
    assert back.returncode == 0, back.stderr
    assert current_plan(two_versions).champion == "v1"


def test_a_tampered_version_cannot_be_promoted(two_versions: Settings) -> None:
    artifact = two_versions.registry_path / "fraud" / "v2" / ARTIFACT_FILE
    artifact.write_bytes(artifact.read_bytes() + b"tampered")
    refused = driftloop(two_versions, "registry", "promote", "v2", "--yes")
    assert refused.returncode == 1 and "hash_mismatch" in refused.stderr
    assert current_plan(two_versions).champion == "v1"
