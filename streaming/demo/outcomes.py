"""What a demo run did, as data: one row per transaction, its drift events and model updates.

Built once after the run, for both the summary and the report. The transactions are what
the simulator produced (kept in memory, with the time each was sent); what the loop decided
comes back from the run's ``scores`` topic, and the truth from its ``outcomes`` (the labels
as `driftloop join` matched them, days after the transaction in event time), so the report
shows what a fraud team would see: transactions whose label has not come by the end are
left out and counted. Drift events and model updates come from their topics. "static" is
the first champion replayed on the same transactions.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
import numpy as np
import pandas as pd

from streaming.config import Settings
from streaming.events import DriftEvent, ModelUpdate, Outcome, Score
from streaming.kafka.reading import TopicReader
from streaming.monitoring.performance import PerformanceModel


@dataclass(frozen=True)
class ObservedRun:
    """What the run left behind, read once for the summary and the report."""

    outcomes: pd.DataFrame  # see outcome_frame
    unlabelled: int  # scored transactions whose label had not been joined by the end
    drift_events: list[DriftEvent]
    updates: list[ModelUpdate]
    onset_at: datetime | None
    complete: bool  # False when the run was interrupted or its topics could not be read whole
    #: What estimating each model version's performance needs (its calibration), by version.
    performance: dict[str, PerformanceModel] = field(default_factory=dict)
    static_version: str = ""  # the first champion, replayed as "static"


def read_events(
    settings: Settings, topic: str, event_type: type[Any], deadline: float
) -> tuple[list[Any], bool]:
    """Every decodable event of ``topic`` up to its current end, and whether it was read whole
    before ``deadline`` (``time.monotonic()``)."""
    decoder = msgspec.json.Decoder(event_type)
    out: list[Any] = []
    with TopicReader(settings.kafka, topic) as reader:
        for record in reader.records(follow=False, stop_after_s=max(0.0, deadline - time.monotonic())):
            try:
                out.append(decoder.decode(record.value))
            except msgspec.MsgspecError:
                continue
        return out, reader.caught_up()


def outcome_frame(
    produced: pd.DataFrame, scores: list[Score], outcomes: list[Outcome], static: Any
) -> tuple[pd.DataFrame, int]:
    """One row per produced, scored and labelled transaction: its features, the label the
    join matched to it (``label``) and how late it came in event time (``label_delay_s``),
    the time it was sent (``time``), the loop's decision (``loop``, ``loop_version``) and
    the static model's; and the number of scored transactions left out, still unlabelled."""
    decided = {s.transaction_id: (s.decision, s.model_version, s.score) for s in scores}
    truth = {o.transaction_id: (o.label, o.delay_s) for o in outcomes}  # at-least-once: one each
    scored = produced[produced["transaction_id"].isin(decided.keys())]
    frame = scored[scored["transaction_id"].isin(truth.keys())].reset_index(drop=True)
    frame["loop"] = [decided[t][0] for t in frame["transaction_id"]]
    frame["loop_version"] = [decided[t][1] for t in frame["transaction_id"]]
    frame["loop_score"] = np.array([decided[t][2] for t in frame["transaction_id"]], dtype=float)
    threshold = float(static.manifest.threshold)
    frame["static_score"] = static.predict_proba(static.encoder.frame_matrix(frame))
    frame["static"] = frame["static_score"] >= threshold
    frame["label"] = np.array([truth[t][0] for t in frame["transaction_id"]], dtype=int)
    frame["label_delay_s"] = np.array([truth[t][1] for t in frame["transaction_id"]], dtype=float)
    frame["time"] = pd.to_datetime(frame["sent_at"], unit="s", utc=True).dt.floor("us")
    return frame.sort_values("time", kind="stable").reset_index(drop=True), len(scored) - len(frame)


def summarize(observed: ObservedRun, scenario: str, seconds: float, interrupted: bool) -> dict[str, Any]:
    """The demo's headline figures (printed, the last line as JSON, and in the report)."""
    frame, drift, updates, onset = (
        observed.outcomes,
        observed.drift_events,
        observed.updates,
        observed.onset_at,
    )

    def seconds_after_onset(times: list[datetime]) -> float | None:
        later = [t for t in times if onset is not None and t >= onset]
        return round((min(later) - onset).total_seconds(), 1) if later and onset is not None else None

    opened = [e for e in drift if e.status == "opened"]  # one per drift episode
    fraud = frame["label"] == 1
    promoted = [u.created_at for u in updates if u.status == "promoted"]
    after = frame["time"] >= pd.Timestamp(min(promoted)) if promoted else pd.Series(False, index=frame.index)
    return {
        "scenario": scenario,
        "interrupted": interrupted,
        "transactions": len(frame) + observed.unlabelled,
        "labelled": len(frame),
        "median_label_delay_h": round(float(frame["label_delay_s"].median()) / 3600, 1)
        if len(frame)
        else None,
        "drift_events": len(opened),
        "drift_events_after_onset": sum(1 for e in opened if onset is not None and e.detected_at >= onset),
        "drift_reports_ongoing": sum(1 for e in drift if e.status == "ongoing"),
        "drift_episodes_resolved": sum(1 for e in drift if e.status == "resolved"),
        "retrains": sum(1 for u in updates if u.status == "started"),
        "challengers": sum(1 for u in updates if u.status == "challenger"),
        "rejected": sum(1 for u in updates if u.status == "rejected"),
        "canary_steps": sum(1 for u in updates if u.status == "canary_step"),
        "promotions": sum(1 for u in updates if u.status == "promoted"),
        "rollbacks": sum(1 for u in updates if u.status == "rolled_back"),
        "frauds": int(fraud.sum()),
        "loop_fraud_caught": int((frame["loop"] & fraud).sum()),
        "loop_false_alerts": int((frame["loop"] & ~fraud).sum()),
        "static_fraud_caught": int((frame["static"] & fraud).sum()),
        "static_false_alerts": int((frame["static"] & ~fraud).sum()),
        "frauds_after_promotion": int((fraud & after).sum()),
        "loop_caught_after_promotion": int((frame["loop"] & fraud & after).sum()),
        "static_caught_after_promotion": int((frame["static"] & fraud & after).sum()),
        "seconds_onset_to_detection": seconds_after_onset([e.detected_at for e in opened]),
        "seconds_onset_to_challenger": seconds_after_onset(
            [u.created_at for u in updates if u.status == "challenger"]
        ),
        "seconds_onset_to_promotion": seconds_after_onset(
            [u.created_at for u in updates if u.status == "promoted"]
        ),
        "seconds": round(seconds, 1),
    }


def summary_json(summary: dict[str, Any]) -> str:
    return json.dumps(summary, default=lambda o: o.item() if isinstance(o, np.generic) else str(o))
