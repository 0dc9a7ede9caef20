"""Retraining: the training window from Kafka, dataset snapshots, candidate validation, and the
trigger that turns drift events into runs of the Prefect flow in ``flows/retrain.py``."""
