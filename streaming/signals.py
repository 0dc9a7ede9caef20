"""Clean shutdown on SIGTERM and SIGINT for the long-running commands."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable


def stop_on_termination(stop: Callable[[], object]) -> None:
    """Call ``stop`` on SIGTERM or SIGINT (only the main thread may install handlers)."""
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop())
