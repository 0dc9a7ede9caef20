"""Drift events in Prefect's event feed, and the automation that retrains on them, against a
real (temporary) Prefect server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from streaming.events import DriftEvent, FeatureShift
from streaming.monitoring.prefect_events import DRIFT_EVENT, PrefectEvents, model_resource_id
from streaming.retraining.automation import drift_trigger
from tests.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield str(PREFECT_API_URL.value())


def drift(event_id: str, severity: str = "high") -> DriftEvent:
    return DriftEvent(
        event_id=event_id,
        model_name="fraud",
        model_version="v1",
        signal="feature",
        detector="adwin",
        feature="amount",
        severity=severity,  # type: ignore[arg-type]
        detected_at=datetime.now(UTC),
        scope=[0, 1, 2],
        partitions_seen=12,
        explanation=[FeatureShift(column="amount", psi=0.31)],
    )


def prefect_events(api_url: str) -> list[dict]:  # type: ignore[type-arg]
    import httpx

    response = httpx.post(
        f"{api_url}/events/filter",
        json={
            "filter": {"event": {"name": [DRIFT_EVENT]}, "occurred": {"since": "2020-01-01T00:00:00Z"}},
            "limit": 50,
        },
        timeout=10,
    )
    response.raise_for_status()
    return list(response.json()["events"])


def test_a_drift_event_is_in_the_prefect_event_feed_about_its_model(api_url: str) -> None:
    sender = PrefectEvents(api_url)
    event = drift("6f1de0c4-0000-5000-8000-00000000a001")
    assert sender.send(event)
    found = eventually(
        lambda: next(
            (e for e in prefect_events(api_url) if e["payload"]["event_id"] == event.event_id), None
        ),
        "the drift event in Prefect's feed",
        timeout_s=60,
    )
    assert found["resource"]["prefect.resource.id"] == model_resource_id("fraud")
    assert found["payload"]["scope"] == [0, 1, 2]
    assert found["payload"]["explanation"][0]["column"] == "amount"
    sender.close()


def test_the_automation_starts_one_retraining_run_per_drift_episode(api_url: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    from flows.retrain import retrain

    deployment_id = retrain.to_deployment(name="on-drift-test", triggers=[drift_trigger("fraud")]).apply()
    sender = PrefectEvents(api_url)

    def runs() -> list:  # type: ignore[type-arg]
        with get_client(sync_client=True) as client:
            return client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
            )

    with get_client(sync_client=True) as client:
        assert client.read_automations_by_name("retrain fraud on drift"), (
            "the deployment trigger is an automation"
        )
    first = drift("6f1de0c4-0000-5000-8000-00000000b001")
    assert sender.send(first)
    assert sender.send(first)  # the monitor replaying the same episode's event: the same Prefect event id
    assert sender.send(drift("6f1de0c4-0000-5000-8000-00000000b002", severity="low"))  # below the bar
    started = eventually(lambda: runs() or None, "a flow run of the deployment", timeout_s=90)
    second = drift("6f1de0c4-0000-5000-8000-00000000b003")  # the next episode
    assert sender.send(second)
    both = eventually(lambda: r if len(r := runs()) >= 2 else None, "a second flow run", timeout_s=90)
    assert len(started) == 1
    assert sorted(r.parameters["drift_event_id"] for r in both) == sorted([first.event_id, second.event_id])
    assert all(r.parameters["model_name"] == "fraud" for r in both)
    third = drift("6f1de0c4-0000-5000-8000-00000000b004")  # a marker: once its run exists, all are in
    assert sender.send(third)
    final = eventually(lambda: r if len(r := runs()) >= 3 else None, "the marker's flow run", timeout_s=90)
    assert sorted(r.parameters["drift_event_id"] for r in final) == sorted(
        [first.event_id, second.event_id, third.event_id]
    ), "a replayed or low-severity drift event started a run"
    sender.close()
