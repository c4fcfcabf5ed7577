"""The moments of a REST probe, stamped through public hooks only.

aiohttp's tracing (`TraceConfig`) says when a connection was asked for and made, when the request
head left and when the answer's head was read. The TLS handshake inside the connection is
stamped by the ssl object asyncio drives it with: `SSLContext.sslobject_class` is the ssl
module's documented way to supply that object, so connect and tls stay two phases without
reaching into aiohttp's connector.
"""

from __future__ import annotations

import contextvars
import ssl
import time
from types import SimpleNamespace

import aiohttp


class ProbeClock:
    """The moments of one probe.

    The probe's duration runs to the last byte of the body read, so parsing it afterwards never
    counts. On a connection the probe opened it is connect (with DNS, TCP and a proxy's
    CONNECT), tls and the request, as any new client of OpenAI would wait for them; on a
    kept-alive one the request alone, from its head leaving (see `duration`).
    """

    __slots__ = ("connect_started", "connected", "first", "last", "sent", "tls_done", "tls_started")

    def __init__(self) -> None:
        self.connect_started: float | None = None
        self.connected: float | None = None  # TCP, and TLS on it, ready for the request
        self.tls_started: float | None = None
        self.tls_done: float | None = None
        self.sent: float | None = None
        self.first: float | None = None  # the answer's head read
        self.last: float | None = None  # the answer's body read

    def phases(self, *, connection: bool) -> dict[str, float]:
        phases: dict[str, float] = {}
        if connection and self.connect_started is not None:
            connected = self.tls_started if self.tls_started is not None else self.connected
            if connected is not None:
                phases["connect"] = max(0.0, connected - self.connect_started)
            if self.tls_started is not None and self.tls_done is not None:
                phases["tls"] = max(0.0, self.tls_done - self.tls_started)
        if self.sent is not None and self.first is not None and self.first >= self.sent:
            phases["first_byte"] = self.first - self.sent
            if self.last is not None:
                phases["transfer"] = max(0.0, self.last - self.first)
        return phases

    def duration(self, finished: float, started: float, *, connection: bool) -> float:
        """Connect and tls when the probe opened its connection, then the request: from its head
        leaving to `finished`. The exporter's own work between the handshake and the request
        (aiohttp preparing it, other probes' turns on the loop) is nobody's latency but ours, so
        it never counts, as the wait for a pooled connection never does. `started`: when the
        probe began, for a request whose head was never seen leaving."""
        request_began = self.sent if self.sent is not None else started
        if not connection or self.connect_started is None:
            return finished - request_began
        ready = self.tls_done if self.tls_done is not None else self.connected
        if ready is None or self.sent is None:
            return finished - self.connect_started
        return (ready - self.connect_started) + (finished - self.sent)


# The clock of the REST probe running in this task: the TLS handshake of a connection it opens
# stamps it (asyncio runs the handshake in a copy of the context that opened the connection).
CLOCK: contextvars.ContextVar[ProbeClock | None] = contextvars.ContextVar(
    "rest_probe_clock", default=None
)


class TimedSSLObject(ssl.SSLObject):
    """The TLS state asyncio drives; a handshake stamps the running REST probe's clock, if any."""

    def do_handshake(self) -> None:
        clock = CLOCK.get()
        if clock is None:
            return super().do_handshake()
        if clock.tls_started is None:
            clock.tls_started = time.perf_counter()  # the ClientHello leaves: TCP is up
        super().do_handshake()  # raises SSLWantReadError until the server's last flight is in
        clock.tls_done = time.perf_counter()
        return None


def _clock(context: SimpleNamespace) -> ProbeClock | None:
    clock = context.trace_request_ctx
    return clock if isinstance(clock, ProbeClock) else None


async def _connection_create_start(
    _: aiohttp.ClientSession,
    context: SimpleNamespace,
    __: aiohttp.TraceConnectionCreateStartParams,
) -> None:
    if (clock := _clock(context)) is not None:
        clock.connect_started = time.perf_counter()  # DNS is part of connect


async def _connection_create_end(
    _: aiohttp.ClientSession,
    context: SimpleNamespace,
    __: aiohttp.TraceConnectionCreateEndParams,
) -> None:
    if (clock := _clock(context)) is not None:
        clock.connected = time.perf_counter()


async def _request_headers_sent(
    _: aiohttp.ClientSession,
    context: SimpleNamespace,
    params: aiohttp.TraceRequestHeadersSentParams,
) -> None:
    # A proxy's CONNECT is part of connect; the answer timed is the one to the GET.
    if (clock := _clock(context)) is not None and params.method != "CONNECT":
        clock.sent, clock.first, clock.last = time.perf_counter(), None, None


async def _request_end(
    _: aiohttp.ClientSession,
    context: SimpleNamespace,
    __: aiohttp.TraceRequestEndParams,
) -> None:
    if (clock := _clock(context)) is not None:
        clock.first = time.perf_counter()


def probe_tracing() -> aiohttp.TraceConfig:
    """Tracing that stamps the ProbeClock a request carries as its `trace_request_ctx`."""
    tracing = aiohttp.TraceConfig()
    tracing.on_connection_create_start.append(_connection_create_start)
    tracing.on_connection_create_end.append(_connection_create_end)
    tracing.on_request_headers_sent.append(_request_headers_sent)
    tracing.on_request_end.append(_request_end)
    return tracing
