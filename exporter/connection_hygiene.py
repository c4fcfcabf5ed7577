"""The HTTP server's connections kept cheap whatever a client does: a request head or an idle
connection has a deadline, a scrape whose client stops reading is dropped, stalled scrapes
cannot starve new ones, client errors are quiet debug lines, and `Server` names only the product.

One private name of aiohttp is used, and only here: `aiohttp.web_response.SERVER_SOFTWARE`, the
default `Server` header, which aiohttp also sends on the 400 answers it makes before any
application hook runs. tests/connection_hygiene_test.py fails plainly if an upgrade moves it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any

from aiohttp import web, web_response
from aiohttp.http_exceptions import HttpProcessingError

PRODUCT = "openai-key-exporter"
# aiohttp's keep-alive deadline runs from a connection's start and from each answer to the next
# complete request head: it bounds a half-sent head and an idle connection alike. It outlasts
# Prometheus' own pool of idle scrape connections (5 min, prometheus/common's IdleConnTimeout), so
# at any scrape interval up to that the scraper reuses its connection and closes it first: a
# server that closed sooner would cost every scrape at 30 s or 1 m (Prometheus' default) a new
# connection, TLS handshake included. Prometheus' own server bounds both with 5 min
# (--web.read-timeout); Go exporters such as node_exporter bound neither.
IDLE_TIMEOUT_S = 330.0
STALL_S = 1.0  # a write the client has not taken for this long: the scrape stalls
WRITE_TIMEOUT_S = 10.0  # ... and for this long: it is dropped (Prometheus' default scrape timeout)
CLIENT_ERROR_LINES_PER_MINUTE = 10

http_log = logging.getLogger("exporter.http")


def runner_options(idle_timeout: float = IDLE_TIMEOUT_S) -> dict[str, Any]:
    """Keyword arguments for web.AppRunner that apply this module's rules to every connection."""
    web_response.SERVER_SOFTWARE = PRODUCT  # type: ignore[attr-defined]  # the private name above
    return {"keepalive_timeout": idle_timeout, "logger": http_log, "access_log": None}


def plain_server_header(app: web.Application) -> None:
    """`Server: openai-key-exporter` on every answer the application makes (no versions)."""

    async def set_server(_: web.Request, response: web.StreamResponse) -> None:
        response.headers["Server"] = PRODUCT

    app.on_response_prepare.append(set_server)


class ClientErrorFilter(logging.Filter):
    """aiohttp logs each malformed request or vanished client as an error with a traceback
    (about 850 bytes): anyone could fill the disk. A client's fault becomes one short debug
    line; every line from the server logger shares a budget per minute, and the first line
    after a full minute says how many were left out."""

    def __init__(self, lines_per_minute: int = CLIENT_ERROR_LINES_PER_MINUTE) -> None:
        super().__init__()
        self._budget = lines_per_minute
        self._window_start = -60.0
        self._used = 0
        self._left_out = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True  # aiohttp's own debug lines: only with --log.level=debug anyway
        error = record.exc_info[1] if record.exc_info else None
        clients_fault = isinstance(error, HttpProcessingError | ConnectionError)
        if clients_fault and not http_log.isEnabledFor(logging.DEBUG):
            return False
        now = time.monotonic()
        if now - self._window_start >= 60.0:
            self._window_start, self._used = now, 0
            if self._left_out:
                record.msg = f"{record.msg} (and {self._left_out} lines left out in a minute)"
                self._left_out = 0
        if self._used >= self._budget:
            self._left_out += 1
            return False
        self._used += 1
        if clients_fault:
            detail = getattr(error, "message", "") or str(error)
            record.msg = f"{record.getMessage()}: {type(error).__name__}: {detail}"[:300]
            record.args = None
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            record.exc_info, record.exc_text = None, None
        return True


http_log.addFilter(ClientErrorFilter())


class ScrapeLimiter:
    """--web.max-requests, counting only scrapes that make progress.

    A scrape whose client has not taken a write for STALL_S moves aside, to a pool as large as
    the limit (so memory stays bounded), freeing its place for a new scrape; with that pool
    full, it keeps its place. Any scrape is dropped after WRITE_TIMEOUT_S without progress, so
    no place is held longer. A limit of 0 limits nothing but still drops a client that stopped
    reading.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self.stalled = 0

    def enter(self) -> Scrape | None:
        """A place for a new scrape, or None when `limit` scrapes are making progress."""
        if self.limit > 0 and self.active >= self.limit:
            return None
        self.active += 1
        return Scrape(self)


class Scrape:
    __slots__ = ("_limiter", "_stalled")

    def __init__(self, limiter: ScrapeLimiter) -> None:
        self._limiter = limiter
        self._stalled = False

    def __enter__(self) -> Scrape:
        return self

    def __exit__(self, *_: object) -> None:
        if self._stalled:
            self._limiter.stalled -= 1
        else:
            self._limiter.active -= 1

    async def write(self, request: web.Request, response: web.StreamResponse, data: Any) -> bool:
        """Send `data`; False when the client went away or was dropped (the scrape is over)."""
        return await self._send(request, response.write(data))

    async def finish(self, request: web.Request, response: web.StreamResponse) -> None:
        """End the response: its last bytes are bounded by the same timeout as the others."""
        await self._send(request, response.write_eof())

    async def _send(self, request: web.Request, sending: Awaitable[None]) -> bool:
        stall = asyncio.get_running_loop().call_later(STALL_S, self._stall)
        try:
            async with asyncio.timeout(WRITE_TIMEOUT_S):
                await sending
        except TimeoutError:
            _drop(request)
            return False
        except ConnectionError:
            return False
        finally:
            stall.cancel()
        return True

    def _stall(self) -> None:
        if self._stalled:
            return
        limiter = self._limiter
        if limiter.limit > 0 and limiter.stalled >= limiter.limit:
            return  # no room aside: it keeps its place until the write timeout
        self._stalled = True
        limiter.active -= 1
        limiter.stalled += 1


def _drop(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()
