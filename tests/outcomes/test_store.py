"""The partition store on a real RocksDB: the overlay, atomic commits, changelog replay."""

from __future__ import annotations

from pathlib import Path

from streaming.outcomes.store import OFFSETS_KEY, PartitionStore


def test_writes_are_visible_at_once_but_reach_the_disk_only_with_a_commit(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0")
    store.put(b"a", b"1")
    store.put(b"b", b"2")
    assert store.get(b"a") == b"1"
    store.close()
    reopened = PartitionStore(tmp_path / "p0")
    assert reopened.get(b"a") is None and reopened.offsets == {}, "uncommitted writes are not on disk"
    reopened.put(b"a", b"1")
    assert reopened.commit({"scores": 10, "labels": 4}) == 1
    reopened.delete(b"a")
    assert reopened.get(b"a") is None
    reopened.close()
    again = PartitionStore(tmp_path / "p0")
    assert again.get(b"a") == b"1" and again.offsets == {"scores": 10, "labels": 4}
    again.close()


def test_a_scan_merges_the_overlay_into_the_stored_keys_in_order(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0")
    for key in (b"k1", b"k3", b"k5", b"z"):
        store.put(key, key)
    store.commit({})
    store.put(b"k2", b"new")
    store.put(b"k3", b"changed")
    store.delete(b"k5")
    store.put(b"k6", b"k6")
    assert list(store.scan(b"k", b"l")) == [
        (b"k1", b"k1"),
        (b"k2", b"new"),
        (b"k3", b"changed"),
        (b"k6", b"k6"),
    ]
    assert list(store.scan(b"k", b"l", limit=2)) == [(b"k1", b"k1"), (b"k2", b"new")]
    store.close()


def test_the_changes_are_what_a_commit_writes_and_a_replay_rebuilds_them(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0")
    store.put(b"a", b"1")
    store.put(b"b", b"2")
    store.delete(b"c")
    changes = store.changes({"scores": 3})
    assert changes[b"a"] == b"1" and changes[b"c"] is None and OFFSETS_KEY in changes
    store.commit({"scores": 3}, changelog_position=4)
    assert store.changelog_position == 4
    store.close()

    rebuilt = PartitionStore(tmp_path / "elsewhere")  # an empty disk
    assert rebuilt.changelog_position == 0
    assert rebuilt.apply(changes.items(), changelog_position=4) == 4
    assert rebuilt.get(b"a") == b"1" and rebuilt.get(b"b") == b"2" and rebuilt.offsets == {"scores": 3}
    assert rebuilt.changelog_position == 4
    rebuilt.destroy()
    assert not (tmp_path / "elsewhere").exists()
