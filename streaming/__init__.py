"""driftloop: event-driven drift detection and retraining for models that score streams."""

__version__ = "0.1.0"
