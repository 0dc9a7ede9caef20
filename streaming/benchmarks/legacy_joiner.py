"""The in-memory label joiner the scorer used until the outcome join (issue 17): kept only as
``driftloop bench labels``' baseline, verbatim but for this paragraph.

Matches delayed labels to the predictions made for their transactions.

A bounded cache of recent predictions (transaction_id -> score, decision, time): entries
older than ``ttl`` (in the caller's clock: event-time seconds in the scorer, rows in the
backtest) or beyond ``max_entries`` are evicted and counted; a label whose prediction is
not in the cache is counted as unmatched.

Labels come days late, so the cache is large (up to ``max_entries`` per partition) and it
is part of every state snapshot, taken about once a second: it pickles as two msgpack
blobs (ids, and (score, decision, time) rows) in insertion order, 6-7x faster than
pickling the dict and deque themselves.

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
from typing import Any

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


_encode = msgspec.msgpack.Encoder().encode
_decode_ids = msgspec.msgpack.Decoder(list[str]).decode
_decode_entries = msgspec.msgpack.Decoder(list[tuple[float, bool, float]]).decode


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

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_order"]  # the dict keeps insertion order: rebuilt from it
        predictions = state.pop("_predictions")
        state["_ids"] = _encode(list(predictions))
        state["_entries"] = _encode(list(predictions.values()))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        ids = _decode_ids(state.pop("_ids"))
        self._predictions = dict(zip(ids, _decode_entries(state.pop("_entries")), strict=True))
        self._order = deque(ids)
        self.__dict__.update(state)
