"""One partition's join state on disk: RocksDB (through rocksdict) under a write overlay.

The model is Kafka Streams' and Quix Streams' state store. Reads see the overlay first,
then the database. Writes stay in the overlay until :meth:`PartitionStore.commit`, which
writes them in one atomic batch together with the input offsets they cover, so the
database never runs ahead of what the checkpoint made durable. Before that, the
checkpoint hands :meth:`PartitionStore.changes` to the changelog topic: what a checkpoint
costs is proportional to what changed since the previous one, not to what is held.

A store whose database was lost (a new machine, an empty disk) is rebuilt from the
changelog: :meth:`PartitionStore.apply` writes replayed records straight to the database
and remembers the changelog position, so a restart replays only what it has not seen.

Keys and values are bytes; the layout belongs to :mod:`streaming.outcomes.join`. Keys that
start with ``\\x00`` are the store's own (offsets, positions) and are never produced to
the changelog except :data:`OFFSETS_KEY`, which travels with the data it covers.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import msgspec

from streaming.errors import StateStoreError

#: The input offsets the store's contents cover, ``{"scores": n, "labels": m}``; written by
#: every commit and produced to the changelog with the data.
OFFSETS_KEY = b"\x00offsets"
#: The next changelog offset this database has applied (local: never produced).
CHANGELOG_KEY = b"\x00changelog"


class PartitionStore:
    """The join state of one input partition, in ``path`` (created when missing)."""

    def __init__(self, path: Path) -> None:
        from rocksdict import BlockBasedOptions, Options, Rdict

        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        table = BlockBasedOptions()
        table.set_bloom_filter(10, False)  # a miss (most lookups) rarely reads a block
        options.set_block_based_table_factory(table)
        try:
            self._db: Any = Rdict(str(path), options=options)
        except Exception as exc:  # rocksdict raises its own untyped errors
            raise StateStoreError(f"cannot open the state store at {path}: {exc}") from exc
        self._overlay: dict[bytes, bytes | None] = {}
        self._closed = False

    # -- reads ------------------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        if key in self._overlay:
            return self._overlay[key]
        value = self._db.get(key)
        return None if value is None else bytes(value)

    def scan(self, start: bytes, stop: bytes, limit: int | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Live entries with ``start <= key < stop``, in key order (overlay merged in)."""
        pending = sorted(k for k in self._overlay if start <= k < stop)
        stored = self._db.items(from_key=start)

        def stored_entries() -> Iterator[tuple[bytes, bytes]]:
            for key, value in stored:
                key = bytes(key)
                if key >= stop:
                    return
                yield key, bytes(value)

        merged = _merge(stored_entries(), pending, self._overlay)
        yield from merged if limit is None else itertools.islice(merged, limit)

    @property
    def offsets(self) -> dict[str, int]:
        """The input offsets the committed state covers (empty for a new store)."""
        raw = self.get(OFFSETS_KEY)
        return {} if raw is None else msgspec.json.decode(raw, type=dict[str, int])

    @property
    def changelog_position(self) -> int:
        """The next changelog offset to apply when rebuilding (0: replay from the start)."""
        raw = self._db.get(CHANGELOG_KEY)
        return 0 if raw is None else int(bytes(raw))

    # -- writes -----------------------------------------------------------------------

    def put(self, key: bytes, value: bytes) -> None:
        self._overlay[key] = value

    def delete(self, key: bytes) -> None:
        self._overlay[key] = None

    def changes(self, offsets: Mapping[str, int]) -> dict[bytes, bytes | None]:
        """What :meth:`commit` will write (the changelog's records), with ``offsets``."""
        return {**self._overlay, OFFSETS_KEY: msgspec.json.encode(dict(offsets))}

    def commit(self, offsets: Mapping[str, int], changelog_position: int | None = None) -> int:
        """Write the overlay and ``offsets`` atomically; the number of changed keys.

        ``changelog_position`` is the changelog offset after this commit's records (when
        they were produced), so a rebuild skips what this database already holds.
        """
        from rocksdict import WriteBatch

        batch = WriteBatch(raw_mode=True)
        for key, value in self.changes(offsets).items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        if changelog_position is not None:
            batch.put(CHANGELOG_KEY, str(changelog_position).encode())
        self._write(batch)
        changed = len(self._overlay)
        self._overlay.clear()
        return changed

    def discard(self) -> None:
        """Forget the uncommitted writes (the partition was lost: its new owner redoes them)."""
        self._overlay.clear()

    def apply(self, records: Iterable[tuple[bytes, bytes | None]], changelog_position: int) -> int:
        """Replay changelog records (``None``: a deletion) straight into the database."""
        from rocksdict import WriteBatch

        batch = WriteBatch(raw_mode=True)
        applied = 0
        for key, value in records:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
            applied += 1
        batch.put(CHANGELOG_KEY, str(changelog_position).encode())
        self._write(batch)
        return applied

    # -- size and lifecycle ---------------------------------------------------------------

    def bytes_on_disk(self) -> int:
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._db.close()

    def destroy(self) -> None:
        """Close and delete the database (a partition that moved for good)."""
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)

    def _write(self, batch: Any) -> None:
        try:
            self._db.write(batch)
        except Exception as exc:
            raise StateStoreError(f"cannot write the state store at {self.path}: {exc}") from exc


def _merge(
    stored: Iterator[tuple[bytes, bytes]], pending: list[bytes], overlay: Mapping[bytes, bytes | None]
) -> Iterator[tuple[bytes, bytes]]:
    """Stored entries and overlay keys (sorted) merged in key order; the overlay wins."""
    i = 0
    for key, value in stored:
        while i < len(pending) and pending[i] < key:
            written = overlay[pending[i]]
            if written is not None:
                yield pending[i], written
            i += 1
        if i < len(pending) and pending[i] == key:
            written = overlay[key]
            i += 1
            if written is not None:
                yield key, written
            continue
        yield key, value
    for key in pending[i:]:
        written = overlay[key]
        if written is not None:
            yield key, written
