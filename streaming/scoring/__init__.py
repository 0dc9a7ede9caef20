"""Scoring: the pure batch scorer, the loaded champion/challenger pair, and `driftloop score`'s Kafka loop."""
