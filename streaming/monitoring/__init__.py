"""Drift monitoring: pure-Python monitors over plain values, and their Kafka adapter.

(What "normal" looks like, the reference profile, lives with the model it describes in
:mod:`streaming.models.reference`; the River detectors driftloop allows, by name, in
:mod:`streaming.detectors`.)

- :mod:`.window_tests` — vectorized two-sample tests (KS, chi-square, PSI) with Holm control;
- :mod:`.episodes` — warm-up, hysteresis and cooldown: one alarm per episode;
- :mod:`.severity` — how bad a drift is (low, medium, high);
- :mod:`.monitors` — the detectors (River's per event, window tests) behind one interface;
- :mod:`.evidence` — what a micro-batch tells the monitors, as mergeable counts (the scorer's part);
- :mod:`.merging` — evidence of many partitions back into one stream: event time, once;
- :mod:`.model_monitor` — one model's monitor over the pooled evidence: one alarm per drift;
- :mod:`.state` — signed snapshots of a monitor;
- :mod:`.backtest` — the same monitor over a CSV, without Kafka, on N simulated partitions;
- :mod:`.publisher` — the scorer's adapter: evidence to ``drift.evidence`` at checkpoints;
- :mod:`.service` — `driftloop monitor`: evidence and outcomes in, drift events out;
- :mod:`.prefect_events` — drift events in Prefect's event feed.
"""
