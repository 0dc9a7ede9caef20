"""Who may do what: the Kafka ACLs of each driftloop component.

One table, :data:`COMPONENTS`, says which of driftloop's topics each component reads and
writes (by :class:`~streaming.config.TopicNames` field, so renamed topics follow). From it
:func:`acls_for` derives the ACL bindings of a principal acting as that component:

- READ on the topics it reads (READ implies DESCRIBE), WRITE on those it writes (WRITE
  implies DESCRIBE; idempotent producers need nothing more since Kafka 2.8);
- READ on consumer groups (any group: group ids are settings, and the demo and the
  benchmarks make their own) for the components that consume in a group;
- WRITE on transactional ids for the scorer (``scoring.delivery = exactly_once``);
- CREATE on the cluster for the operator (`driftloop topics create`).

So the scorer may read ``transactions`` and write ``scores`` but not ``model.updates``, and
the trigger may not write ``scores``. `driftloop topics acls` prints the bindings (and
applies them with ``--apply``); `driftloop kafka start --security sasl_ssl` applies them for
its users. Broker-free but for :func:`apply_acls`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streaming.config import KafkaSettings, TopicNames


@dataclass(frozen=True)
class Access:
    """What one component does with driftloop's topics (``TopicNames`` field names)."""

    description: str
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    groups: bool = False  # consumes in a consumer group
    transactions: bool = False  # may produce transactionally
    create_topics: bool = False


_RETRAINING_READS = ("drift_events", "transactions", "outcomes", "model_updates")

#: Every component and what it reads and writes.
COMPONENTS: dict[str, Access] = {
    "scorer": Access(
        "`driftloop score`: transactions in, scores, dead letters and drift evidence out",
        reads=("transactions", "model_updates", "model_updates_dlq"),
        writes=("scores", "transactions_dlq", "evidence", "model_updates_dlq"),
        groups=True,
        transactions=True,
    ),
    "join": Access(
        "`driftloop join`: scores and labels in, outcomes and the join's changelog out",
        reads=("scores", "labels", "outcomes_changelog"),
        writes=("outcomes", "outcomes_changelog", "labels_dlq"),
        groups=True,
    ),
    "monitor": Access(
        "`driftloop monitor`: evidence and outcomes in, drift events and monitor snapshots out",
        reads=("evidence", "outcomes", "transactions", "state", "model_updates"),
        writes=("drift_events", "state", "evidence_dlq"),
        groups=True,
    ),
    "trigger": Access(
        "`driftloop trigger`: drift events in; runs retraining flows itself unless they go to a worker",
        reads=_RETRAINING_READS,
        writes=("drift_events_dlq", "model_updates"),
        groups=True,
    ),
    "retrainer": Access(
        "`driftloop worker` / `retrain`: reads the window, publishes the challenger",
        reads=_RETRAINING_READS,
        writes=("model_updates",),
    ),
    "canary": Access(
        "`driftloop canary`: outcomes in, promotions and rollbacks out",
        reads=("outcomes", "model_updates"),
        writes=("model_updates",),
    ),
    "producer": Access(
        "your systems (or `driftloop simulate`): transactions and labels in",
        writes=("transactions", "labels"),
    ),
    "operator": Access(
        "`driftloop topics create`, `registry`, `train`, `events`: creates topics, reads every "
        "topic, publishes model updates",
        reads=tuple(TopicNames.model_fields),
        writes=("model_updates",),
        create_topics=True,
    ),
}


@dataclass(frozen=True)
class AclBinding:
    """One ALLOW rule: ``principal`` may ``operation`` on ``resource`` (``pattern`` LITERAL or
    PREFIXED; ``name`` ``*`` is every resource of the type)."""

    principal: str
    operation: str  # READ, WRITE, CREATE, DELETE, ALL
    resource: str  # TOPIC, GROUP, TRANSACTIONAL_ID, CLUSTER
    name: str
    pattern: str = "LITERAL"

    def describe(self) -> str:
        prefix = " (prefix)" if self.pattern == "PREFIXED" else ""
        return f"{self.principal:20} {self.operation:7} {self.resource:16} {self.name}{prefix}"


def acls_for(user: str, components: list[str], names: TopicNames, demo: bool = False) -> list[AclBinding]:
    """The bindings for ``user`` acting as each of ``components``; with ``demo``, also every
    right on the topics ``driftloop demo`` makes for itself (``demo-<run id>-*``)."""
    principal = f"User:{user}"
    unknown = [c for c in components if c not in COMPONENTS]
    if unknown:
        raise ValueError(f"unknown components {unknown}; known: {', '.join(COMPONENTS)}")
    bindings: dict[AclBinding, None] = {}  # ordered, without repeats
    for component in components:
        access = COMPONENTS[component]
        for field in access.reads:
            bindings[AclBinding(principal, "READ", "TOPIC", getattr(names, field))] = None
        for field in access.writes:
            bindings[AclBinding(principal, "WRITE", "TOPIC", getattr(names, field))] = None
        if access.groups:
            bindings[AclBinding(principal, "READ", "GROUP", "*")] = None
        if access.transactions:
            bindings[AclBinding(principal, "WRITE", "TRANSACTIONAL_ID", "*")] = None
        if access.create_topics:
            bindings[AclBinding(principal, "CREATE", "CLUSTER", "kafka-cluster")] = None
    if demo:
        bindings[AclBinding(principal, "ALL", "TOPIC", "demo-", "PREFIXED")] = None
        bindings[AclBinding(principal, "READ", "GROUP", "*")] = None
    return list(bindings)


def apply_acls(kafka: KafkaSettings, bindings: list[AclBinding]) -> int:
    """Create ``bindings`` on the cluster through ``kafka.client`` (as a user allowed to alter
    ACLs); creating one that exists is a no-op. Returns how many were sent; raises
    :class:`BrokerError` naming the first refused."""
    from streaming.errors import BrokerError

    if kafka.client == "confluent-kafka":
        from streaming.kafka import confluent

        refused = confluent.create_acls(kafka, bindings)
    else:
        refused = _create_acls_kafka_python(kafka, bindings)
    if refused:
        raise BrokerError(f"{len(refused)} of {len(bindings)} ACLs were refused; the first: {refused[0]}")
    return len(bindings)


def _create_acls_kafka_python(kafka: KafkaSettings, bindings: list[AclBinding]) -> list[str]:
    """kafka-python's :func:`apply_acls`: a line for each binding the cluster refused."""
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePattern,
        ResourceType,
    )

    from streaming.kafka.clients import make_admin

    acls = [
        ACL(
            b.principal,
            "*",
            ACLOperation[b.operation],
            ACLPermissionType.ALLOW,
            ResourcePattern(ResourceType[b.resource], b.name, ACLResourcePatternType[b.pattern]),
        )
        for b in bindings
    ]
    admin = make_admin(kafka)
    try:
        result: Any = admin.create_acls(acls)
    finally:
        admin.close()
    failed = result.get("failed", []) if isinstance(result, dict) else []
    return [
        f"{item[0]} ({item[1]})" if isinstance(item, tuple) and len(item) > 1 else str(item)
        for item in failed
    ]
