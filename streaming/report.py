"""The demo's self-contained HTML report: plotly figures over the run's real data.

plotly.js is embedded once in the page (no CDN), so the report opens offline.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from streaming.demo import ObservedRun
from streaming.events import DriftEvent, ModelUpdate

_WINDOW = 1000


def write_report(path: Path, run: Any, observed: ObservedRun, summary: dict[str, Any]) -> None:
    frame = observed.outcomes.assign(time=pd.to_datetime(observed.outcomes["ts"], unit="ms", utc=True))
    drift, updates = observed.drift_events, observed.updates
    figures = [
        _signals(frame, drift, run.onset_at),
        _distributions(frame, run.onset_at),
        _performance(frame, updates, run.onset_at),
        _timeline(drift, updates),
    ]
    parts = [
        figure.to_html(full_html=False, include_plotlyjs=(i == 0), default_height="420px")
        for i, figure in enumerate(figures)
    ]
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in summary.items()
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>driftloop demo report</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}}td{{padding:2px 12px}}
table{{border-collapse:collapse}}tr:nth-child(odd){{background:#f4f4f4}}</style></head>
<body><h1>driftloop demo: {html.escape(str(summary.get("scenario")))} drift</h1>
<p>Every figure is drawn from this run's topics: transactions, labels, scores, drift events and
model updates. "static" is the first champion replayed on the same transactions.</p>
<h2>Summary</h2><table>{rows}</table>
<h2>Drift signals over time</h2>{parts[0]}
<h2>Feature distributions before and after the onset</h2>{parts[1]}
<h2>Model performance over time</h2>{parts[2]}
<h2>Timeline of drift, retraining and canary steps</h2>{parts[3]}
</body></html>"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")


#: Plot every this many rows of the rolling series (keeps the page small; the lines are smooth).
_STRIDE = 100


def _rolling(frame: pd.DataFrame, column: pd.Series) -> pd.Series:
    return column.astype(float).rolling(_WINDOW, min_periods=_WINDOW // 4).mean().iloc[::_STRIDE]


def _times(frame: pd.DataFrame) -> pd.Series:
    return frame["time"].iloc[::_STRIDE]


def _mark(figure: go.Figure, when: Any, text: str, color: str) -> None:
    if when is not None:
        figure.add_vline(x=pd.Timestamp(when), line_dash="dash", line_color=color)
        figure.add_annotation(x=pd.Timestamp(when), y=1, yref="paper", text=text, showarrow=False, yshift=10)


def _signals(frame: pd.DataFrame, drift: list[DriftEvent], onset: Any) -> go.Figure:
    figure = go.Figure()
    fraud = frame["label"] == 1
    figure.add_scatter(x=_times(frame), y=_rolling(frame, fraud), name="fraud rate (labels)")
    figure.add_scatter(
        x=_times(frame), y=_rolling(frame, frame["static"] != fraud), name="static model error rate"
    )
    figure.add_scatter(x=_times(frame), y=_rolling(frame, frame["loop"] != fraud), name="loop error rate")
    _mark(figure, onset, "drift onset", "black")
    for event in drift:
        figure.add_vline(x=pd.Timestamp(event.detected_at), line_color="red", opacity=0.5)
    figure.update_layout(title=f"rolling {_WINDOW} transactions; red lines: drift events", yaxis_title="rate")
    return figure


def _distributions(frame: pd.DataFrame, onset: Any) -> go.Figure:
    before = frame[frame["time"] < pd.Timestamp(onset)] if onset is not None else frame
    after = frame[frame["time"] >= pd.Timestamp(onset)] if onset is not None else frame.iloc[0:0]
    figure = make_subplots(
        rows=1, cols=2, subplot_titles=("amount of fraud transactions", "merchant category of fraud")
    )
    for name, part in (("before", before), ("after", after)):
        fraud = part[part["label"] == 1]
        figure.add_histogram(
            x=fraud["amount"], name=f"amount, {name}", opacity=0.6, histnorm="probability", row=1, col=1
        )
        counts = fraud["merchant_category"].value_counts(normalize=True)
        figure.add_bar(x=counts.index, y=counts.to_numpy(), name=f"category, {name}", row=1, col=2)
    figure.update_layout(barmode="overlay")
    return figure


def _performance(frame: pd.DataFrame, updates: list[ModelUpdate], onset: Any) -> go.Figure:
    fraud = frame["label"] == 1
    figure = go.Figure()
    for name in ("loop", "static"):
        caught = (frame[name] & fraud).astype(float).rolling(_WINDOW, min_periods=_WINDOW // 4).sum()
        total = fraud.astype(float).rolling(_WINDOW, min_periods=_WINDOW // 4).sum()
        recall = (caught / total.where(total > 0)).iloc[::_STRIDE]
        figure.add_scatter(x=_times(frame), y=recall, name=f"{name}: share of fraud caught")
    _mark(figure, onset, "drift onset", "black")
    for update in updates:
        if update.status == "promoted":
            _mark(figure, update.created_at, f"{update.version} promoted", "green")
    figure.update_layout(
        title=f"recall over rolling {_WINDOW} transactions", yaxis_title="fraud caught", yaxis_range=[0, 1.05]
    )
    return figure


def _timeline(drift: list[DriftEvent], updates: list[ModelUpdate]) -> go.Figure:
    figure = go.Figure()
    figure.add_scatter(
        x=[pd.Timestamp(e.detected_at) for e in drift],
        y=[f"drift: {e.signal}" for e in drift],
        mode="markers",
        name="drift events",
        text=[f"{e.detector} {e.feature or ''} partition {e.partition}" for e in drift],
    )
    figure.add_scatter(
        x=[pd.Timestamp(u.created_at) for u in updates],
        y=[u.status for u in updates],
        mode="markers+text",
        text=[
            f"{u.version} {'' if u.traffic_percent is None else f'{u.traffic_percent:g}%'}" for u in updates
        ],
        textposition="top center",
        name="model updates",
    )
    figure.update_layout(title="what happened when")
    return figure
