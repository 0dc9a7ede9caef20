"""A real Apache Kafka broker on loopback, built from Maven Central artifacts.

`driftloop kafka start` resolves ``org.apache.kafka:kafka_2.13`` (plus a log4j2 backend)
with Maven into ``<home>/kafka/lib-<version>/``, formats KRaft storage for one combined
broker+controller node, starts ``kafka.Kafka`` in the background and waits until a
kafka-python client gets metadata from it. Everything lives under ``<home>/kafka/``:

- ``lib-<version>/``  the jars (fetched once)
- ``data/``           the KRaft log directory
- ``logs/server.log`` the broker's log (``driftloop kafka status`` prints its path)
- ``broker.pid``      the running broker's process id

`driftloop kafka start --nodes 3` runs a :class:`LocalCluster` instead: three combined
broker+controller nodes on consecutive loopback ports, one KRaft quorum, each node under
``<home>/kafka/node-<id>/`` (the jars shared), internal topics replicated three times with
``min.insync.replicas`` 2.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from streaming.errors import BrokerError

_POM_TEMPLATE = "pom.xml"
_LOG4J_CONFIG = "log4j2.properties"
_READY_MARKER = ".complete"
_SCRAM = "SCRAM-SHA-512"
#: The user the broker connects to itself as, when it takes SCRAM users.
_BROKER_USER = "broker"


@dataclass(frozen=True)
class BrokerStatus:
    """What `driftloop kafka status` reports."""

    running: bool
    pid: int | None
    bootstrap_servers: str
    log_file: Path
    version: str

    def describe(self) -> str:
        if self.running:
            return (
                f"Kafka {self.version} is up at {self.bootstrap_servers} (pid {self.pid}); "
                f"log: {self.log_file}"
            )
        return f"Kafka is not running (log: {self.log_file})"


class UnsecuredJwt:
    """Bearer tokens for a local OAUTHBEARER broker: unsigned JWTs (``alg: none``) naming
    ``subject``, valid for an hour, as Kafka's unsecured validator accepts. A token provider
    in kafka-python's sense (``token()``); ``kafka.sasl_oauth_token_provider =
    "streaming.kafka.local_broker:UnsecuredJwt"`` for the local broker. Never for production:
    there, name your identity provider's client.
    """

    def __init__(self, subject: str = "driftloop") -> None:
        self.subject = subject

    def token(self) -> str:
        import json

        def part(value: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

        now = int(time.time())
        return f"{part({'alg': 'none'})}.{part({'sub': self.subject, 'iat': now, 'exp': now + 3600})}."


def new_cluster_id() -> str:
    """A KRaft cluster id: a random UUID in URL-safe base64, as Kafka's ``Uuid.randomUuid``.

    Like Kafka's, it never starts with ``-``: one in 64 would, and the storage tool would
    read it as an option ("argument --cluster-id/-t: expected one argument").

    >>> all(not new_cluster_id().startswith("-") for _ in range(1000))
    True
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


