"""Drift monitoring: pure-Python monitors over plain values, and their Kafka adapter.

- :mod:`.reference` — what "normal" looks like: a sample of the model's holdout data;
- :mod:`.detectors` — the per-event River detectors driftloop allows, by name;
- :mod:`.window_tests` — vectorized two-sample tests (KS, chi-square, PSI) with Holm control;
- :mod:`.joiner` — matches delayed labels to the predictions made for them;
- :mod:`.episodes` — warm-up, hysteresis and cooldown: one alarm per signal per episode;
- :mod:`.monitors` — the monitors (feature, prediction, label, error) behind one interface;
- :mod:`.suite` — all monitors of one partition, fed per micro-batch, emitting DriftEvents;
- :mod:`.state` — signed snapshots of a suite;
- :mod:`.backtest` — the same monitors over a CSV, without Kafka;
- :mod:`.service` — the scorer-side adapter: labels consumer, state topic, drift topic.
"""
