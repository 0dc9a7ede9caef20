"""The local broker's security mode: `driftloop kafka start --security sasl_ssl`.

In ``sasl_ssl`` mode the local broker (or every node of the local cluster) takes clients on a
SASL_SSL listener only: TLS with a throwaway CA (:mod:`streaming.kafka.local_tls`), SCRAM-SHA-512
users, and ACLs on every request (:mod:`streaming.kafka.acls`). Its files, under
``<home>/kafka/``:

- ``security``              the mode the storage was formatted in (``plaintext`` or ``sasl_ssl``)
- ``tls/ca.pem``            the CA clients trust (``kafka.ssl_cafile``)
- ``users/<user>.password`` each user's password (mode 0600; ``kafka.sasl_plain_password_file``)
- ``users/<user>.env``      the ``DRIFTLOOP_KAFKA__*`` settings to connect as that user

The users: one per component of :data:`~streaming.kafka.acls.COMPONENTS` (``scorer``,
``join``, ``monitor``, ``trigger``, ``retrainer``, ``canary``, ``producer``, ``operator``),
each with only its component's ACLs, and ``driftloop``, with all of them plus the topics
`driftloop demo` makes for itself: the user for one box that runs everything, and the demo.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from streaming.config import KafkaSettings, TopicNames
from streaming.errors import BrokerError
from streaming.kafka.acls import COMPONENTS, AclBinding, acls_for

SecurityMode = Literal["plaintext", "sasl_ssl"]
SECURITY_MODES: tuple[SecurityMode, ...] = ("plaintext", "sasl_ssl")
#: The user with every component's rights (and the demo's topics).
ALL_COMPONENTS_USER = "driftloop"


@dataclass(frozen=True)
class LocalSecurity:
    """The security files of the local broker in ``home`` (see the module docstring)."""

    home: Path

    @property
    def folder(self) -> Path:
        return Path(self.home).absolute() / "kafka"

    @property
    def users_folder(self) -> Path:
        return self.folder / "users"

    @property
    def ca_file(self) -> Path:
        return self.folder / "tls" / "ca.pem"

    def mode(self) -> SecurityMode:
        """The recorded mode; ``plaintext`` when none was recorded."""
        path = self.folder / "security"
        text = path.read_text().strip() if path.exists() else "plaintext"
        return "sasl_ssl" if text == "sasl_ssl" else "plaintext"

    def choose(self, wanted: SecurityMode | None, formatted: bool) -> SecurityMode:
        """The mode to start in: ``wanted`` (default: the recorded one), refused when storage
        ``formatted`` in the other mode exists (its users and listeners are fixed at format)."""
        recorded = self.mode()
        mode = wanted or recorded
        if formatted and mode != recorded:
            raise BrokerError(
                f"the local broker in {self.folder} was set up {recorded}; it cannot be restarted "
                f"{mode}. `driftloop kafka stop`, then delete {self.folder} (its data, logs and "
                "users) or use another DRIFTLOOP_HOME"
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "security").write_text(mode)
        return mode

    @staticmethod
    def users() -> list[str]:
        return [ALL_COMPONENTS_USER, *COMPONENTS]

    def passwords(self) -> dict[str, str]:
        """Every user's password, made (random, mode 0600) the first time."""
        self.users_folder.mkdir(parents=True, exist_ok=True)
        self.users_folder.chmod(0o700)
        passwords = {}
        for user in self.users():
            path = self.password_file(user)
            if not path.exists():
                path.write_text(secrets.token_urlsafe(24))
                path.chmod(0o600)
            passwords[user] = path.read_text().strip()
        return passwords

    def password_file(self, user: str) -> Path:
        return self.users_folder / f"{user}.password"

    def env_file(self, user: str) -> Path:
        return self.users_folder / f"{user}.env"

    def bindings(self, names: TopicNames) -> list[AclBinding]:
        """The ACLs of every user: each component's user its own, ``driftloop`` all of them."""
        bindings = acls_for(ALL_COMPONENTS_USER, list(COMPONENTS), names, demo=True)
        for component in COMPONENTS:
            bindings += acls_for(component, [component], names)
        return bindings

    def client_settings(self, user: str, bootstrap_servers: str, replicas: int = 1) -> KafkaSettings:
        """The Kafka settings to connect as ``user`` (topics with ``replicas`` replicas)."""
        return KafkaSettings(
            bootstrap_servers=bootstrap_servers,
            security_protocol="SASL_SSL",
            ssl_cafile=self.ca_file,
            sasl_mechanism="SCRAM-SHA-512",
            sasl_plain_username=user,
            sasl_plain_password_file=self.password_file(user),
            replication_factor=min(3, replicas),
            min_insync_replicas=min(2, replicas),
        )

    def write_env_files(self, bootstrap_servers: str, replicas: int) -> None:
        """``users/<user>.env`` for every user: ``set -a; . <file>; set +a`` connects as it."""
        for user in self.users():
            kafka = self.client_settings(user, bootstrap_servers, replicas)
            values = {
                "BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
                "SECURITY_PROTOCOL": kafka.security_protocol,
                "SSL_CAFILE": str(kafka.ssl_cafile),
                "SASL_MECHANISM": str(kafka.sasl_mechanism),
                "SASL_PLAIN_USERNAME": user,
                "SASL_PLAIN_PASSWORD_FILE": str(kafka.sasl_plain_password_file),
                "REPLICATION_FACTOR": str(kafka.replication_factor),
                "MIN_INSYNC_REPLICAS": str(kafka.min_insync_replicas),
            }
            path = self.env_file(user)
            path.write_text("".join(f"DRIFTLOOP_KAFKA__{k}={v}\n" for k, v in values.items()))
            path.chmod(0o600)
