"""The demo's self-contained HTML report: plotly figures over the run's real data.

plotly.js is embedded once in the page (no CDN), so the report opens offline. Every plot
over time shares one time axis (the run's first transaction to its last event) and marks
the drift onset; the before/after histograms share their bins, on a log scale, so a
distribution that moved to small amounts stays visible next to one of large amounts.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from streaming.demo.outcomes import ObservedRun
from streaming.events import DriftEvent, ModelUpdate

_WINDOW = 1000
#: Plot every this many rows of the rolling series (keeps the page small; the lines are smooth).
_STRIDE = 100


def write_report(path: Path, observed: ObservedRun, summary: dict[str, Any]) -> None:
    frame, drift, updates, onset = (
        observed.outcomes,
        observed.drift_events,
        observed.updates,
        observed.onset_at,
    )
    span = _time_span(frame, drift, updates)
    figures = [
        _signals(frame, drift),
        _distributions(frame, onset),
        _performance(frame, updates),
        _timeline(drift, updates),
        _estimated(frame, observed),
    ]
    for figure in (figures[0], figures[2], figures[3], figures[4]):
        figure.update_xaxes(range=span, title_text="time (UTC)")
        _mark(figure, onset, "drift onset", "black")
    for figure in figures:  # legends above the plots: every plot area is as wide, so times line up
        figure.update_layout(
            legend={"orientation": "h", "yanchor": "bottom", "y": 1.08, "x": 0}, margin={"l": 130}
        )
    parts = [
        figure.to_html(full_html=False, include_plotlyjs=(i == 0), default_height="420px")
        for i, figure in enumerate(figures)
    ]
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in summary.items()
    )
    banner = ""
    if summary.get("interrupted") or not observed.complete:
        banner = (
            '<p style="background:#fff3cd;padding:8px 12px;border:1px solid #e0c36a">'
            "<b>Interrupted run.</b> The stream was stopped before the loop finished (or its topics "
            "could not be read back whole): the figures cover what happened until then.</p>"
        )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>driftloop demo report</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}}td{{padding:2px 12px}}
table{{border-collapse:collapse}}tr:nth-child(odd){{background:#f4f4f4}}</style></head>
<body><h1>driftloop demo: {html.escape(str(summary.get("scenario")))} drift</h1>{banner}
<p>Transactions are what the simulator produced; the loop's decisions, the labels (the
outcomes `driftloop join` matched, days late in event time), the drift events and the model
updates are read back from this run's topics. Transactions still unlabelled at the end are
left out (the summary counts them). "static" is the first champion replayed on the same
transactions. The dashed black line is the drift onset.</p>
<h2>Summary</h2><table>{rows}</table>
<h2>Drift signals over time</h2>{parts[0]}
<h2>Feature distributions before and after the onset</h2>{parts[1]}
<h2>Model performance over time</h2>{parts[2]}
<h2>Timeline of drift, retraining and canary steps</h2>{parts[3]}
<h2>Performance estimated before the labels, against the realized</h2>
<p>Dashed: estimated from the calibrated scores alone, as `driftloop monitor` does before any
label comes; solid: realized from the labels. The estimate assumes the chance of fraud given
a transaction does not change (no concept drift): it follows the realized figures while the
fraud pattern holds, and after the onset of a new pattern it stays above them (the
calibration, fitted on the old fraud, does not know the new frauds are fraud) &mdash; that is
where it fails, and why the label and error signals watch the realized side.</p>{parts[4]}
</body></html>"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")


def _time_span(
    frame: pd.DataFrame, drift: list[DriftEvent], updates: list[ModelUpdate]
) -> list[pd.Timestamp]:
    times = [*frame["time"].iloc[[0, -1]], *(e.detected_at for e in drift), *(u.created_at for u in updates)]
    stamps = [pd.Timestamp(t) for t in times]
    pad = (max(stamps) - min(stamps)) * 0.02
    return [min(stamps) - pad, max(stamps) + pad]


def _rolling(column: pd.Series) -> pd.Series:
    return column.astype(float).rolling(_WINDOW, min_periods=_WINDOW // 4).mean().iloc[::_STRIDE]


def _times(frame: pd.DataFrame) -> pd.Series:
    return frame["time"].iloc[::_STRIDE]


def _mark(figure: go.Figure, when: Any, text: str, color: str) -> None:
    if when is not None:
        figure.add_vline(x=pd.Timestamp(when), line_dash="dash", line_color=color)
        figure.add_annotation(x=pd.Timestamp(when), y=1, yref="paper", text=text, showarrow=False, yshift=10)


def _signals(frame: pd.DataFrame, drift: list[DriftEvent]) -> go.Figure:
    figure = go.Figure()
    fraud = frame["label"] == 1
    figure.add_scatter(x=_times(frame), y=_rolling(fraud), name="fraud rate (labels)")
    figure.add_scatter(x=_times(frame), y=_rolling(frame["static"] != fraud), name="static model error rate")
    figure.add_scatter(x=_times(frame), y=_rolling(frame["loop"] != fraud), name="loop error rate")
    for event in drift:
        if event.status != "ongoing":
            color = "red" if event.status == "opened" else "green"
            figure.add_vline(x=pd.Timestamp(event.detected_at), line_color=color, opacity=0.5)
    figure.update_layout(
        title=f"rolling {_WINDOW} transactions; red lines: drift episodes opened, green: resolved",
        yaxis_title="share of transactions",
    )
    return figure


_PERIODS = (("before", "#1f77b4"), ("after", "#ff7f0e"))


def _distributions(frame: pd.DataFrame, onset: Any) -> go.Figure:
    if onset is not None:
        before, after = (
            frame[frame["time"] < pd.Timestamp(onset)],
            frame[frame["time"] >= pd.Timestamp(onset)],
        )
    else:
        before, after = frame, frame.iloc[0:0]
    figure = make_subplots(
        rows=1, cols=2, subplot_titles=("amount of fraud transactions", "merchant category of fraud")
    )
    fraud_rows = frame[frame["label"] == 1]
    # Amounts span three decades: bins equal in log10(amount), shared by both periods.
    logs = np.log10(fraud_rows["amount"].clip(lower=0.01))
    edges = np.linspace(logs.min(), logs.max() + 1e-9, 41) if len(logs) else np.array([0.0, 1.0])
    categories = sorted(fraud_rows["merchant_category"].unique())
    for (name, color), part in zip(_PERIODS, (before, after), strict=True):
        fraud = part[part["label"] == 1]
        counts, _ = np.histogram(np.log10(fraud["amount"].clip(lower=0.01)), bins=edges)
        share = counts / counts.sum() if counts.sum() else counts.astype(float)
        label = f"{name} the onset ({len(fraud):,} frauds)"
        figure.add_bar(
            x=(edges[:-1] + edges[1:]) / 2,
            y=share,
            width=np.diff(edges),
            name=label,
            legendgroup=name,
            marker_color=color,
            opacity=0.6,
            row=1,
            col=1,
        )
        by_category = (
            fraud["merchant_category"].value_counts(normalize=True).reindex(categories, fill_value=0)
        )
        figure.add_bar(
            x=categories,
            y=by_category.to_numpy(),
            name=label,
            legendgroup=name,
            showlegend=False,
            marker_color=color,
            opacity=0.6,
            row=1,
            col=2,
        )
    ticks = [
        v
        for v in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000)
        if edges[0] <= np.log10(v) <= edges[-1]
    ]
    figure.update_layout(barmode="overlay")
    figure.update_xaxes(
        title_text="amount (log scale, shared bins)",
        tickvals=np.log10(ticks),
        ticktext=[f"{v:,}" for v in ticks],
        row=1,
        col=1,
    )
    figure.update_xaxes(title_text="merchant category", row=1, col=2)
    figure.update_yaxes(title_text="share of fraud transactions", row=1, col=1)
    figure.update_yaxes(title_text="share of fraud transactions", row=1, col=2)
    return figure


def _performance(frame: pd.DataFrame, updates: list[ModelUpdate]) -> go.Figure:
    fraud = frame["label"] == 1
    figure = go.Figure()
    for name in ("loop", "static"):
        caught = (frame[name] & fraud).astype(float).rolling(_WINDOW, min_periods=_WINDOW // 4).sum()
        total = fraud.astype(float).rolling(_WINDOW, min_periods=_WINDOW // 4).sum()
        recall = (caught / total.where(total > 0)).iloc[::_STRIDE]
        figure.add_scatter(x=_times(frame), y=recall, name=f"{name}: share of fraud caught")
    for update in updates:
        if update.status == "promoted":
            _mark(figure, update.created_at, f"{update.version} promoted", "green")
    figure.update_layout(
        title=f"recall over rolling {_WINDOW} transactions",
        yaxis_title="share of fraud caught",
        yaxis_range=[0, 1.05],
    )
    return figure


_ESTIMATE_WINDOW = 5000


def _estimated(frame: pd.DataFrame, observed: ObservedRun) -> go.Figure:
    """Recall at the alert budget and the fraud rate per window of transactions: estimated
    (dashed) against realized (solid), for the static first champion and for the loop."""
    figure = go.Figure()
    models = observed.performance
    labels = frame["label"].to_numpy(dtype=float)
    for name, color in (("static", "#1f77b4"), ("loop", "#ff7f0e")):
        versions = (
            np.full(len(frame), observed.static_version, dtype=object)
            if name == "static"
            else frame["loop_version"].to_numpy()
        )
        scores = frame[f"{name}_score"].to_numpy(dtype=float)
        p, top = np.full(len(frame), np.nan), np.zeros(len(frame), dtype=bool)
        for version, model in models.items():
            mine = versions == version
            p[mine] = model.calibration.apply(scores[mine])
            top[mine] = scores[mine] >= model.budget_score
        rows = []
        for begin in range(0, len(frame) - _ESTIMATE_WINDOW // 2, _ESTIMATE_WINDOW):
            part = slice(begin, begin + _ESTIMATE_WINDOW)
            pp, tt, yy = p[part], top[part], labels[part]
            if np.isnan(pp).any() or not yy.sum():
                continue
            rows.append(
                (frame["time"].iloc[part].iloc[-1], (pp * tt).sum() / pp.sum(), (yy * tt).sum() / yy.sum())
            )
        if rows:
            times, estimated, realized = zip(*rows, strict=True)
            style = {"color": color}
            figure.add_scatter(
                x=times, y=realized, name=f"{name}: recall at the budget, realized", line=style
            )
            figure.add_scatter(
                x=times, y=estimated, name=f"{name}: estimated", line={**style, "dash": "dash"}
            )
    figure.update_layout(
        title=f"recall at the alert budget per {_ESTIMATE_WINDOW:,} transactions",
        yaxis_title="share of fraud at or above the budget's score",
        yaxis_range=[0, 1.05],
    )
    return figure


def _drift_label(event: DriftEvent) -> str:
    """Hover text: what fired, where, and the columns that moved most."""
    scope = (
        "all partitions"
        if event.partitions_seen and len(event.scope) == event.partitions_seen
        else (
            f"partitions {', '.join(map(str, event.scope))}"
            if event.scope
            else f"partition {event.partition}"
        )
    )
    moved = ", ".join(f"{s.column} (PSI {s.psi:.2f})" for s in event.explanation if s.moved)
    ended = f" ({event.resolution.replace('_', ' ')})" if event.resolution else ""
    return f"{event.status}{ended}: {event.model_version} {event.detector} {event.feature or ''}, {scope}" + (
        f"; moved: {moved}" if moved else ""
    )


def _timeline(drift: list[DriftEvent], updates: list[ModelUpdate]) -> go.Figure:
    figure = go.Figure()
    figure.add_scatter(
        x=[pd.Timestamp(e.detected_at) for e in drift],
        y=[f"drift: {e.signal} ({e.status})" for e in drift],
        mode="markers",
        name="drift events",
        text=[_drift_label(e) for e in drift],
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
    figure.update_layout(title="what happened when", yaxis_title="event")
    return figure
