"""An asyncio loop on a virtual clock: when nothing is ready, time jumps to the next timer.

The scheduler reads only `loop.time()` and sets only `call_at` timers, so on this loop a test of
intervals and retries checks exact times, takes milliseconds, and cannot flake on a busy machine.
Real sockets still work: the selector is polled without blocking before time moves on.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _JumpingSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """Never sleeps: a wait for `timeout` seconds moves the loop's clock on by that much."""

    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualClockLoop | None = None

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = super().select(0)
        if ready or timeout is None or timeout <= 0:
            return ready  # type: ignore[no-any-return]
        assert self.loop is not None
        self.loop.advance(timeout)
        return ready  # type: ignore[no-any-return]


class VirtualClockLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        selector = _JumpingSelector()
        super().__init__(selector)
        selector.loop = self
        self._now = 0.0

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds


def run_virtual(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, on a virtual clock starting at 0."""
    with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
        return runner.run(main)
