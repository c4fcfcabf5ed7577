"""Exact delays: when a request arrived, and waking at a deadline to within tens of microseconds."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

# asyncio hands epoll its timeout in whole milliseconds, rounded up, so a plain asyncio.sleep
# wakes up to a millisecond late (more under load). The last stretch before a deadline is waited
# out by yielding to the loop until the clock says so: other connections are still served.
_YIELD_BEFORE_DEADLINE_S = 0.0012


class ArrivalClock(asyncio.Protocol):
    """Stands between a transport and aiohttp's protocol, noting when each piece of a request came.

    aiohttp starts a handler two turns of the loop after the request's bytes were read, and the
    simulator's own routing and bookkeeping come before the scenario too: hundreds of
    microseconds a delay would otherwise not count. The time kept is that of the latest bytes of
    the connection, which is the request's arrival as long as the client does not pipeline.
    """

    __slots__ = ("_arrivals", "_inner")

    def __init__(self, inner: asyncio.Protocol, arrivals: dict[object, float]) -> None:
        self._inner = inner
        self._arrivals = arrivals

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._arrivals[self._inner] = time.monotonic()
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._arrivals.pop(self._inner, None)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


ARRIVALS: web.AppKey[dict[Any, float]] = web.AppKey("simulator_arrivals", dict)


def arrived_at(request: web.Request) -> float:
    """time.monotonic() when this request's bytes were read; now, if no ArrivalClock saw them."""
    arrived = request.app[ARRIVALS].get(request.protocol)
    return time.monotonic() if arrived is None else arrived


async def sleep_until(deadline: float) -> None:
    """Return as soon as time.monotonic() reaches `deadline`, a few microseconds after it."""
    coarse = deadline - _YIELD_BEFORE_DEADLINE_S - time.monotonic()
    if coarse > 0:
        await asyncio.sleep(coarse)
    while time.monotonic() < deadline:  # noqa: ASYNC110 - waiting for a time, not an event
        await asyncio.sleep(0)
