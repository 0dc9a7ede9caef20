"""driftloop commands as real processes, for the tests that run them as a user does."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streaming.config import Settings, child_env
from tests.waiting import eventually


class Command:
    """`python -m streaming.cli ARGS` with the settings' environment, stderr to a file."""

    def __init__(self, settings: Settings, log: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.log = log
        self._out = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streaming.cli", *args],
            env={**child_env(settings), **(env or {})},
            stdout=subprocess.PIPE,
            stderr=self._out,
        )

    def wait_for(self, condition: Callable[[], bool], what: str, timeout_s: float = 120) -> None:
        """Until ``condition()`` holds; fails at once if the process exits meanwhile."""
        try:
            eventually(condition, what, timeout_s, every_s=0.3, alive=self.alive)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.tail()}") from None

    def alive(self) -> None:
        assert self.process.poll() is None, f"exited {self.process.returncode}:\n{self.tail()}"

    def stop(self) -> tuple[int, str]:
        """SIGTERM; the exit code and stdout."""
        self.process.send_signal(signal.SIGTERM)
        stdout, _ = self.process.communicate(timeout=90)
        self._out.close()
        return self.process.returncode, stdout.decode()

    def logged(self) -> list[dict[str, Any]]:
        """driftloop's log lines (JSON objects) so far."""
        entries = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                entries.append(json.loads(line))
        return entries

    def tail(self) -> str:
        return self.log.read_text()[-4000:]