class LocalBroker:
    """One combined KRaft broker+controller node on 127.0.0.1.

    Parameters
    ----------
    home
        Folder under which ``kafka/`` holds jars, data, logs and the pid file.
    version
        Apache Kafka version to fetch from Maven Central.
    port, controller_port
        Loopback ports of the client listener and the controller listener.
    heap
        JVM heap size (``-Xmx``/``-Xms``).
    scram_users
        ``{name: password}``: the client listener then takes SASL with SCRAM-SHA-512 only,
        and these users (created when the storage is formatted, KIP-900) are the ones that
        may connect. The broker talks to itself as a user of its own.
    tls
        The client listener speaks TLS, with a certificate signed by a CA generated in
        ``<home>/kafka/tls/`` (:mod:`streaming.kafka.local_tls`); clients trust
        :attr:`ca_file`. With ``scram_users`` too, the listener is SASL_SSL.
    acls
        Authorize every request (KRaft's ``StandardAuthorizer``): a client may do only what an
        ACL allows it (:mod:`streaming.kafka.acls`); the broker's own user is a super user, and
        so is ``ANONYMOUS``, the principal of the PLAINTEXT controller listener the nodes talk
        to each other on (loopback only; KRaft controllers cannot take SCRAM).
    oauth
        The client listener takes SASL with OAUTHBEARER only, validating tokens with Kafka's
        *unsecured* JWT validator (no signature: a local broker for trying the mechanism,
        never a production setup); clients get tokens from :class:`UnsecuredJwt`.
    node_id, voters, cluster_id, root
        For a node of a :class:`LocalCluster`: its id, every node's controller port by id
        (the quorum), the cluster id all nodes are formatted with, and the node's own folder
        (default ``<home>/kafka``).
    """

    def __init__(
        self,
        home: Path,
        version: str,
        port: int = 9092,
        controller_port: int = 9093,
        heap: str = "512m",
        scram_users: Mapping[str, str] | None = None,
        tls: bool = False,
        oauth: bool = False,
        acls: bool = False,
        node_id: int = 1,
        voters: Mapping[int, int] | None = None,
        cluster_id: str | None = None,
        root: Path | None = None,
    ) -> None:
        self.home = Path(home).absolute()
        self.scram_users = dict(scram_users or {})
        self.tls = tls
        self.oauth = oauth
        self.acls = acls
        if oauth and scram_users:
            raise BrokerError("the local broker takes SCRAM users or OAUTHBEARER, not both")
        self.version = version
        self.port = port
        self.controller_port = controller_port
        self.heap = heap
        self.node_id = node_id
        self.voters = dict(voters or {node_id: controller_port})
        self.cluster_id = cluster_id
        self.root = Path(root).absolute() if root is not None else self.home / "kafka"
        self.lib_dir = self.home / "kafka" / f"lib-{version}"
        self.data_dir = self.root / "data"
        self.log_dir = self.root / "logs"
        self.log_file = self.log_dir / "server.log"
        self.pid_file = self.root / "broker.pid"
        self.config_file = self.root / "server.properties"

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def security_protocol(self) -> str:
        """The client listener's protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."""
        sasl = "SASL_" if self.scram_users or self.oauth else ""
        return f"{sasl}SSL" if self.tls else f"{sasl}PLAINTEXT" if sasl else "PLAINTEXT"

    @property
    def ca_file(self) -> Path:
        """The CA that signed the TLS listener's certificate (with ``tls``)."""
        return self.home / "kafka" / "tls" / "ca.pem"

    def client_options(self, user: str | None = None) -> dict[str, Any]:
        """kafka-python options to connect as ``user`` (the broker's own user by default)."""
        options: dict[str, Any] = {
            "bootstrap_servers": [self.bootstrap_servers],
            "security_protocol": self.security_protocol,
        }
        if self.tls:
            options["ssl_cafile"] = str(self.ca_file)
        if self.oauth:
            options.update(
                sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider=UnsecuredJwt(user or _BROKER_USER)
            )
        if self.scram_users:
            options.update(
                sasl_mechanism=_SCRAM,
                sasl_plain_username=user or _BROKER_USER,
                sasl_plain_password=self.scram_users[user] if user else self._broker_password(),
            )
        return options

    def _broker_password(self) -> str:
        path = self.home / "kafka" / "broker.secret"  # one for all nodes of a cluster
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_text(secrets.token_urlsafe(24))
            path.chmod(0o600)
        return path.read_text().strip()

    # -- public commands -------------------------------------------------------------

    def start(self, timeout_s: float = 90.0) -> BrokerStatus:
        """Start the broker unless it already runs; return once it serves metadata."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock():
            current = self.status()
            if current.running:
                return current
            process = self.launch()
            try:
                self._wait_until_ready(process, timeout_s)
            except BrokerError:
                _terminate(process.pid, grace_s=10)
                self.pid_file.unlink(missing_ok=True)
                raise
            return self.status()

    def launch(self) -> subprocess.Popen[bytes]:
        """Fetch the jars (once), write the config, format the storage (once) and start the
        JVM, without waiting for it: a cluster's nodes only answer once a quorum of them runs."""
        self.root.mkdir(parents=True, exist_ok=True)
        java = _require_tool(
            "java", "install a Java 17+ runtime (e.g. apt-get install openjdk-17-jre-headless)"
        )
        self._fetch_jars()
        for port in (self.port, self.controller_port):
            _require_free_port(port)
        self._write_config()
        self._format_storage(java)
        process = self._launch(java)
        self.pid_file.write_text(str(process.pid))
        return process

    def kill(self) -> bool:
        """SIGKILL the broker (a crash, for the chaos tests); False when none was running."""
        pid = self._running_pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop the broker; return False when none was running (not an error)."""
        with self._lock():
            pid = self._running_pid()
            self.pid_file.unlink(missing_ok=True)
            if pid is None:
                return False
            _terminate(pid, grace_s=timeout_s)
            return True

    def status(self) -> BrokerStatus:
        pid = self._running_pid()
        return BrokerStatus(
            running=pid is not None and _port_open(self.port),
            pid=pid,
            bootstrap_servers=self.bootstrap_servers,
            log_file=self.log_file,
            version=self.version,
        )

    # -- steps -----------------------------------------------------------------------

    def _fetch_jars(self) -> None:
        if (self.lib_dir / _READY_MARKER).exists():
            return
        mvn = _require_tool("mvn", "install Apache Maven (e.g. apt-get install maven)")
        pom = self.lib_dir.parent / f"pom-{self.version}.xml"
        template = resources.files("streaming.kafka").joinpath(_POM_TEMPLATE).read_text()
        pom.write_text(template.replace("@KAFKA_VERSION@", self.version))
        shutil.rmtree(self.lib_dir, ignore_errors=True)
        command = [
            mvn,
            "-B",
            "-q",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={self.lib_dir}",
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            tail = (result.stdout + result.stderr).strip().splitlines()[-15:]
            raise BrokerError(
                f"Maven could not fetch Apache Kafka {self.version} from Maven Central "
                f"(exit {result.returncode}):\n" + "\n".join(tail)
            )
        (self.lib_dir / _READY_MARKER).write_text(self.version)

    def _write_config(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        replicas = str(min(3, len(self.voters)))
        min_isr = str(min(2, len(self.voters)))
        properties: dict[str, str] = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": ",".join(
                f"{n}@127.0.0.1:{p}" for n, p in sorted(self.voters.items())
            ),
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            "offsets.topic.replication.factor": replicas,
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": min_isr,
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": min_isr,
            "default.replication.factor": replicas,
            "min.insync.replicas": min_isr,
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "log.cleaner.enable": "true",
        }
        protocol = self.security_protocol
        if protocol != "PLAINTEXT":
            listener = f"{protocol}://127.0.0.1:{self.port}"
            properties.update(
                {
                    "listeners": f"{listener},CONTROLLER://127.0.0.1:{self.controller_port}",
                    "advertised.listeners": listener,
                    "inter.broker.listener.name": protocol,
                    "listener.security.protocol.map": f"CONTROLLER:PLAINTEXT,{protocol}:{protocol}",
                }
            )
        if self.scram_users:
            properties.update(
                {
                    "sasl.enabled.mechanisms": _SCRAM,
                    "sasl.mechanism.inter.broker.protocol": _SCRAM,
                    f"listener.name.{protocol.lower()}.scram-sha-512.sasl.jaas.config": (
                        "org.apache.kafka.common.security.scram.ScramLoginModule required "
                        f'username="{_BROKER_USER}" password="{self._broker_password()}";'
                    ),
                }
            )
        if self.oauth:
            properties.update(
                {
                    "sasl.enabled.mechanisms": "OAUTHBEARER",
                    "sasl.mechanism.inter.broker.protocol": "OAUTHBEARER",
                    f"listener.name.{protocol.lower()}.oauthbearer.sasl.jaas.config": (
                        "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
                        f'unsecuredLoginStringClaim_sub="{_BROKER_USER}";'
                    ),
                }
            )
        if self.acls:
            properties.update(
                {
                    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                    "super.users": f"User:{_BROKER_USER};User:ANONYMOUS",
                    "allow.everyone.if.no.acl.found": "false",
                }
            )
        if self.tls:
            from streaming.kafka.local_tls import ensure_tls_files

            files = ensure_tls_files(self.home / "kafka" / "tls")  # one CA for all nodes of a cluster
            keystore = self.root / "broker-keystore.pem"  # key and chain, as Kafka's PEM type wants
            keystore.write_bytes(files.key.read_bytes() + files.certificate.read_bytes())
            keystore.chmod(0o600)
            properties.update(
                {
                    "ssl.keystore.type": "PEM",
                    "ssl.keystore.location": str(keystore),
                    "ssl.truststore.type": "PEM",
                    "ssl.truststore.location": str(files.ca),
                    "ssl.endpoint.identification.algorithm": "https",
                }
            )
        self.config_file.write_text("".join(f"{k}={v}\n" for k, v in properties.items()))

    def _format_storage(self, java: str) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        cluster_id = self.cluster_id or new_cluster_id()
        command = [
            java,
            "-cp",
            f"{self.lib_dir}/*",
            f"-Dlog4j2.configurationFile={self._log4j_config()}",
            f"-Dkafka.logs.dir={self.log_dir}",
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(self.config_file),
        ]
        users = {_BROKER_USER: self._broker_password(), **self.scram_users} if self.scram_users else {}
        for name, password in users.items():
            command += ["--add-scram", f"{_SCRAM}=[name={name},password={password}]"]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BrokerError(
                f"formatting KRaft storage in {self.data_dir} failed:\n{result.stdout}{result.stderr}"
            )

    def _launch(self, java: str) -> subprocess.Popen[bytes]:
        command = [
            java,
            f"-Xmx{self.heap}",
            f"-Xms{self.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self._log4j_config()}",
            f"-Dkafka.logs.dir={self.log_dir}",
            "-cp",
            f"{self.lib_dir}/*",
            "kafka.Kafka",
            str(self.config_file),
        ]
        with open(self.log_dir / "stdout.log", "ab") as out:
            return subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # survives the CLI process; stopped by `kafka stop`
            )

    def _wait_until_ready(self, process: subprocess.Popen[bytes], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise BrokerError(
                    f"the broker exited with code {process.returncode} while starting; "
                    f"see {self.log_file}:\n{_tail(self.log_file)}"
                )
            if _port_open(self.port) and _serves_metadata(self.client_options()):
                return
            time.sleep(0.5)
        raise BrokerError(
            f"the broker did not answer at {self.bootstrap_servers} within {timeout_s:.0f}s; "
            f"see {self.log_file}:\n{_tail(self.log_file)}"
        )

    # -- helpers ---------------------------------------------------------------------

    def _log4j_config(self) -> Path:
        target = self.root / _LOG4J_CONFIG
        text = resources.files("streaming.kafka").joinpath(_LOG4J_CONFIG).read_text()
        target.write_text(text)
        return target

    def _running_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _is_kafka_process(pid) else None

    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _require_tool(name: str, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BrokerError(f"`{name}` was not found on PATH; {hint}")
    return path


def _require_free_port(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise BrokerError(
                    f"port {port} on 127.0.0.1 is taken by another process; stop it or choose "
                    "other ports with DRIFTLOOP_LOCAL_KAFKA__PORT / DRIFTLOOP_LOCAL_KAFKA__CONTROLLER_PORT"
                ) from exc
            raise BrokerError(f"cannot bind 127.0.0.1:{port}: {exc}") from exc


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _serves_metadata(options: dict[str, Any]) -> bool:
    from streaming.kafka.clients import broker_answers

    options = dict(options)
    return broker_answers(",".join(options.pop("bootstrap_servers")), timeout_s=5.0, **options)


def _is_kafka_process(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"kafka.Kafka" in cmdline


def _terminate(pid: int, grace_s: float) -> None:
    """SIGTERM (Kafka's controlled shutdown), then SIGKILL after ``grace_s``."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return


def _alive(pid: int) -> bool:
    try:
        # Reap it if it is our child, so it does not linger as a zombie.
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log yet)"


