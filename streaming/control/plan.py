"""Which model versions serve, and how traffic is split between them.

A :class:`ServingPlan` is derived from ModelUpdate events alone (pure, no I/O). Every
ModelUpdate names the champion serving when it was written (``champion_version``), so the
last record per model on the compacted ``model.updates`` topic is enough to rebuild the plan.

During a canary the challenger serves the sticky slice of accounts whose
:func:`canary_bucket` is below its traffic percentage. :func:`fold` is the one place where
ModelUpdates become "who serves what": the scorers, the canary controller, the trigger, the
retraining flow and the CLI all use it.

>>> from datetime import datetime, timezone
>>> from streaming.events import ModelUpdate
>>> now = datetime(2026, 1, 1, tzinfo=timezone.utc)
>>> plan = ServingPlan().apply(ModelUpdate(model_name="fraud", version="v1", status="champion", created_at=now))
>>> plan = plan.apply(ModelUpdate(model_name="fraud", version="v2", status="canary_step",
...                               traffic_percent=25, champion_version="v1", created_at=now))
>>> plan
ServingPlan(champion='v1', challenger='v2', challenger_percent=25.0)
>>> plan.apply(ModelUpdate(model_name="fraud", version="v2", status="promoted", created_at=now))
ServingPlan(champion='v2', challenger=None, challenger_percent=0.0)
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass, replace

from streaming.events import ModelUpdate


@dataclass(frozen=True)
class ServingPlan:
    """The versions that should serve: a champion and, during a canary, a challenger."""

    champion: str | None = None
    challenger: str | None = None
    challenger_percent: float = 0.0

    def apply(self, update: ModelUpdate) -> ServingPlan:
        """The plan after ``update`` (of this plan's model)."""
        champion = update.champion_version or self.champion
        if update.status in ("champion", "promoted"):
            return ServingPlan(champion=update.version)
        if update.status in ("challenger", "canary_step"):
            percent = update.traffic_percent if update.traffic_percent is not None else 0.0
            return ServingPlan(champion, update.version, float(percent))
        if update.status == "rolled_back":
            return ServingPlan(champion)
        # started / failed / rejected: only the champion they name matters
        return replace(self, champion=champion)


def fold(updates: Iterable[ModelUpdate], plan: ServingPlan | None = None) -> ServingPlan:
    """``plan`` (or an empty one) after every update in order.

    >>> from datetime import datetime, timezone
    >>> at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> fold([ModelUpdate(model_name="fraud", version="v1", status="champion", created_at=at)])
    ServingPlan(champion='v1', challenger=None, challenger_percent=0.0)
    """
    for update in updates:
        plan = (plan or ServingPlan()).apply(update)
    return plan or ServingPlan()


def canary_bucket(account_id: str) -> int:
    """A stable bucket 0..99 per account (crc32, never Python's salted ``hash``).

    >>> canary_bucket("acct-1"), canary_bucket("acct-1")
    (65, 65)
    """
    return zlib.crc32(account_id.encode()) % 100
