"""The outcome join of one partition: predictions wait on disk for their labels.

A score is kept until its label arrives or its time-to-live passes, in event time: a
prediction made at ``event_time`` expires once the partition's event time (the newest
score or label time it has seen) passes ``event_time + ttl``. A label then:

- meets its prediction(s) → one :class:`~streaming.events.Outcome` per score (champion,
  challenger); the prediction leaves the store and a small *marker* remembers the label;
- comes more than ``ttl`` after the prediction, or after it expired → refused ``late``;
- comes again for a joined transaction → refused ``duplicate``;
- comes before its score → *waits* (at most ``max_waiting`` per partition) until the
  scores' event time passes its label time by ``label_wait``; then it is refused
  ``unknown_transaction`` (as is the oldest waiting label when too many wait; the
  service pauses a partition's labels before its room is full, so they wait in Kafka).

A score that arrives after its label joined (a challenger's shadow score, a little late)
joins the remembered label at once; one already joined is a duplicate and ignored. Markers
live ``ttl`` past the prediction's event time, so a duplicate or late label is named as
such for that long.

Everything lives in a :class:`~streaming.outcomes.store.PartitionStore`, laid out so that
expiry is a range scan in time order:

====================================  ==============================================
``p`` txn                             the transaction's pending Scores (msgpack)
``x`` expires_ms txn                  the prediction's expiry (index)
``l`` txn                             a waiting label, with where it was read
``w`` wait_until_ms txn               the waiting label's deadline (index)
``d`` txn                             a marker: joined (with the label) or expired
``y`` until_ms txn                    the marker's end (index)
``c``                                 counters and the partition's event time
====================================  ==============================================

(txn is length-prefixed, times are 8-byte big-endian milliseconds.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import msgspec

from streaming.events import Label, Outcome, Score
from streaming.outcomes.store import PartitionStore

Reason = Literal["late", "duplicate", "unknown_transaction", "not_keyed_by_transaction_id"]


class Arrival(msgspec.Struct, frozen=True, kw_only=True):
    """A label as read: the decoded label and where its record is (for its dead letter)."""

    label: Label
    offset: int
    key: bytes | None
    value: bytes


@dataclass(frozen=True)
class Refusal:
    """A label the join will not use, and why (it becomes a dead letter)."""

    arrival: Arrival
    reason: Reason
    detail: str


@dataclass
class JoinResult:
    outcomes: list[Outcome] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    expired: int = 0  # predictions (scores) that reached their TTL unlabelled
    duplicate_scores: int = 0

    def extend(self, other: JoinResult) -> None:
        self.outcomes += other.outcomes
        self.refused += other.refused
        self.expired += other.expired
        self.duplicate_scores += other.duplicate_scores


class _Marker(msgspec.Struct, frozen=True, kw_only=True):
    state: Literal["joined", "expired"]
    until_ms: int
    label: Label | None = None
    joined: list[tuple[str, str]] = []  # (role, model_version) already sent as outcomes


class _Counters(msgspec.Struct, kw_only=True):
    pending: int = 0  # scores held
    waiting: int = 0  # labels waiting for their score
    markers: int = 0
    event_time_ms: int = 0  # newest score or label time seen
    scores_time_ms: int = 0  # newest score time seen


_encode = msgspec.msgpack.Encoder().encode
_scores = msgspec.msgpack.Decoder(list[Score])
_arrival = msgspec.msgpack.Decoder(Arrival)
_marker = msgspec.msgpack.Decoder(_Marker)
_counters = msgspec.msgpack.Decoder(_Counters)
_COUNTERS = b"c"
_EMPTY = b""
_END = b"\xff" * 9


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _txn(transaction_id: str) -> bytes:
    raw = transaction_id.encode()
    return len(raw).to_bytes(2, "big") + raw


def _at(prefix: bytes, ms: int, txn: bytes) -> bytes:
    return prefix + max(0, ms).to_bytes(8, "big") + txn


def _txn_of_index(key: bytes) -> bytes:
    return key[9:]


class OutcomeJoin:
    """The join for one partition over its store (see the module docstring)."""

    def __init__(self, store: PartitionStore, ttl_s: float, label_wait_s: float, max_waiting: int) -> None:
        self.store = store
        self.ttl_ms = int(ttl_s * 1000)
        self.label_wait_ms = int(label_wait_s * 1000)
        self.max_waiting = max_waiting
        raw = store.get(_COUNTERS)
        self.counters = _Counters() if raw is None else _counters.decode(raw)

    # -- inputs -------------------------------------------------------------------------

    def score(self, score: Score) -> JoinResult:
        result = JoinResult()
        event_ms = _ms(score.event_time)
        self._saw(event_ms, score=True)
        txn = _txn(score.transaction_id)
        marker = self._marker(txn)
        if marker is not None:
            who = (score.role, score.model_version)
            if marker.state == "joined" and marker.label is not None and who not in marker.joined:
                result.outcomes.append(Outcome.of(score, marker.label))
                self._put_marker(txn, msgspec.structs.replace(marker, joined=[*marker.joined, who]))
            else:
                result.duplicate_scores += 1
            return result
        waiting = self.store.get(b"l" + txn) if self.counters.waiting else None
        if waiting is not None:
            arrival = _arrival.decode(waiting)
            self._stop_waiting(txn, arrival)
            result.outcomes.append(Outcome.of(score, arrival.label))
            self._mark(txn, "joined", event_ms, arrival.label, [(score.role, score.model_version)])
            return result
        pending = self._pending(txn)
        who = (score.role, score.model_version)
        kept = [s for s in pending if (s.role, s.model_version) != who]
        if len(kept) < len(pending):
            result.duplicate_scores += 1
        else:
            self.counters.pending += 1
        self.store.put(b"p" + txn, _encode([*kept, score]))
        if not pending:
            self.store.put(_at(b"x", event_ms + self.ttl_ms, txn), _EMPTY)
        return result

    def label(self, arrival: Arrival) -> JoinResult:
        result = JoinResult()
        label = arrival.label
        label_ms = _ms(label.label_time)
        self._saw(label_ms, score=False)
        txn = _txn(label.transaction_id)
        pending = self._pending(txn)
        if pending:
            event_ms = _ms(pending[0].event_time)
            self._forget_prediction(txn, pending, event_ms)
            if label_ms - event_ms > self.ttl_ms:
                self._mark(txn, "expired", event_ms)
                result.refused.append(self._late(arrival, label_ms - event_ms))
                return result
            result.outcomes += [Outcome.of(score, label) for score in pending]
            self._mark(txn, "joined", event_ms, label, [(s.role, s.model_version) for s in pending])
            return result
        marker = self._marker(txn)
        if marker is not None:
            if marker.state == "joined":
                result.refused.append(
                    Refusal(arrival, "duplicate", "this transaction's label already joined")
                )
            else:
                result.refused.append(self._late(arrival, None))
            return result
        if self.store.get(b"l" + txn) is not None:  # waiting already: the same label again
            result.refused.append(Refusal(arrival, "duplicate", "a label for this transaction is waiting"))
            return result
        if self.counters.waiting >= self.max_waiting:
            result.extend(self._evict_oldest_waiting())
        self.store.put(b"l" + txn, _encode(arrival))
        self.store.put(_at(b"w", label_ms + self.label_wait_ms, txn), _EMPTY)
        self.counters.waiting += 1
        return result

    # -- time ---------------------------------------------------------------------------

    def expire(self, limit: int = 10_000) -> JoinResult:
        """Drop what the partition's event time has passed: predictions past their TTL,
        labels that waited too long, markers at their end. At most ``limit`` of each."""
        result = JoinResult()
        now = self.counters.event_time_ms
        for key, _ in list(self.store.scan(b"x", _at(b"x", now + 1, b""), limit)):
            txn = _txn_of_index(key)
            pending = self._pending(txn)
            self.store.delete(key)
            if pending:
                event_ms = _ms(pending[0].event_time)
                self._forget_prediction(txn, pending, event_ms)
                self._mark(txn, "expired", event_ms)
                result.expired += len(pending)
        scores_now = self.counters.scores_time_ms
        for key, _ in list(self.store.scan(b"w", _at(b"w", scores_now + 1, b""), limit)):
            txn = _txn_of_index(key)
            raw = self.store.get(b"l" + txn)
            if raw is None:  # joined meanwhile; its index went with it
                self.store.delete(key)
                continue
            arrival = _arrival.decode(raw)
            self._stop_waiting(txn, arrival)
            result.refused.append(self._unknown(arrival))
        for key, _ in list(self.store.scan(b"y", _at(b"y", now + 1, b""), limit)):
            self.store.delete(key)
            self.store.delete(b"d" + _txn_of_index(key))
            self.counters.markers -= 1
        return result

    def sync(self) -> None:
        """Write the counters into the store (before a checkpoint takes its changes)."""
        self.store.put(_COUNTERS, _encode(self.counters))

    @property
    def event_time(self) -> datetime | None:
        ms = self.counters.event_time_ms
        return datetime.fromtimestamp(ms / 1000, UTC) if ms else None

    def oldest_pending(self) -> datetime | None:
        """The event time of the oldest prediction still waiting for its label."""
        for key, _ in self.store.scan(b"x", b"x" + _END, limit=1):
            expires_ms = int.from_bytes(key[1:9], "big")
            return datetime.fromtimestamp((expires_ms - self.ttl_ms) / 1000, UTC)
        return None

    # -- internals ----------------------------------------------------------------------

    def _saw(self, ms: int, score: bool) -> None:
        c = self.counters
        if ms > c.event_time_ms:
            c.event_time_ms = ms
        if score and ms > c.scores_time_ms:
            c.scores_time_ms = ms

    def _pending(self, txn: bytes) -> list[Score]:
        raw = self.store.get(b"p" + txn)
        return [] if raw is None else _scores.decode(raw)

    def _forget_prediction(self, txn: bytes, pending: list[Score], event_ms: int) -> None:
        self.store.delete(b"p" + txn)
        self.counters.pending -= len(pending)
        self.store.delete(_at(b"x", event_ms + self.ttl_ms, txn))

    def _marker(self, txn: bytes) -> _Marker | None:
        raw = self.store.get(b"d" + txn)
        return None if raw is None else _marker.decode(raw)

    def _mark(
        self,
        txn: bytes,
        state: Literal["joined", "expired"],
        event_ms: int,
        label: Label | None = None,
        joined: list[tuple[str, str]] | None = None,
    ) -> None:
        until_ms = event_ms + 2 * self.ttl_ms if state == "expired" else event_ms + self.ttl_ms
        self._put_marker(txn, _Marker(state=state, until_ms=until_ms, label=label, joined=joined or []))
        self.store.put(_at(b"y", until_ms, txn), _EMPTY)
        self.counters.markers += 1

    def _put_marker(self, txn: bytes, marker: _Marker) -> None:
        self.store.put(b"d" + txn, _encode(marker))

    def _stop_waiting(self, txn: bytes, arrival: Arrival) -> None:
        self.store.delete(b"l" + txn)
        self.store.delete(_at(b"w", _ms(arrival.label.label_time) + self.label_wait_ms, txn))
        self.counters.waiting -= 1

    def _evict_oldest_waiting(self) -> JoinResult:
        result = JoinResult()
        for key, _ in list(self.store.scan(b"w", b"w" + _END, limit=1)):
            txn = _txn_of_index(key)
            raw = self.store.get(b"l" + txn)
            if raw is not None:
                arrival = _arrival.decode(raw)
                self._stop_waiting(txn, arrival)
                result.refused.append(
                    Refusal(arrival, "unknown_transaction", f"{self.max_waiting} labels already wait")
                )
        return result

    def _late(self, arrival: Arrival, delay_ms: int | None) -> Refusal:
        ttl_days = self.ttl_ms / 86_400_000
        detail = (
            f"{delay_ms / 86_400_000:.1f} days after the prediction"
            if delay_ms is not None
            else "after its prediction expired"
        )
        return Refusal(arrival, "late", f"{detail}; the join keeps predictions {ttl_days:g} days")

    def _unknown(self, arrival: Arrival) -> Refusal:
        return Refusal(
            arrival,
            "unknown_transaction",
            f"no score for it while the scores' event time passed its label time by "
            f"{self.label_wait_ms / 1000:g} s",
        )


def pending_scores(store: PartitionStore) -> Iterator[Score]:
    """Every score the store holds (for inspection and tests)."""
    for _, value in store.scan(b"p", b"p" + _END):
        yield from _scores.decode(value)
