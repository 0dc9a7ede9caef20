"""Matches delayed labels to the predictions made for their transactions.

A bounded cache of recent predictions (transaction_id -> score, decision, time): entries
older than ``ttl`` (in the caller's clock: event-time seconds in the scorer, rows in the
backtest) or beyond ``max_entries`` are evicted and counted; a label whose prediction is
not in the cache is counted as unmatched.

>>> joiner = LabelJoiner(max_entries=2, ttl=100.0)
>>> joiner.add(["a", "b", "c"], [0.9, 0.2, 0.4], [True, False, False], [1.0, 2.0, 3.0])
>>> joiner.match(["c", "a"], [1, 1]).scores.tolist()
[0.4]
>>> joiner.evicted, joiner.unmatched
(1, 1)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec
import numpy as np


@dataclass(frozen=True)
class Joined:
    """Labels that found their prediction, as arrays in arrival order."""

    scores: np.ndarray
    decisions: np.ndarray
    labels: np.ndarray
    index: np.ndarray  # each matched label's position in the input

    def __len__(self) -> int:
        return len(self.labels)


class JoinerState(msgspec.Struct, frozen=True):
    """A joiner's content, for snapshots."""

    ids: list[str]
    scores: list[float]
    decisions: list[bool]
    times: list[float]
    evicted: int
    unmatched: int
    matched: int


class LabelJoiner:
    """Bounded, time-limited map from transaction_id to the prediction made for it."""

    def __init__(self, max_entries: int = 100_000, ttl: float = 7 * 86_400.0) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self._predictions: dict[str, tuple[float, bool, float]] = {}
        self._order: deque[str] = deque()  # insertion order; may hold ids already matched
        self.evicted = 0
        self.unmatched = 0
        self.matched = 0

    def __len__(self) -> int:
        return len(self._predictions)

    def add(
        self,
        ids: Sequence[str],
        scores: Sequence[float],
        decisions: Sequence[bool],
        times: Sequence[float],
    ) -> None:
        """Remember predictions; ``times`` must not run backwards by more than ``ttl``."""
        self._predictions.update(zip(ids, zip(scores, decisions, times, strict=True), strict=True))
        self._order.extend(ids)
        if times:
            self._evict(float(times[-1]))

    def match(self, ids: Sequence[str], labels: Sequence[int]) -> Joined:
        """Take the predictions of these labels' transactions out of the cache."""
        pop = self._predictions.pop
        scores: list[float] = []
        decisions: list[bool] = []
        matched: list[int] = []
        index: list[int] = []
        for i, (transaction_id, label) in enumerate(zip(ids, labels, strict=True)):
            entry = pop(transaction_id, None)
            if entry is None:
                self.unmatched += 1
                continue
            scores.append(entry[0])
            decisions.append(entry[1])
            matched.append(label)
            index.append(i)
        self.matched += len(matched)
        return Joined(
            np.array(scores, dtype=np.float64),
            np.array(decisions, dtype=bool),
            np.array(matched, dtype=np.int64),
            np.array(index, dtype=np.int64),
        )

    def _evict(self, now: float) -> None:
        predictions, order = self._predictions, self._order
        oldest_allowed = now - self.ttl
        while order:
            entry = predictions.get(order[0])
            if entry is None:  # matched already
                order.popleft()
                continue
            if len(predictions) <= self.max_entries and entry[2] >= oldest_allowed:
                break
            del predictions[order.popleft()]
            self.evicted += 1

    def state(self) -> JoinerState:
        ids = [i for i in dict.fromkeys(self._order) if i in self._predictions]
        entries = [self._predictions[i] for i in ids]
        return JoinerState(
            ids=ids,
            scores=[e[0] for e in entries],
            decisions=[e[1] for e in entries],
            times=[e[2] for e in entries],
            evicted=self.evicted,
            unmatched=self.unmatched,
            matched=self.matched,
        )

    @classmethod
    def from_state(cls, state: JoinerState, max_entries: int, ttl: float) -> LabelJoiner:
        joiner = cls(max_entries, ttl)
        joiner._predictions = dict(
            zip(state.ids, zip(state.scores, state.decisions, state.times, strict=True), strict=True)
        )
        joiner._order = deque(state.ids)
        joiner.evicted, joiner.unmatched, joiner.matched = state.evicted, state.unmatched, state.matched
        return joiner
