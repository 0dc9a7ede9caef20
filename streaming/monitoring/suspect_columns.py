"""Columns of an input table that look like identifiers or timestamps, not features.

An id column drifts by construction (every new row has a new id), so a monitor watching
it alarms at once and holds the feature signal in that one episode, hiding the real
shift; a timestamp grows without end and does the same. A model trained on either learns
nothing that carries to new rows. The backtest refuses them as features unless the user
says otherwise (``--allow-column``), and names them with the reason.

A column is suspect when it is

- of a date/time dtype, or strings of which (nearly) all parse as dates: *date-like*;
- strings or integers, with a distinct value on every row: *unique per row*;
- numbers that only ever increase (or only decrease) from row to row: *monotonic*, a
  counter or an epoch time.

Floating-point features such as amounts are unique per row too, so uniqueness alone does
not make a float column suspect.

>>> import pandas as pd
>>> frame = pd.DataFrame({
...     "txn": [f"t{i}" for i in range(60)],
...     "when": pd.date_range("2026-01-01", periods=60, freq="h").astype(str),
...     "seq": range(60),
...     "amount": [float(i % 7) + 0.5 for i in range(60)],
...     "channel": ["pos", "online"] * 30,
... })
>>> suspect_columns(frame, ["txn", "when", "seq", "amount", "channel"])
{'txn': 'unique per row', 'when': 'date-like', 'seq': 'monotonic'}
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np
import pandas as pd

#: Fewer rows than this prove nothing: a small table can have unique values by chance.
MIN_ROWS = 50
#: Share of sampled strings that must parse as dates for a column to be date-like.
DATE_SHARE = 0.95
_SAMPLE = 200
_DATE = r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}|\d{8}T\d{4}|\d{1,2} [A-Za-z]{3,9},? \d{4}"


def suspect_columns(frame: pd.DataFrame, columns: Iterable[str]) -> dict[str, str]:
    """The columns among ``columns`` that look like identifiers or timestamps, with why."""
    found: dict[str, str] = {}
    for name in columns:
        reason = _reason(frame[name])
        if reason is not None:
            found[name] = reason
    return found


def _reason(column: pd.Series) -> str | None:
    if pd.api.types.is_datetime64_any_dtype(column) or isinstance(column.dtype, pd.PeriodDtype):
        return "date-like"
    values = column.dropna()
    if len(values) < MIN_ROWS:
        return None
    if pd.api.types.is_bool_dtype(values):
        return None
    if pd.api.types.is_numeric_dtype(values):
        steps = np.diff(values.to_numpy(dtype=np.float64))
        if (steps > 0).all() or (steps < 0).all():
            return "monotonic"
        if pd.api.types.is_integer_dtype(values) and values.is_unique:
            return "unique per row"
        return None
    text = values.astype(str)
    if _date_like(text):
        return "date-like"
    if text.is_unique:
        return "unique per row"
    return None


def _date_like(text: pd.Series) -> bool:
    sample = text.iloc[:: max(1, len(text) // _SAMPLE)]
    # A date has a day, a month and a year (dateutil alone reads "t0" as a time of today).
    if sample.str.contains(_DATE, regex=True).mean() < DATE_SHARE:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "could not infer format": mixed formats are still dates
        parsed = pd.to_datetime(sample, errors="coerce", utc=True, format="mixed")
    return bool(parsed.notna().mean() >= DATE_SHARE)
