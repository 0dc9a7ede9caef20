"""Drift monitoring: pure-Python monitors over plain values, and their Kafka adapter.

(What "normal" looks like, the reference profile, lives with the model it describes in
:mod:`streaming.models.reference`; the River detectors driftloop allows, by name, in
:mod:`streaming.detectors`.)

- :mod:`.window_tests` — vectorized two-sample tests (KS, chi-square, PSI) with Holm control;
- :mod:`.episodes` — warm-up, hysteresis and cooldown: one alarm per signal per episode;
- :mod:`.monitors` — the monitors (feature, prediction, label, error) behind one interface;
- :mod:`.suite` — all monitors of one partition, fed per micro-batch, emitting DriftEvents;
- :mod:`.label_gate` — when a delayed label may join (after the partition is scored past it);
- :mod:`.state` — signed snapshots of a suite;
- :mod:`.backtest` — the same monitors over a CSV, without Kafka;
- :mod:`.service` — the scorer-side adapter: labels consumer, state topic, drift topic.
"""
