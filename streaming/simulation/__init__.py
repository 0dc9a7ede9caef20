"""Simulated card transactions: the generator (pure, seeded) and the streamer that writes
them, with their delayed labels, to Kafka."""
