"""No message can stop scoring: malformed input from a foreign client, against the real broker.

The messages are written by librdkafka (confluent-kafka), not by driftloop's kafka-python
code: twenty kinds of malformed transactions, from 0 B to 2 MB, nesting to 100,000 levels,
600 KB ids, interleaved with valid ones. The scorer runs as `driftloop score` does, in its
own process; it must score every valid transaction, dead-letter every malformed one (with
a reason, the place it came from, and at most a bounded prefix of its bytes), stay up, and
commit every partition to its end.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from streaming.config import Settings
from streaming.control.updates import champion_update
from streaming.events import DeadLetter, Score, encode_event
from streaming.kafka.clients import ensure_topics
from streaming.kafka.publishing import publish_model_update
from streaming.models.first_champion import train_and_register
from streaming.models.training import TrainingParams
from streaming.topics import TopicSpec
from tests.kafka_helpers import decode_all, read_topic, wait_for_commits_at_the_end
from tests.malformed import malformed_kinds, valid_transactions
from tests.processes import Command

pytestmark = pytest.mark.integration

MB = 1024 * 1024


def messages(malformed: int, valid: int, seed: int = 3) -> Iterator[tuple[str, bytes, bytes | None]]:
    """(kind or "valid", key, value) in a shuffled order: ``valid`` good ones, ``malformed`` bad."""
    rng = random.Random(seed)
    good = valid_transactions(seed, valid)
    kinds = malformed_kinds(good[0], rng)
    names = list(kinds)
    heavy = {"id_600kb", "nested_100k", "two_megabytes", "just_over_the_limit"}
    light = [n for n in names if n not in heavy]
    plan = ["valid"] * valid + [names[i % len(names)] for i in range(len(names))]
    plan += [rng.choice(light) for _ in range(malformed - len(names) - 4 * 4)]
    plan += [h for h in sorted(heavy) for _ in range(4)]  # 4 more of each large kind: 4 MB-class each
    rng.shuffle(plan)
    for kind in plan:
        if kind == "valid":
            document = good.pop()
            yield kind, str(document["account_id"]).encode(), json.dumps(document).encode()
        else:
            yield kind, f"key-{rng.randint(0, 50)}".encode(), kinds[kind]()


def test_malformed_messages_from_a_foreign_client_are_dead_lettered_and_scoring_never_stops(
    driftloop_settings: Settings, history: pd.DataFrame, tmp_path: Path
) -> None:
    from confluent_kafka import Producer

    settings = driftloop_settings
    # A transactions topic that takes 3 MB records, so the 2 MB ones reach the scorer.
    big = TopicSpec(
        f"{settings.topics.transactions}-big", None, "", "", 4, 1, {"max.message.bytes": str(3 * MB)}
    )
    ensure_topics(settings.kafka, [big])
    settings = settings.model_copy(
        update={"topics": settings.topics.model_copy(update={"transactions": big.name})}
    )
    publish_model_update(
        settings, champion_update(train_and_register(settings, history, params=TrainingParams(max_iter=20)))
    )

    written: list[tuple[str, int, int]] = []  # kind, partition, offset (from librdkafka's reports)

    def delivered(kind: str) -> Callable[[object, object], None]:
        def report(error: object, message: object) -> None:
            assert error is None, error
            written.append((kind, message.partition(), message.offset()))  # type: ignore[attr-defined]

        return report

    producer = Producer(
        {"bootstrap.servers": settings.kafka.bootstrap_servers, "message.max.bytes": 3 * MB, "linger.ms": 20}
    )
    valid_ids: set[str] = set()
    malformed = 0
    for kind, key, value in messages(malformed=10_000, valid=10_000):
        producer.produce(big.name, key=key, value=value, on_delivery=delivered(kind))
        producer.poll(0)
        if kind == "valid":
            valid_ids.add(json.loads(value or b"")["transaction_id"])
        else:
            malformed += 1
    assert producer.flush(120) == 0
    assert (len(valid_ids), malformed, len(written)) == (10_000, 10_000, 20_000)

    scorer = Command(settings, tmp_path / "score.log", "score")
    try:
        scores = decode_all(
            read_topic(settings, settings.topics.scores, lambda rs: len(rs) >= 10_000, timeout_s=300), Score
        )
        letters = decode_all(
            read_topic(
                settings, settings.topics.transactions_dlq, lambda rs: len(rs) >= 10_000, timeout_s=120
            ),
            DeadLetter,
        )
        assert scorer.process.poll() is None, f"the scorer exited:\n{scorer.tail()}"
        # every partition's committed offset reaches its end
        wait_for_commits_at_the_end(settings, settings.scoring.group_id, big.name)
    finally:
        code, _ = scorer.stop()
    assert code == 0, scorer.tail()

    assert {s.transaction_id for s in scores} == valid_ids, "every valid transaction is scored, nothing else"
    bad_places = {(p, o): kind for kind, p, o in written if kind != "valid"}
    letters_at = {(d.partition, d.offset): d for d in letters}
    assert len(letters) == 10_000 and letters_at.keys() == bad_places.keys(), (
        "each malformed one, exactly once"
    )
    for place, letter in letters_at.items():
        assert letter.reason and letter.source_topic == big.name, letter
        assert len(encode_event(letter)) < 200_000, f"{bad_places[place]}: a dead letter stays small"
    reasons = Counter((bad_places[p], d.reason) for p, d in letters_at.items())
    by_kind = {kind: {r for (k, r) in reasons if k == kind} for kind, _ in reasons}
    assert by_kind["id_600kb"] == {"id_too_long"}
    assert by_kind["two_megabytes"] == {"too_large"} and by_kind["just_over_the_limit"] == {"too_large"}
    assert by_kind["nested_100k"] == {"too_deep"}
    assert by_kind["long_category"] == {"value_too_long"}
    large = next(d for p, d in letters_at.items() if bad_places[p] == "two_megabytes")
    assert large.truncated and large.value_size is not None and large.value_size > 2 * MB - 1000
    assert large.value is not None and len(large.value) == settings.messages.dead_letter_value_bytes
