"""Reading ``model.updates``: the control plane's one topic.

Every process that acts on who serves what (scorers, the canary controller, the trigger, the
retraining flow, the CLI) reads the whole topic from the beginning, outside any consumer
group (each must see every update), then keeps following it. A :class:`ModelUpdateFollower`
yields the updates of one model, with where each was read (so a refusal is dead-lettered
once); :func:`current_plan` is the plan right now, for a one-off question.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from streaming.config import Settings
from streaming.control.plan import ServingPlan, fold
from streaming.errors import DecodeError
from streaming.events import DeadLetter, EventCodec, ModelUpdate
from streaming.kafka.dead_letters import dead_letter
from streaming.kafka.reading import TopicReader

#: An update, with the partition and offset it was read at.
Located = tuple[ModelUpdate, int, int]


class ModelUpdateFollower:
    """Reads ``model.updates`` from the beginning, outside any consumer group.

    Every scorer sees every update for its model; the service folds them into a serving
    plan over what it actually has loaded. Undecodable updates become dead letters.
    """

    def __init__(self, settings: Settings) -> None:
        self._model_name = settings.model_name
        self._codec = EventCodec(ModelUpdate, settings.messages.max_bytes)
        self._keep_bytes = settings.messages.dead_letter_value_bytes
        self._reader = TopicReader(settings.kafka, settings.topics.model_updates, topic_timeout_s=30.0)

    def poll(self, timeout_ms: int = 0) -> tuple[list[ModelUpdate], list[DeadLetter]]:
        """New updates for this model, and dead letters."""
        located, dead = self.poll_located(timeout_ms)
        return [update for update, _, _ in located], dead

    def poll_located(self, timeout_ms: int = 0) -> tuple[list[Located], list[DeadLetter]]:
        """New updates for this model with the partition and offset each was read at."""
        return self._decode(self._reader.poll(timeout_ms=timeout_ms))

    def catch_up(self, timeout_s: float = 30.0) -> tuple[list[ModelUpdate], list[DeadLetter]]:
        """Read up to the current end of the topic."""
        located, dead = self.catch_up_located(timeout_s)
        return [update for update, _, _ in located], dead

    def catch_up_located(self, timeout_s: float = 30.0) -> tuple[list[Located], list[DeadLetter]]:
        """:meth:`catch_up`, with the partition and offset of each update."""
        return self._decode(self._reader.read_to_end(timeout_s))

    def _decode(self, records: Iterable[Any]) -> tuple[list[Located], list[DeadLetter]]:
        updates: list[Located] = []
        dead: list[DeadLetter] = []
        for record in records:
            try:
                update = self._codec.decode(record.value)
            except DecodeError as exc:
                dead.append(dead_letter(record, exc, "driftloop-score/model-updates", self._keep_bytes))
                continue
            if update.model_name == self._model_name:
                updates.append((update, record.partition, record.offset))
        return updates, dead

    def close(self) -> None:
        self._reader.close()


def current_plan(settings: Settings) -> ServingPlan:
    """The serving plan that ``model.updates`` describes right now."""
    follower = ModelUpdateFollower(settings)
    try:
        updates, _ = follower.catch_up()
    finally:
        follower.close()
    return fold(updates)
