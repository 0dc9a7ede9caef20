"""The label release rule, without Kafka: a label joins once its partition is scored past it."""

from __future__ import annotations

from dataclasses import dataclass

from streaming.monitoring.label_gate import LabelGate


@dataclass(frozen=True)
class Label:
    offset: int
    timestamp: int


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def gate(max_held: int = 1000) -> tuple[LabelGate, Clock]:
    clock = Clock()
    labels = LabelGate(idle_release_s=2.0, max_held=max_held, clock=clock)
    labels.own(0, labels_offset=40)
    return labels, clock


def labels(first_offset: int, timestamps: list[int]) -> list[Label]:
    return [Label(first_offset + i, t) for i, t in enumerate(timestamps)]


def test_a_label_waits_until_its_partition_is_scored_past_its_timestamp() -> None:
    gated, _ = gate()
    gated.fetched(0, labels(40, [1_000, 2_000, 3_000]))
    assert gated.release(0) == []  # nothing scored yet: a backlog replays in order
    gated.scored(0, 2_000)
    assert [label.offset for label in gated.release(0)] == [40, 41]
    assert gated.held(0) == 1 and gated.handed_offset(0) == 42
    gated.scored(0, 1_500)  # an older batch does not move the watermark back
    assert gated.release(0) == []
    gated.scored(0, 3_000)
    assert [label.offset for label in gated.release(0)] == [42]
    assert gated.handed_offset(0) == 43 and gated.fetch_offset(0) == 43


def test_labels_are_released_in_offset_order_even_when_a_later_one_is_older() -> None:
    gated, _ = gate()
    gated.fetched(0, labels(40, [5_000, 1_000]))  # the second label is older than the first
    gated.scored(0, 2_000)
    assert gated.release(0) == []  # the head waits; the label behind it is not overtaken
    gated.scored(0, 5_000)
    assert [label.offset for label in gated.release(0)] == [40, 41]


def test_an_idle_partition_releases_everything_it_holds() -> None:
    gated, clock = gate()
    gated.scored(0, 1_000)
    gated.fetched(0, labels(40, [9_000, 9_500]))
    assert not gated.idle(0)
    clock.now += 2.0
    assert not gated.idle(0)  # not yet *more* than idle_release_s
    clock.now += 0.01
    assert gated.idle(0) and gated.holding() == [0]
    assert [label.offset for label in gated.release(0, caught_up=True)] == [40, 41]
    assert gated.holding() == []


def test_a_partition_that_never_scored_is_not_idle() -> None:
    gated, clock = gate()
    clock.now += 60
    assert not gated.idle(0)


def test_beyond_max_held_the_oldest_labels_go_first() -> None:
    gated, _ = gate(max_held=3)
    gated.fetched(0, labels(40, [9_000, 9_001, 9_002, 9_003, 9_004]))
    released = gated.release(0)  # nothing scored past them: only the overflow goes
    assert [label.offset for label in released] == [40, 41]
    assert gated.held(0) == 3 and gated.handed_offset(0) == 42


def test_labels_of_an_unowned_partition_are_ignored_and_a_revoked_one_is_forgotten() -> None:
    gated, _ = gate()
    gated.fetched(1, labels(0, [1]))
    assert gated.held(1) == 0 and gated.owned() == [0]
    gated.fetched(0, labels(40, [1]))
    gated.forget(0)
    assert gated.owned() == [] and gated.held(0) == 0 and gated.release(0) == []
    assert gated.handed_offset(0) == 0


def test_the_fetch_offset_follows_what_was_read_and_the_handed_offset_what_joined() -> None:
    gated, _ = gate()
    assert gated.fetch_offset(0) == 40 and gated.handed_offset(0) == 40
    gated.fetched(0, labels(40, [1_000, 2_000]))
    gated.fetched(0, [])  # an empty poll changes nothing
    assert gated.fetch_offset(0) == 42 and gated.handed_offset(0) == 40  # a snapshot now re-reads both
    gated.scored(0, 1_000)
    gated.release(0)
    assert gated.handed_offset(0) == 41
