"""Signed snapshots of a monitor's state, for the compacted ``driftloop.state`` topic.

A snapshot holds a pickle (`driftloop monitor`'s
:class:`~streaming.monitoring.model_monitor.ModelMonitor` and the outcomes offsets it
covers), the source partition and offset it covers (the next record to read), and a
labels offset. The envelope is signed with HMAC-SHA256 under the
registry key, and the signature is checked *before* anything is unpickled: a record that
driftloop did not write is refused, never loaded.

>>> key = b"k" * 32
>>> raw = seal({"answer": 42}, key, group="g", topic="t", partition=0, offset=10,
...            labels_offset=3, model_version="v1")
>>> snapshot, payload = unseal(raw, key)
>>> snapshot.offset, payload
(10, {'answer': 42})
>>> unseal(raw.replace(b"v1", b"v2", 1), key)
Traceback (most recent call last):
...
streaming.errors.StateRejectedError: bad_signature: a state snapshot is not signed by this registry's key
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
from datetime import UTC, datetime
from typing import Any

import msgspec

from streaming.errors import StateRejectedError
from streaming.events import AwareDatetime


class StateSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The envelope; ``payload`` is a pickle, trusted only under a valid ``signature``."""

    group: str
    topic: str
    partition: int
    offset: int  # the next source offset after what the state covers (= committed offset)
    labels_offset: int  # the next labels offset after what the state covers
    model_version: str
    created_at: AwareDatetime
    payload: bytes
    signature: str = ""


def state_key(group: str, topic: str, partition: int) -> bytes:
    """The compaction key: one live snapshot per consumer group and source partition."""
    return f"{group}/{topic}/{partition}".encode()


def _signed_part(snapshot: StateSnapshot) -> bytes:
    return msgspec.msgpack.encode(msgspec.structs.replace(snapshot, signature=""))


def seal(
    state: Any,
    key: bytes,
    *,
    group: str,
    topic: str,
    partition: int,
    offset: int,
    labels_offset: int,
    model_version: str,
) -> bytes:
    snapshot = StateSnapshot(
        group=group,
        topic=topic,
        partition=partition,
        offset=offset,
        labels_offset=labels_offset,
        model_version=model_version,
        created_at=datetime.now(UTC),
        payload=pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL),
    )
    signature = hmac.new(key, _signed_part(snapshot), hashlib.sha256).hexdigest()
    return msgspec.msgpack.encode(msgspec.structs.replace(snapshot, signature=signature))


def read_envelope(raw: bytes) -> StateSnapshot:
    """The envelope alone (payload still pickled); raises StateRejectedError if unreadable."""
    try:
        return msgspec.msgpack.decode(raw, type=StateSnapshot)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, TypeError) as exc:
        raise StateRejectedError("invalid", f"not a driftloop state snapshot: {exc}") from exc


def unseal(raw: bytes, key: bytes) -> tuple[StateSnapshot, Any]:
    """Verify, then unpickle. Nothing is unpickled unless driftloop signed it."""
    snapshot = read_envelope(raw)
    expected = hmac.new(key, _signed_part(snapshot), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, snapshot.signature):
        raise StateRejectedError("bad_signature", "a state snapshot is not signed by this registry's key")
    try:
        return snapshot, pickle.loads(snapshot.payload)  # signature verified above
    except Exception as exc:  # a signed snapshot from an incompatible build
        raise StateRejectedError("incompatible", f"a signed snapshot cannot be restored: {exc}") from exc
