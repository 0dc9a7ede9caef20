"""Label delays: counts of transactions, or chargeback-like durations of event time."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from streaming.config import Settings
from streaming.errors import ConfigError
from streaming.events import Label, Transaction
from streaming.simulation.delays import LabelDelay, parse_label_delay
from streaming.simulation.generator import BASELINE, TransactionSimulator
from streaming.simulation.streamer import stream_transactions
from tests.kafka_helpers import decode_all, read_topic


def test_chargeback_like_delays_are_mostly_days_with_a_tail_to_weeks() -> None:
    delay = parse_label_delay("3d")
    days = delay.draw(np.random.default_rng(1), 100_000) / 86_400
    assert 2.9 < float(np.median(days)) < 3.1
    assert 6.5 < float(np.quantile(days, 0.9)) < 8.5, "90% within about 2.5x the median"
    assert float(np.quantile(days, 0.99)) > 12, "a tail to weeks"
    assert float(days.max()) <= 60


def test_a_spread_of_zero_makes_every_delay_the_median_and_a_count_ignores_event_time() -> None:
    assert set(LabelDelay(median_s=3600, spread=0).draw(np.random.default_rng(0), 5)) == {3600.0}
    assert not parse_label_delay("500").in_event_time and parse_label_delay("500").transactions == 500


@pytest.mark.parametrize("text", ["3 days", "-1d", "3x", ""])
def test_a_malformed_delay_is_one_clear_error(text: str) -> None:
    with pytest.raises(ConfigError, match=r"a number of transactions .* or a duration"):
        parse_label_delay(text)


@pytest.mark.integration
def test_labels_days_late_in_event_time_are_published_once_the_stream_has_passed_them(
    one_partition_settings: Settings,
) -> None:
    settings = one_partition_settings
    simulator = TransactionSimulator(seed=3, mean_gap_s=60.0)  # a transaction a minute
    stream_transactions(
        settings, simulator, 3000, BASELINE, label_delay=LabelDelay(median_s=86_400, spread=0)
    )
    transactions = decode_all(
        read_topic(settings, settings.topics.transactions, lambda rs: len(rs) >= 3000), Transaction
    )
    records = read_topic(settings, settings.topics.labels, lambda rs: len(rs) >= 3000)
    labels = decode_all(records, Label)
    when = {t.transaction_id: t.event_time for t in transactions}
    assert all(label.label_time - when[label.transaction_id] == timedelta(days=1) for label in labels)
    assert {r.key for r in records} == {label.transaction_id.encode() for label in labels}, (
        "keyed by transaction"
    )
    # A day is 1,440 transactions here: each label is sent once the stream passed its time,
    # the last 1,440 (still due when the stream ended) are flushed in order.
    assert [label.label_time for label in labels] == sorted(label.label_time for label in labels)
