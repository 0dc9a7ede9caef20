"""Retraining from a Prefect automation: the alternative to `driftloop trigger`.

`driftloop monitor` posts every drift event to Prefect's event feed as
``driftloop.drift.detected``, about the resource ``driftloop.model.<name>``
(:mod:`streaming.monitoring.prefect_events`). :func:`drift_trigger` is the deployment
trigger that turns each such event into a run of the retraining deployment, with the drift
event's id and model as the flow's parameters; `driftloop worker --on-drift` serves the
deployment with it. The monitor writes one drift event per model per drift episode, so
this starts one run per episode.

What `driftloop trigger` adds on top (README: "Two ways to start retraining"): its policy
(signals, minimum severity, a cooldown per model, no run while one is in flight or a
challenger is in its canary) and the ``started`` model update. The automation filters on
the severity only.
"""

from __future__ import annotations

from typing import Any

from streaming.monitoring.prefect_events import DRIFT_EVENT, model_resource_id

_SEVERITIES = ("low", "medium", "high")


def drift_trigger(model_name: str, min_severity: str = "medium") -> Any:
    """A Prefect ``DeploymentEventTrigger``: one run per drift event of ``model_name`` at
    ``min_severity`` or above, with ``drift_event_id`` and ``model_name`` as parameters."""
    from prefect.events import DeploymentEventTrigger

    severities = list(_SEVERITIES[_SEVERITIES.index(min_severity) :])
    return DeploymentEventTrigger(
        name=f"retrain {model_name} on drift",
        description=f"driftloop: a drift event of {model_name} ({'/'.join(severities)}) starts a retraining run",
        expect={DRIFT_EVENT},
        match={"prefect.resource.id": model_resource_id(model_name), "driftloop.drift.severity": severities},
        parameters={
            "drift_event_id": "{{ event.payload.event_id }}",
            "model_name": "{{ event.payload.model_name }}",
        },
    )
