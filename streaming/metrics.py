"""Prometheus metrics of the driftloop processes (prometheus-client, default registry).

Updated once per micro-batch, never per event, so they cost nothing on the hot path.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from streaming.errors import ConfigError
from streaming.logs import get_logger

log = get_logger("driftloop.metrics")

SCORED = Counter("driftloop_scored_total", "Transactions scored.", ["model_version", "role"])
DEAD_LETTERS = Counter(
    "driftloop_dead_letters_total", "Records sent to a dead-letter topic.", ["source_topic", "reason"]
)
BATCH_SIZE = Histogram(
    "driftloop_batch_size",
    "Records per scored micro-batch.",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
)
PROCESSING_LATENCY = Histogram(
    "driftloop_processing_latency_seconds",
    "Time from a micro-batch's first record being received to its scores being sent.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
END_TO_END_LATENCY = Histogram(
    "driftloop_end_to_end_latency_seconds",
    "Time from the oldest record's Kafka timestamp to its score being sent, per batch.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
PARTITIONS_OWNED = Gauge(
    "driftloop_partitions_owned",
    "Partitions of the transactions topic this scorer owns now (0 until the group assigns it some).",
)
CONSUMER_LAG = Gauge(
    "driftloop_consumer_lag", "Records behind the log end, per partition.", ["topic", "partition"]
)
MODEL_INFO = Gauge(
    "driftloop_model_info",
    "1 for each model version serving, by role.",
    ["model_name", "model_version", "role"],
)
NAMED_CHAMPION_REFUSED = Gauge(
    "driftloop_named_champion_refused",
    "1 while the champion model.updates names cannot be served (refused) and another serves instead.",
    ["model_name"],
)
MODEL_UPDATES_REJECTED = Counter(
    "driftloop_model_updates_rejected_total", "Model updates refused by a scorer.", ["reason"]
)


EVIDENCE_ROWS = Counter(
    "driftloop_evidence_rows_total",
    "Champion-scored rows the scorer summarized into drift evidence (summarized), or could not "
    "(no_reference: the model carries no reference profile).",
    ["outcome"],
)
EVIDENCE_RECORDS = Counter("driftloop_evidence_records_total", "Evidence records the scorer wrote.")

# -- `driftloop monitor` ----------------------------------------------------------------------
MONITOR_EVIDENCE = Counter(
    "driftloop_monitor_evidence_total",
    "Evidence records the monitor read, by outcome: new, duplicate and overlap (a replay's, "
    "skipped), other_model, other_bins, undecodable.",
    ["outcome"],
)
MONITOR_EVIDENCE_LATE = Counter(
    "driftloop_monitor_evidence_late_total", "Evidence records older than the merged stream (merged at once)."
)
MONITOR_ROWS = Counter("driftloop_monitor_rows_total", "Scored rows the monitor merged, all partitions.")
MONITOR_OUTCOMES = Counter(
    "driftloop_monitor_outcomes_total",
    "Outcomes the monitor read: monitored, other_model (a challenger's or an older champion's), undecodable.",
    ["outcome"],
)
MONITOR_WATERMARK_LAG = Gauge(
    "driftloop_monitor_watermark_lag_seconds",
    "Event time between the newest evidence and the watermark (how far the slowest partition holds it back).",
)
MONITOR_EVENT_TIME = Gauge(
    "driftloop_monitor_event_time_seconds", "Event time (Unix seconds) of the newest evidence merged."
)
MONITOR_PARTITIONS = Gauge(
    "driftloop_monitor_partitions", "Source partitions whose evidence the monitor merged."
)
MONITOR_ACTIVE = Gauge(
    "driftloop_monitor_active", "1 while this process is the active monitor of its model, 0 on standby."
)
DRIFT_EVENTS = Counter(
    "driftloop_drift_events_total",
    "Drift episodes opened (drift events with status opened).",
    ["signal", "detector", "severity"],
)
DRIFT_REPORTS = Counter(
    "driftloop_drift_reports_total",
    "Later reports of drift episodes: status ongoing (it persists) or resolved (it ended).",
    ["status"],
)
PERFORMANCE_ESTIMATED = Gauge(
    "driftloop_performance_estimated",
    "The champion's performance estimated from its calibrated scores, before any label, over the latest "
    "window of monitoring.performance_window rows (metric: fraud_rate, precision, recall, flagged_share, "
    "precision_at_budget, recall_at_budget, budget_share, roc_auc).",
    ["metric"],
)
PERFORMANCE_REALIZED = Gauge(
    "driftloop_performance_realized",
    "The same metrics realized on the champion's newest monitoring.performance_window labelled outcomes.",
    ["metric"],
)
DRIFT_EPISODE_OPEN = Gauge(
    "driftloop_drift_episode_open", "1 while the monitored model has an open drift episode, else 0."
)
PREFECT_EVENTS = Counter(
    "driftloop_prefect_events_total",
    "Drift events sent to Prefect's event feed, by outcome (sent, failed).",
    ["outcome"],
)
LABELS = Counter(
    "driftloop_labels_total",
    "Outcomes (labelled predictions) the drift monitors read: monitored, other_model (a "
    "challenger's or an older champion's), undecodable.",
    ["outcome"],
)
STATE_SNAPSHOTS = Counter(
    "driftloop_state_snapshots_total", "Monitor state snapshots, by outcome (written, failed).", ["outcome"]
)
STATE_RESTORES = Counter(
    "driftloop_state_restores_total",
    "Partitions whose monitors started, by source (snapshot, fresh, or a refused snapshot's reason).",
    ["outcome"],
)

# -- `driftloop join` -------------------------------------------------------------------------
JOIN_INPUTS = Counter(
    "driftloop_join_inputs_total",
    "Scores and labels the join read, by what became of them (labels: matched, late, duplicate, "
    "unknown_transaction, not_keyed_by_transaction_id or a decode reason; scores: duplicate, undecodable).",
    ["topic", "outcome"],
)
JOIN_OUTCOMES = Counter("driftloop_join_outcomes_total", "Outcomes written (one per joined score).")
JOIN_EXPIRED = Counter(
    "driftloop_join_expired_total", "Predictions that reached their time-to-live without a label."
)
JOIN_PENDING = Gauge(
    "driftloop_join_pending", "Predictions waiting for their label, per partition.", ["partition"]
)
JOIN_WAITING_LABELS = Gauge(
    "driftloop_join_waiting_labels",
    "Labels that came before their score and wait, per partition.",
    ["partition"],
)
JOIN_OLDEST_PENDING_SECONDS = Gauge(
    "driftloop_join_oldest_pending_seconds",
    "Event-time age of the oldest prediction still waiting for its label, per partition.",
    ["partition"],
)
JOIN_STORE_BYTES = Gauge(
    "driftloop_join_store_bytes", "The partition's RocksDB store on disk.", ["partition"]
)
JOIN_LAG = Gauge(
    "driftloop_join_lag", "Records behind the log end, per input partition.", ["topic", "partition"]
)
JOIN_CHECKPOINT_SECONDS = Histogram(
    "driftloop_join_checkpoint_seconds",
    "One checkpoint of the join: expiry, flush, changelog, store commits, offset commit.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def serve_metrics(port: int, address: str = "0.0.0.0") -> str | None:
    """Expose /metrics on ``address:port`` (port 0: do nothing); return and log its URL."""
    if not port:
        return None
    try:
        start_http_server(port, addr=address)
    except OSError as exc:
        raise ConfigError(
            f"cannot serve metrics on {address}:{port}: {exc.strerror or exc}; "
            "choose another --metrics-port (scoring.metrics_port, join.metrics_port), or 0 to turn them off"
        ) from exc
    url = f"http://{address}:{port}/metrics"
    log.info("Prometheus metrics on %s", url, extra={"metrics_url": url})
    return url
