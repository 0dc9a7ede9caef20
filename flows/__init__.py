"""Prefect flows of driftloop (the retraining flow lands here)."""
