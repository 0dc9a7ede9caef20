"""`driftloop kafka start | status | stop` against a real broker built from Maven Central jars."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from streaming.kafka.clients import broker_answers
from tests.conftest import free_port

pytestmark = pytest.mark.integration

DRIFTLOOP = [sys.executable, "-m", "streaming.cli"]


def _run(env: dict[str, str], *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DRIFTLOOP, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture
def broker_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DRIFTLOOP_HOME=str(tmp_path / "home"),
        DRIFTLOOP_LOCAL_KAFKA__PORT=str(free_port()),
        DRIFTLOOP_LOCAL_KAFKA__CONTROLLER_PORT=str(free_port()),
    )
    return env


def test_start_status_start_again_stop(broker_env: dict[str, str]) -> None:
    port = broker_env["DRIFTLOOP_LOCAL_KAFKA__PORT"]
    try:
        started = _run(broker_env, "kafka", "start")
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"up at 127.0.0.1:{port}" in started.stdout
        assert broker_answers(f"127.0.0.1:{port}")

        status = _run(broker_env, "kafka", "status")
        assert status.returncode == 0
        assert "server.log" in status.stdout
        log_file = Path(status.stdout.split("log: ")[1].strip())
        assert "Kafka Server started" in log_file.read_text()

        pid = status.stdout.split("(pid ")[1].split(")")[0]
        again = _run(broker_env, "kafka", "start")
        assert again.returncode == 0
        assert f"(pid {pid})" in again.stdout, "a second start must not start a second broker"
        brokers = subprocess.run(
            ["pgrep", "-f", f"{broker_env['DRIFTLOOP_HOME']}/kafka/server.properties"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert len(brokers.stdout.split()) == 1
    finally:
        stopped = _run(broker_env, "kafka", "stop")
    assert stopped.returncode == 0
    assert stopped.stdout.strip() == "Kafka stopped"
    assert not broker_answers(f"127.0.0.1:{port}", timeout_s=2)

    down = _run(broker_env, "kafka", "status")
    assert down.returncode == 1
    assert "not running" in down.stdout
    again = _run(broker_env, "kafka", "stop")
    assert (again.returncode, again.stdout.strip()) == (0, "Kafka was not running")


def test_a_taken_port_is_a_clear_error(broker_env: dict[str, str]) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(broker_env["DRIFTLOOP_LOCAL_KAFKA__PORT"])))
        squatter.listen()
        result = _run(broker_env, "kafka", "start")
    assert result.returncode == 1
    assert f"port {broker_env['DRIFTLOOP_LOCAL_KAFKA__PORT']} on 127.0.0.1 is taken" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("tool", ["java", "mvn"])
def test_a_missing_tool_is_a_clear_error(broker_env: dict[str, str], tmp_path: Path, tool: str) -> None:
    # A PATH with python and the other tool, but not this one.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in {"java", "mvn"} - {tool}:
        found = shutil.which(name)
        assert found, f"{name} is needed for this test"
        (bin_dir / name).symlink_to(found)
    broker_env["PATH"] = str(bin_dir)
    result = _run(broker_env, "kafka", "start")
    assert result.returncode == 1
    assert f"`{tool}` was not found on PATH" in result.stderr
