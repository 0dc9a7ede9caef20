"""The outcome join: predictions wait on disk for their delayed labels (`driftloop join`).

- :mod:`.store` — one partition's state: RocksDB under a write overlay, committed with the
  offsets it covers, rebuilt from a changelog topic;
- :mod:`.join` — the join rule (TTL in event time, waiting labels, duplicates, markers);
- :mod:`.service` — the Kafka side: reads ``scores`` and ``labels``, writes ``outcomes``.
"""
