"""Waiting on an event a test can observe, never on a wall-clock guess."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.harness import Process


def eventually(check: Callable[[], None], timeout: float = 15.0, every: float = 0.25) -> None:
    """Run an assertion until it passes: probes on a loaded machine can answer late once."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
        time.sleep(every)


def wait_until(
    check: Callable[[], Any],
    timeout: float,
    what: str,
    every: float = 0.1,
    log: Process | None = None,
) -> Any:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    tail = f"\nexporter log tail:\n{log.output()[-3000:]}" if log else ""
    pytest.fail(f"{what}: not within {timeout}s (last: {last!r}){tail}")
