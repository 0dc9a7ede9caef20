"""Waiting for a condition in tests: readiness by observation, never a fixed sleep.

Every wait in the suite goes through :func:`eventually`: it checks a condition that some
public state (a topic, a group's committed offsets, a counter, a process' log) makes true,
and fails with ``what`` when the deadline passes first. The pause between checks only
paces the polling; nothing relies on its length.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(
    check: Callable[[], T | None],
    what: str | Callable[[], str],
    timeout_s: float = 60.0,
    every_s: float = 0.2,
    alive: Callable[[], None] | None = None,
) -> T:
    """Call ``check`` until it returns something truthy, and return that.

    ``alive`` (if given) runs before each check and raises when waiting is pointless (the
    process under test exited). Raises AssertionError naming ``what`` (a text, or a function
    giving one, called then: the state to show) after ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if alive is not None:
            alive()
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"{said}: not within {timeout_s:.0f} s")
        time.sleep(every_s)
