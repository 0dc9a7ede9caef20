"""A Prefect server (API and UI) for the demo's flow runs, started and stopped by the demo.

Without ``PREFECT_API_URL`` Prefect would start a temporary server of its own in a child
process of the same process group, without its UI, and a Ctrl-C in the terminal would
kill it with the demo: the flow run in progress, and Prefect's client flushing its events
at exit, would then wait on a dead server for minutes. This server runs in a session of
its own (a terminal's Ctrl-C does not reach it) on a free loopback port, with its own
Prefect home (a fresh SQLite database in the run's folder), and is stopped at interpreter
exit, after Prefect's client has delivered its last events. Its UI shows the run's flow
runs while the demo lasts.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from streaming.errors import PrefectServerError


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrefectServer:
    """``prefect server start`` on loopback; :attr:`api_url` is where clients reach it."""

    def __init__(self, home: Path, log: Path) -> None:
        self.home = home
        self.log = log
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.url}/api"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Spawn the server (it takes ~10 s to answer; see :meth:`wait_ready`)."""
        self.home.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "PREFECT_HOME": str(self.home),
            # The UI asks its API at this address (by default the standard port, 4200).
            "PREFECT_UI_API_URL": self.api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
        }
        env.pop("PREFECT_API_URL", None)
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "prefect",
                    "server",
                    "start",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        # atexit hooks run after threading's, which is where Prefect's client delivers its
        # last events: the server is still up for them.
        atexit.register(self.stop)

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if self._process is None or self._process.poll() is not None:
                raise PrefectServerError(f"the Prefect server exited; see {self.log}")
            try:
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise PrefectServerError(
                    f"the Prefect server did not answer within {timeout_s:.0f} s; see {self.log}"
                )
            time.sleep(0.25)

    def stop(self, timeout_s: float = 2.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout_s``: a server still starting up does not act on
        SIGTERM for seconds, and its database is the run's own, so a kill loses nothing."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout_s)
