"""The loaded, verified models behind a serving plan: a champion slot and a challenger slot.

A challenger decides for the sticky slice of accounts whose
:func:`~streaming.control.plan.canary_bucket` is below its traffic percentage.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from streaming.control.plan import ServingPlan, canary_bucket
from streaming.errors import ModelRejectedError
from streaming.models.registry import LoadedModel

#: Loads and verifies one version of the served model, or raises ModelRejectedError.
ModelLoader = Callable[[str], LoadedModel]


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