class LocalCluster:
    """``nodes`` combined broker+controller nodes on loopback, one KRaft quorum.

    Node ``i`` (1-based) listens for clients on ``port + i - 1`` and for the quorum on
    ``controller_port + i - 1``; its files live in ``<home>/kafka/node-<i>/``. Internal topics
    are replicated on three nodes with ``min.insync.replicas`` 2, and so are topics created
    without a replication factor. The cluster id is kept in ``<home>/kafka/cluster.id``.
    """

    def __init__(
        self,
        home: Path,
        version: str,
        nodes: int = 3,
        port: int = 9092,
        controller_port: int = 9192,
        heap: str = "512m",
        scram_users: Mapping[str, str] | None = None,
        tls: bool = False,
        acls: bool = False,
    ) -> None:
        if nodes < 1:
            raise BrokerError(f"a cluster needs at least one node, not {nodes}")
        self.home = Path(home).absolute()
        self.version = version
        voters = {n: controller_port + n - 1 for n in range(1, nodes + 1)}
        common = {"heap": heap, "scram_users": scram_users, "tls": tls, "acls": acls, "voters": voters}
        self.nodes = [
            LocalBroker(
                self.home,
                version,
                port=port + n - 1,
                controller_port=voters[n],
                node_id=n,
                root=self.home / "kafka" / f"node-{n}",
                **common,  # type: ignore[arg-type]
            )
            for n in voters
        ]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.bootstrap_servers for node in self.nodes)

    def client_options(self, user: str | None = None) -> dict[str, Any]:
        """kafka-python options to connect to every node as ``user`` (default: the brokers' own)."""
        return {**self.nodes[0].client_options(user), "bootstrap_servers": self.bootstrap_servers.split(",")}

    def node(self, node_id: int) -> LocalBroker:
        return self.nodes[node_id - 1]

    def start(self, timeout_s: float = 120.0) -> list[BrokerStatus]:
        """Start every node that does not run (all launched before any is waited for: a node
        answers only once a quorum runs); return once each serves metadata."""
        cluster_id = self._cluster_id()
        for node in self.nodes:
            node.cluster_id = cluster_id
        launched = [(node, node.launch()) for node in self.nodes if not node.status().running]
        deadline = time.monotonic() + timeout_s
        try:
            for node, process in launched:
                node._wait_until_ready(process, max(1.0, deadline - time.monotonic()))
        except BrokerError:
            for node, process in launched:
                _terminate(process.pid, grace_s=10)
                node.pid_file.unlink(missing_ok=True)
            raise
        return self.status()

    def start_node(self, node_id: int, timeout_s: float = 120.0) -> BrokerStatus:
        """(Re)start one node of a running cluster, e.g. after :meth:`kill`."""
        node = self.node(node_id)
        node.cluster_id = self._cluster_id()
        return node.start(timeout_s)

    def kill(self, node_id: int) -> bool:
        """SIGKILL one node (the chaos tests' broker crash)."""
        return self.node(node_id).kill()

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop every node at once (SIGTERM to all: one by one, the last ones would wait for a
        quorum that is gone), SIGKILL what still runs after ``timeout_s``; False when none ran."""
        pids = []
        for node in self.nodes:
            with node._lock():
                pid = node._running_pid()
                node.pid_file.unlink(missing_ok=True)
            if pid is not None:
                pids.append(pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        for pid in pids:
            _terminate(pid, grace_s=timeout_s)  # already asked: waits, then SIGKILL
        return bool(pids)

    def status(self) -> list[BrokerStatus]:
        return [node.status() for node in self.nodes]

    def _cluster_id(self) -> str:
        path = self.home / "kafka" / "cluster.id"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(new_cluster_id())
        return path.read_text().strip()
