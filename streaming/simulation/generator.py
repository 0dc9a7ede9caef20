"""Synthetic card transactions with fraud, for demos, tests and benchmarks.

Accounts have a home, a typical spend, active hours and a preferred channel; merchants
belong to categories. Legitimate spending follows each account's habits; fraud follows a
*pattern* (what fraudsters do at the time), but only partly, as in real card data: each
sign of the pattern shows on a fraud with its own probability, and one fraud in ten (an
account takeover that spends like the owner) shows none. A model trained on the baseline
reaches a holdout ROC AUC of about 0.92-0.93 and catches about 60% of fraud at a 0.5
threshold, not all of it. A :class:`Regime` describes the world at one moment, so drift is a
change of regime:

- ``concept``: a new fraud pattern the model never saw (small online gift-card purchases
  near home, in the daytime) replaces the old one;
- ``covariate``: a holiday season shifts spending (bigger amounts, more online, more retail)
  while fraud stays the same;
- ``prior``: a fraud wave multiplies the fraud rate.

The output is a pandas DataFrame with the envelope columns (``transaction_id``,
``account_id``, ``event_time``), the features of :data:`streaming.config.DEFAULT_FEATURES`
and the ``label`` column (1 = fraud), generated vectorized from a seed.

>>> frame = TransactionSimulator(seed=1).generate(1000)
>>> list(frame.columns)[:4]
['transaction_id', 'account_id', 'event_time', 'amount']
>>> bool(0.005 < frame["label"].mean() < 0.06)
True
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from streaming.events import Label, Outcome, Transaction

CATEGORIES = np.array(
    [
        "grocery",
        "restaurant",
        "fuel",
        "pharmacy",
        "clothing",
        "electronics",
        "travel",
        "online_retail",
        "jewelry",
        "gift_cards",
    ]
)
_LEGIT_CATEGORY_WEIGHTS = np.array([0.28, 0.18, 0.12, 0.07, 0.1, 0.05, 0.04, 0.13, 0.01, 0.02])
_HOLIDAY_CATEGORY_WEIGHTS = np.array([0.2, 0.15, 0.07, 0.04, 0.16, 0.11, 0.06, 0.17, 0.02, 0.02])
_CATEGORY_PRICE = np.array([1.0, 0.8, 1.1, 0.6, 1.6, 4.0, 6.0, 1.4, 5.0, 1.0])
CHANNELS = np.array(["pos", "online", "atm"])

#: Share of frauds that spend like the card's owner (no sign of the pattern at all).
_MIMIC_SHARE = 0.1
#: How often each sign of the pattern shows on one fraud: category, amount, hour, distance,
#: velocity, channel.
_PATTERN_SIGN_RATE = np.array([0.65, 0.7, 0.55, 0.6, 0.65, 0.8])[:, None]


def _set(column: np.ndarray, rows: np.ndarray, where: np.ndarray, values: np.ndarray) -> None:
    """``column[rows[i]] = values[i]`` where ``where[i]``."""
    column[rows[where]] = values[where]


@dataclass(frozen=True)
class Regime:
    """The state of the world that transactions are drawn from."""

    name: str = "baseline"
    fraud_rate: float = 0.02
    fraud_pattern: str = "far_high_value"  # or "gift_card_testing"
    spend_multiplier: float = 1.0
    online_share: float = 0.3
    holiday_categories: bool = False


BASELINE = Regime()
SCENARIOS: dict[str, Regime] = {
    "baseline": BASELINE,
    "concept": replace(BASELINE, name="concept", fraud_pattern="gift_card_testing"),
    "covariate": replace(
        BASELINE, name="covariate", spend_multiplier=1.8, online_share=0.55, holiday_categories=True
    ),
    "prior": replace(BASELINE, name="prior", fraud_rate=0.08),
}


class TransactionSimulator:
    """Seeded generator of card transactions; successive calls continue one stream.

    Parameters
    ----------
    seed
        Seed of every random draw: the same seed gives the same stream.
    n_accounts
        Number of card holders.
    start
        Event time of the first transaction; events are ``mean_gap_s`` apart on average.
    """

    def __init__(
        self,
        seed: int = 0,
        n_accounts: int = 2000,
        start: datetime = datetime(2026, 1, 1, tzinfo=UTC),
        mean_gap_s: float = 1.0,
    ) -> None:
        self.seed = seed
        self.n_accounts = n_accounts
        self.mean_gap_s = mean_gap_s
        self._rng = np.random.default_rng(seed)
        rng = self._rng
        self._avg_spend = rng.lognormal(mean=3.6, sigma=0.6, size=n_accounts)  # ~ 40 on average
        self._active_hour = rng.normal(14, 3, size=n_accounts).clip(7, 22)
        self._online_affinity = rng.beta(2, 4, size=n_accounts)
        self._activity = rng.pareto(2.5, size=n_accounts) + 1
        self._activity /= self._activity.sum()
        self._clock = start
        self._next_id = 0

    def generate(self, n: int, regime: Regime = BASELINE) -> pd.DataFrame:
        """The next ``n`` transactions drawn under ``regime``."""
        rng = self._rng
        accounts = rng.choice(self.n_accounts, size=n, p=self._activity)
        fraud = rng.random(n) < regime.fraud_rate
        avg = self._avg_spend[accounts]

        weights = _HOLIDAY_CATEGORY_WEIGHTS if regime.holiday_categories else _LEGIT_CATEGORY_WEIGHTS
        category = rng.choice(len(CATEGORIES), size=n, p=weights)
        amount = avg * _CATEGORY_PRICE[category] * rng.lognormal(0, 0.45, size=n) * regime.spend_multiplier
        hour = (self._active_hour[accounts] + rng.normal(0, 2.5, size=n)) % 24
        distance = rng.exponential(6.0, size=n)
        distance = np.where(rng.random(n) < 0.03, rng.uniform(100, 3000, size=n), distance)
        velocity = rng.poisson(0.6, size=n) + 1
        online_p = np.clip(self._online_affinity[accounts] * regime.online_share / 0.3, 0, 0.95)
        channel = np.where(rng.random(n) < online_p, 1, np.where(rng.random(n) < 0.05, 2, 0))

        k = int(fraud.sum())
        if k:
            # A fraud follows the pattern of its time only partly: each of the pattern's
            # signs shows with its own probability, and a share of frauds (account takeovers
            # that spend like the owner) show none at all. So fraud overlaps legitimate
            # spending, as it does in real card data: a model separates most of it, never all.
            shows = rng.random((6, k)) < _PATTERN_SIGN_RATE
            shows &= rng.random(k) >= _MIMIC_SHARE
            rows = np.flatnonzero(fraud)
            if regime.fraud_pattern == "far_high_value":
                _set(category, rows, shows[0], rng.choice([5, 6, 8], size=k))  # electronics, travel, jewelry
                _set(
                    amount,
                    rows,
                    shows[1],
                    avg[fraud] * rng.lognormal(np.log(4), 0.5, size=k) * regime.spend_multiplier,
                )
                _set(hour, rows, shows[2], rng.uniform(0, 6, size=k))
                _set(distance, rows, shows[3], rng.lognormal(np.log(400), 1.0, size=k))
                _set(velocity, rows, shows[4], rng.poisson(2, size=k) + 2)
                _set(channel, rows, shows[5], rng.choice([0, 1], size=k, p=[0.4, 0.6]))
            else:  # gift_card_testing: small online purchases, several in a row
                _set(category, rows, shows[0], np.full(k, 9))
                _set(amount, rows, shows[1], rng.uniform(5, 40, size=k))
                _set(hour, rows, shows[2], rng.uniform(9, 18, size=k))
                _set(distance, rows, shows[3], rng.exponential(4.0, size=k))
                _set(velocity, rows, shows[4], rng.poisson(3, size=k) + 3)
                _set(channel, rows, shows[5], np.ones(k, dtype=int))

        gaps = rng.exponential(self.mean_gap_s, size=n).cumsum()
        times = (pd.to_datetime(self._clock) + pd.to_timedelta(gaps, unit="s")).floor("us")
        self._clock = self._clock + timedelta(seconds=float(gaps[-1])) if n else self._clock
        ids = np.arange(self._next_id, self._next_id + n)
        self._next_id += n
        return pd.DataFrame(
            {
                "transaction_id": [f"tx-{self.seed}-{i}" for i in ids],
                "account_id": [f"acct-{a}" for a in accounts],
                "event_time": times,
                "amount": np.round(amount, 2),
                "hour_of_day": np.floor(hour),
                "distance_from_home_km": np.round(distance, 2),
                "txn_count_1h": velocity.astype(float),
                "amount_to_avg_ratio": np.round(amount / avg, 3),
                "merchant_category": CATEGORIES[category],
                "channel": CHANNELS[channel],
                "label": fraud.astype(int),
            }
        )


def shifted_mix(
    simulator: TransactionSimulator, n: int, seed: int = 0, regime: Regime = BASELINE
) -> pd.DataFrame:
    """``n`` transactions of a pure covariate shift: drawn under ``regime``, then kept
    by their features alone (online purchases twice as likely as the others to stay, larger
    baskets more likely than smaller ones). The mix of transactions changes; the chance that
    a given transaction is fraud does not (the labelling rule stays the same), as the online
    performance estimate assumes. Event times are renumbered to follow on."""
    rng = np.random.default_rng(seed)
    kept: list[pd.DataFrame] = []
    have = 0
    while have < n:
        pool = simulator.generate(max(4 * n, 1000), regime)
        keep = (
            np.where(pool["channel"] == "online", 1.0, 0.5)
            * np.clip(pool["amount_to_avg_ratio"], 0.25, 2.0)
            / 2
        )
        chosen = pool[rng.random(len(pool)) < keep]
        kept.append(chosen)
        have += len(chosen)
    frame = pd.concat(kept, ignore_index=True).head(n).copy()
    start = frame["event_time"].iloc[0]
    gap = (frame["event_time"].iloc[-1] - start) / max(1, len(frame) - 1)
    frame["event_time"] = [start + gap * i for i in range(len(frame))]
    return frame


FEATURE_COLUMNS = [
    "amount",
    "hour_of_day",
    "distance_from_home_km",
    "txn_count_1h",
    "amount_to_avg_ratio",
    "merchant_category",
    "channel",
]


def to_transactions(frame: pd.DataFrame, feature_columns: list[str] | None = None) -> Iterator[Transaction]:
    """Transaction events for the rows of a simulated (or any similarly shaped) frame."""
    columns = feature_columns or FEATURE_COLUMNS
    records = frame[columns].to_dict("records")
    times = frame["event_time"].dt.to_pydatetime()
    for txn_id, account, time, features in zip(
        frame["transaction_id"], frame["account_id"], times, records, strict=True
    ):
        yield Transaction(transaction_id=txn_id, account_id=account, event_time=time, features=features)


def to_labels(frame: pd.DataFrame, delay: timedelta | np.ndarray = timedelta(0)) -> Iterator[Label]:
    """Label events for the rows of a simulated frame, ``delay`` after each event time (one
    duration, or an array of seconds, one per row)."""
    times = frame["event_time"].dt.to_pydatetime()
    delays = (
        [delay] * len(frame) if isinstance(delay, timedelta) else [timedelta(seconds=float(d)) for d in delay]
    )
    rows = zip(frame["transaction_id"], times, frame["label"], delays, strict=True)
    for txn_id, time, label, late in rows:
        yield Label(transaction_id=txn_id, label=int(label), label_time=time + late)


def leaning_score(label: int, i: int) -> float:
    """The ``i``-th of a stand-in model's scores: one that leans towards the label (0.15-0.35
    for a legitimate transaction, 0.75-0.95 for a fraud), for load that needs no model."""
    return min(0.99, max(0.01, 0.15 + 0.6 * label + 0.2 * ((i * 7919) % 100) / 100))


def to_outcomes(
    frame: pd.DataFrame, model_name: str, model_version: str, delay: timedelta = timedelta(0)
) -> Iterator[Outcome]:
    """What `driftloop join` would write for the rows of a simulated frame scored by
    ``model_version`` (a score that leans towards the label), ``delay`` after each event
    time: load for the drift monitors' outcome stream, without running a join."""
    times = frame["event_time"].dt.to_pydatetime()
    rows = zip(frame["transaction_id"], frame["account_id"], times, frame["label"], strict=True)
    for i, (txn_id, account, time, label) in enumerate(rows):
        score = leaning_score(int(label), i)
        yield Outcome(
            transaction_id=txn_id,
            account_id=account,
            model_name=model_name,
            model_version=model_version,
            role="champion",
            score=score,
            threshold=0.5,
            decision=score >= 0.5,
            label=int(label),
            event_time=time,
            scored_at=time,
            label_time=time + delay,
            delay_s=delay.total_seconds(),
            latency_ms=1.0,
        )
