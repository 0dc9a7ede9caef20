"""Drift events in Prefect's event feed, for the UI and for automations.

Each model-level drift event is also posted to the Prefect server's events API:
``driftloop.drift.detected`` when a drift episode opens, ``driftloop.drift.ongoing`` while it
persists, ``driftloop.drift.resolved`` when it ends. The resource is the model
(``driftloop.model.<name>``), the payload the drift event itself, the id derived from the
drift event's id (a replay posts the same event id again). A deployment trigger on
``driftloop.drift.detected`` starts the retraining deployment once per episode, the
alternative to `driftloop trigger` (README: "Retraining from a Prefect automation")

Posting is best effort: the drift event is on ``drift.events`` already, and Prefect being
down must not stop monitoring. A failure is logged and counted
(``driftloop_prefect_events_total{outcome="failed"}``).
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import httpx
import msgspec

from streaming import metrics
from streaming.events import DriftEvent
from streaming.logs import get_logger

log = get_logger("driftloop.prefect_events")

#: The Prefect event name of a drift episode that opens (what the retraining automation expects).
DRIFT_EVENT = "driftloop.drift.detected"
#: The Prefect event name of each drift event status.
EVENT_NAMES = {
    "opened": DRIFT_EVENT,
    "ongoing": "driftloop.drift.ongoing",
    "resolved": "driftloop.drift.resolved",
}


def model_resource_id(model_name: str) -> str:
    """The Prefect resource id of a model: what an automation matches on."""
    return f"driftloop.model.{model_name}"


def prefect_event(event: DriftEvent) -> dict[str, Any]:
    """The Prefect event (JSON-ready) for a drift event."""
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"driftloop:{event.event_id}")),
        "occurred": event.detected_at.isoformat(),
        "event": EVENT_NAMES[event.status],
        "resource": {
            "prefect.resource.id": model_resource_id(event.model_name),
            "prefect.resource.name": event.model_name,
            "driftloop.model.version": event.model_version,
            "driftloop.drift.signal": event.signal,
            "driftloop.drift.severity": event.severity,
            "driftloop.drift.status": event.status,
        },
        "payload": msgspec.to_builtins(event),
        "related": [],
    }


class PrefectEvents:
    """Posts drift events to ``<api_url>/events`` (``api_url``: PREFECT_API_URL)."""

    def __init__(self, api_url: str, timeout_s: float = 5.0) -> None:
        self.api_url = api_url.rstrip("/")
        self._client = httpx.Client(timeout=timeout_s)

    @classmethod
    def from_environment(cls) -> PrefectEvents | None:
        url = os.environ.get("PREFECT_API_URL")
        return cls(url) if url else None

    def send(self, event: DriftEvent) -> bool:
        try:
            response = self._client.post(f"{self.api_url}/events", json=[prefect_event(event)])
            response.raise_for_status()
        except httpx.HTTPError as exc:
            metrics.PREFECT_EVENTS.labels("failed").inc()
            log.warning(
                "drift event not sent to Prefect: %s",
                exc,
                extra={"event_id": event.event_id, "url": self.api_url},
            )
            return False
        metrics.PREFECT_EVENTS.labels("sent").inc()
        return True

    def close(self) -> None:
        self._client.close()
