"""Which model versions serve, and how traffic is split between them.

A :class:`ServingPlan` is derived from ModelUpdate events alone (pure, no I/O). Every
ModelUpdate names the champion serving when it was written (``champion_version``), so the
last record per model on the compacted ``model.updates`` topic is enough to rebuild the plan.

A :class:`ModelHolder` keeps the loaded, verified models for the plan: two slots, champion
and challenger. A challenger serves the sticky slice of accounts whose
``crc32(account_id) % 100`` is below its traffic percentage.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from streaming.events import ModelUpdate
from streaming.registry import LoadedModel, ModelRejectedError

#: Loads and verifies one version of the served model, or raises ModelRejectedError.
ModelLoader = Callable[[str], LoadedModel]


@dataclass(frozen=True)
class ServingPlan:
    """The versions that should serve: a champion and, during a canary, a challenger."""

    champion: str | None = None
    challenger: str | None = None
    challenger_percent: float = 0.0

    def apply(self, update: ModelUpdate) -> ServingPlan:
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


def canary_bucket(account_id: str) -> int:
    """A stable bucket 0..99 per account (crc32, never Python's salted ``hash``).

    >>> canary_bucket("acct-1"), canary_bucket("acct-1")
    (65, 65)
    """
    return zlib.crc32(account_id.encode()) % 100


class ModelHolder:
    """The loaded models behind a :class:`ServingPlan`: a champion slot and a challenger slot."""

    def __init__(self) -> None:
        self.champion: LoadedModel | None = None
        self.challenger: LoadedModel | None = None
        self.challenger_percent: float = 0.0

    @property
    def ready(self) -> bool:
        return self.champion is not None

    def challenger_mask(self, account_ids: Sequence[str]) -> np.ndarray | None:
        """True where the challenger decides; None when no challenger serves."""
        if self.challenger is None or self.challenger_percent <= 0:
            return None
        cutoff = self.challenger_percent
        return np.fromiter(
            (canary_bucket(a) < cutoff for a in account_ids), dtype=bool, count=len(account_ids)
        )

    def reconcile(self, plan: ServingPlan, load: ModelLoader) -> list[tuple[str, ModelRejectedError]]:
        """Load what ``plan`` needs and is not loaded yet; keep serving on any failure.

        Returns the versions that were refused, with why. A refused champion leaves the
        current champion serving; a refused challenger leaves no challenger.
        """
        refused: list[tuple[str, ModelRejectedError]] = []
        if plan.champion is not None and (self.champion is None or self.champion.version != plan.champion):
            if self.challenger is not None and self.challenger.version == plan.champion:
                self.champion = self.challenger  # promotion: already loaded and verified
            else:
                try:
                    self.champion = load(plan.champion)
                except ModelRejectedError as exc:
                    refused.append((plan.champion, exc))
        if plan.challenger is None or plan.challenger == (self.champion.version if self.champion else None):
            self.challenger, self.challenger_percent = None, 0.0
        elif self.challenger is not None and self.challenger.version == plan.challenger:
            self.challenger_percent = plan.challenger_percent
        else:
            try:
                self.challenger, self.challenger_percent = load(plan.challenger), plan.challenger_percent
            except ModelRejectedError as exc:
                self.challenger, self.challenger_percent = None, 0.0
                refused.append((plan.challenger, exc))
        return refused
