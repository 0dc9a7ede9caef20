"""Exactly-once checkpoints: the outputs and the consumed offsets in one Kafka transaction.

With ``scoring.delivery = exactly_once`` the scorer's producer is transactional (KIP-98). The
outputs of the records since the last checkpoint (scores, dead letters, drift evidence) are
sent inside an open transaction; the checkpoint adds the consumed offsets to it, bound to the
consumer group's generation (KIP-447, so a scorer that lost its partitions cannot commit
them), and commits. A ``read_committed`` reader sees the outputs of committed checkpoints
only, each once; a crash leaves an open transaction that the restarted scorer's producer
(same ``transactional.id``) aborts, or that the broker aborts after
``scoring.transaction_timeout_ms``.

A commit that fails without the producer being fenced (a rebalance moved the group on, a
broker refused a write) aborts the transaction instead, and the consumer is rewound to the
committed offsets: the records since the last checkpoint are read and scored again, their
aborted outputs never seen.

Broker-free: the producer and the consumer's hooks are handed in.

>>> calls = []
>>> class Producer:
...     def begin_transaction(self): calls.append("begin")
...     def send_offsets_to_transaction(self, offsets, group): calls.append(("offsets", offsets, group))
...     def commit_transaction(self): calls.append("commit")
...     def abort_transaction(self): calls.append("abort")
>>> commits = TransactionalCommits(Producer(), lambda: "generation 7", dict, rewind=calls.append)
>>> commits.begin(); commits.begin(); commits.commit({"p0": 10})
True
>>> calls
['begin', ('offsets', {'p0': 10}, 'generation 7'), 'commit']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


class TransactionalCommits:
    """One transaction per checkpoint (see the module docstring).

    Parameters
    ----------
    producer
        A transactional producer (kafka-python's ``KafkaProducer`` with a ``transactional_id``,
        ``init_transactions()`` already called).
    group_metadata
        The consumer's group metadata now (``KafkaConsumer.group_metadata``).
    to_offsets
        Turns ``{partition: next offset}`` into what ``send_offsets_to_transaction`` takes.
    rewind
        Seeks the consumer's partitions back to their committed offsets after an abort; it is
        given what caused the abort (to log).
    """

    def __init__(
        self,
        producer: Any,
        group_metadata: Callable[[], Any],
        to_offsets: Callable[[Mapping[Any, int]], Any],
        rewind: Callable[[BaseException], None],
    ) -> None:
        self._producer = producer
        self._group_metadata = group_metadata
        self._to_offsets = to_offsets
        self._rewind = rewind
        self.open = False
        self.committed = 0
        self.aborted = 0

    def begin(self) -> None:
        """Open a transaction unless one is open (before the first output after a checkpoint)."""
        if not self.open:
            self._producer.begin_transaction()
            self.open = True

    def commit(self, offsets: Mapping[Any, int]) -> bool | None:
        """Commit the open transaction with ``offsets``; True once committed, None when it was
        aborted instead and the consumer rewound (the records are read again). Raises when
        even the abort fails (the producer was fenced or Kafka is gone): the scorer stops, and
        its restart aborts the transaction."""
        self.begin()
        try:
            self._producer.send_offsets_to_transaction(self._to_offsets(offsets), self._group_metadata())
            self._producer.commit_transaction()
        except Exception as exc:
            self.abort(exc)
            return None
        finally:
            self.open = False
        self.committed += 1
        return True

    def commit_outputs(self) -> None:
        """Commit the open transaction without offsets (outputs sent outside the scoring loop,
        e.g. a refused model update's dead letter before any record is consumed)."""
        if self.open:
            self._producer.commit_transaction()
            self.open = False

    def abort(self, cause: BaseException) -> None:
        """Abort the open transaction because of ``cause`` and rewind the consumer; raises
        ``cause`` when the abort fails too."""
        self.open = False
        try:
            self._producer.abort_transaction()
        except Exception as abort_failed:
            raise cause from abort_failed
        self.aborted += 1
        self._rewind(cause)
