"""Events for the join's tests."""

from __future__ import annotations

from datetime import datetime

from streaming.events import Score


def score(
    txn: str,
    at: datetime,
    role: str = "champion",
    version: str = "v1",
    value: float = 0.8,
    account: str | None = None,
) -> Score:
    """A score of ``txn`` at event time ``at``."""
    return Score(
        transaction_id=txn,
        account_id=account or f"acct-{txn}",
        model_name="fraud",
        model_version=version,
        role=role,  # type: ignore[arg-type]
        score=value,
        threshold=0.5,
        decision=value >= 0.5,
        event_time=at,
        scored_at=at,
        latency_ms=3.0,
    )
