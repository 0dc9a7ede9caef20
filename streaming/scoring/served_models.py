"""The scorer's side of ``model.updates``: which verified versions serve.

Every ModelUpdate is folded twice: into the *named* plan (what ``model.updates`` says
should serve) and into the plan over what this scorer has loaded. A version is served only
once it verifies (signature, sha256, trusted types, features); one that does not is
refused: logged, counted, and dead-lettered once on ``model.updates.dlq`` with the
partition and offset of the update that named it (a restarted scorer that meets the same
refusal does not dead-letter it again).

A refused champion never leaves a scorer without a model when one can serve: a running
scorer keeps its champion, and a starting one serves the newest champion of the topic's
history that does verify. While the champion serving is not the one named,
``driftloop_named_champion_refused`` is 1.
"""

from __future__ import annotations

import gc
from collections.abc import Callable

from streaming import metrics
from streaming.config import Settings
from streaming.control.follower import Located
from streaming.control.plan import ServingPlan, fold
from streaming.errors import ModelRejectedError
from streaming.events import DeadLetter, encode_event
from streaming.kafka.dead_letters import bounded_dead_letter
from streaming.logs import get_logger
from streaming.models.registry import LoadedModel, ModelRegistry
from streaming.scoring.holder import ModelHolder

log = get_logger("driftloop.score")


class ServedModels:
    """Applies model updates to a :class:`ModelHolder`, between batches.

    Parameters
    ----------
    settings
        The scorer's settings (model name, topics, feature spec, dead-letter bounds).
    registry
        Where verified versions are loaded from.
    holder
        The champion and challenger slots the scorer reads.
    send_dead_letter
        Writes a refusal to ``model.updates.dlq`` (and waits for it).
    dead_lettered
        ``(partition, offset)`` of the updates ``model.updates.dlq`` already holds refusals of
        (also :attr:`dead_lettered`, which the scorer fills from the topic when it starts).
    """

    def __init__(
        self,
        settings: Settings,
        registry: ModelRegistry,
        holder: ModelHolder,
        send_dead_letter: Callable[[DeadLetter], None],
        dead_lettered: set[tuple[int, int]] | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.holder = holder
        self.named = ServingPlan()
        self.models_loaded: list[str] = []
        self.updates_rejected = 0
        self._send = send_dead_letter
        self.dead_lettered = set(dead_lettered or ())
        self._spec = settings.feature_spec()
        self._consumer = f"{settings.kafka.client_id}/{settings.scoring.group_id}"
        self._latest: dict[str, Located] = {}  # version -> the newest update that names it
        self._champions: list[str] = []  # every champion the topic named, oldest first
        self._refused: set[str] = set()

    def apply(self, updates: list[Located], undecodable: list[DeadLetter]) -> None:
        """Fold the updates in, load what the plan needs, refuse what does not verify."""
        for letter in undecodable:
            self._refuse_undecodable(letter)
        if not updates:
            return
        for update, partition, offset in updates:
            self._latest[update.version] = (update, partition, offset)
            self.named = fold([update], self.named)
            if self.named.champion is not None and self._champions[-1:] != [self.named.champion]:
                self._champions = [v for v in self._champions if v != self.named.champion]
                self._champions.append(self.named.champion)
        before = (_version(self.holder.champion), _version(self.holder.challenger))
        loaded = ServingPlan(before[0], before[1], self.holder.challenger_percent)
        plan = fold((update for update, _, _ in updates), loaded)
        for version, error in self.holder.reconcile(plan, self._load):
            self._refuse(version, error)
        if not self.holder.ready:
            self._serve_last_good_champion()
        after = (_version(self.holder.champion), _version(self.holder.challenger))
        if after != before:
            self._publish_model_info(before, after)
            # The loaded models, the clients and the libraries live as long as the process:
            # move them out of the collector's reach, so a full collection does not walk them
            # between two batches (it cost 100+ ms pauses, the scorer's p99 latency).
            gc.freeze()
        mismatch = self.named.champion is not None and after[0] != self.named.champion
        metrics.NAMED_CHAMPION_REFUSED.labels(self.settings.model_name).set(int(mismatch))

    def _serve_last_good_champion(self) -> None:
        """No champion serves (a scorer starting up): serve the newest named one that verifies."""
        for version in reversed(self._champions):
            if version in self._refused:
                continue
            try:
                self.holder.champion = self._load(version)
            except ModelRejectedError as exc:
                self._refuse(version, exc)
                continue
            log.warning(
                "the named champion %s cannot be served; serving %s, the newest champion that verifies",
                self.named.champion,
                version,
                extra={"named_champion": self.named.champion, "model_version": version},
            )
            return

    def _load(self, version: str) -> LoadedModel:
        located = self._latest.get(version)
        update = located[0] if located is not None else None
        expected_sha = update.sha256 if update is not None else None
        model = self.registry.load(self.settings.model_name, version, expected_sha256=expected_sha)
        if update is not None and update.signature and update.signature != model.manifest.signature:
            raise ModelRejectedError(
                "signature_mismatch",
                f"{version}: the update's signature differs from the registry manifest's",
            )
        missing = set(model.encoder.spec.names) - set(self._spec.names)
        if missing:
            raise ModelRejectedError(
                "spec_mismatch",
                f"{version} needs feature(s) the stream does not carry: {', '.join(sorted(missing))}",
            )
        self.models_loaded.append(version)
        return model

    def _refuse(self, version: str, error: ModelRejectedError) -> None:
        self._refused.add(version)
        self.updates_rejected += 1
        metrics.MODEL_UPDATES_REJECTED.labels(error.reason).inc()
        log.error(
            "model update refused; the current models keep serving: %s",
            error,
            extra={"model_version": version, "reason": error.reason},
        )
        located = self._latest.get(version)
        update, partition, offset = located if located is not None else (None, -1, -1)
        self._dead_letter_once(
            bounded_dead_letter(
                reason=error.reason,
                error=str(error),
                source_topic=self.settings.topics.model_updates,
                partition=partition,
                offset=offset,
                key=self.settings.model_name.encode(),
                value=encode_event(update) if update is not None else None,
                consumer=self._consumer,
                max_value_bytes=self.settings.messages.dead_letter_value_bytes,
            )
        )

    def _refuse_undecodable(self, letter: DeadLetter) -> None:
        self.updates_rejected += 1
        metrics.MODEL_UPDATES_REJECTED.labels(letter.reason).inc()
        log.error(
            "undecodable model update: %s",
            letter.error,
            extra={"topic": letter.source_topic, "partition": letter.partition, "offset": letter.offset},
        )
        self._dead_letter_once(letter)

    def _dead_letter_once(self, letter: DeadLetter) -> None:
        where = (letter.partition, letter.offset)
        if letter.offset >= 0 and where in self.dead_lettered:
            return  # refused before, by this scorer or an earlier one: already on the DLQ
        self._send(letter)
        self.dead_lettered.add(where)

    def _publish_model_info(
        self, before: tuple[str | None, str | None], after: tuple[str | None, str | None]
    ) -> None:
        name = self.settings.model_name
        for role, old, new in (("champion", before[0], after[0]), ("challenger", before[1], after[1])):
            if old is not None:
                metrics.MODEL_INFO.remove(name, old, role)
            if new is not None:
                metrics.MODEL_INFO.labels(name, new, role).set(1)
        log.info(
            "serving models changed",
            extra={
                "champion": after[0],
                "challenger": after[1],
                "challenger_percent": self.holder.challenger_percent,
                "named_champion": self.named.champion,
            },
        )


def _version(model: LoadedModel | None) -> str | None:
    return model.version if model is not None else None
