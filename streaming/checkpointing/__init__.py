"""Checkpointing, broker-free: micro-batches, delivery of outputs, and the commit order.

A consumer that processes records into outputs stays at-least-once and repeats as little as
possible by doing three things in order at each checkpoint, the way Quix Streams'
``Checkpoint`` and Kafka Streams' task commit do:

1. **flush the outputs** and check every one was acknowledged (:class:`DeliveryTracker`);
2. **write the state** that covers the records (the drift monitors' snapshots);
3. **commit the offsets** of the records, for the partitions still owned; a commit refused
   by a rebalance is deferred to the next one, not fatal (:class:`Checkpointer`).

:class:`BatchCollector` forms the micro-batches (:class:`PendingBatch`) by size and by the
age of their first record (:func:`batch_deadline`). Nothing here imports a Kafka client: the
adapters (the scorer, the throughput benchmark) hand in their ``poll``, ``flush`` and
``commit``, and the unit tests drive it with plain functions.
"""

from streaming.checkpointing.batching import BatchCollector, PendingBatch, batch_deadline
from streaming.checkpointing.checkpoint import Checkpointer, Offsets, highest
from streaming.checkpointing.delivery import DeliveryTracker

__all__ = [
    "BatchCollector",
    "Checkpointer",
    "DeliveryTracker",
    "Offsets",
    "PendingBatch",
    "batch_deadline",
    "highest",
]
