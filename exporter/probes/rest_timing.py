"""The moments of a REST probe, stamped where they happen: in the connection and the protocol."""

from __future__ import annotations

import contextvars
import time

from aiohttp.client_proto import ResponseHandler


class ProbeClock:
    """The moments of one probe.

    The probe's duration runs to the last byte of the body coming in, so the parsing afterwards
    never counts in it. It starts when the probe began connecting if it opened its own
    connection (as any new client of OpenAI would: connect, with DNS, TCP and a proxy's CONNECT,
    and tls are also phases of their own), and on a kept-alive one when the request head left,
    so the wait for a pooled connection never counts either.
    """

    __slots__ = ("connect_started", "first", "last", "sent", "tcp_done", "tls_done", "tls_started")

    def __init__(self) -> None:
        self.connect_started: float | None = None
        self.tcp_done: float | None = None
        self.tls_started: float | None = None
        self.tls_done: float | None = None
        self.sent: float | None = None
        self.first: float | None = None  # first byte of the answer
        self.last: float | None = None  # last byte in so far

    def phases(self, *, connection: bool) -> dict[str, float]:
        phases: dict[str, float] = {}
        if connection and self.connect_started is not None:
            connected = self.tls_started if self.tls_started is not None else self.tcp_done
            if connected is not None:
                phases["connect"] = max(0.0, connected - self.connect_started)
            if self.tls_started is not None and self.tls_done is not None:
                phases["tls"] = max(0.0, self.tls_done - self.tls_started)
        if self.sent is not None and self.first is not None and self.first >= self.sent:
            phases["first_byte"] = self.first - self.sent
            if self.last is not None:
                phases["transfer"] = max(0.0, self.last - self.first)
        return phases


# The clock of the probe running in this task; the connector and the protocol stamp it.
CLOCK: contextvars.ContextVar[ProbeClock | None] = contextvars.ContextVar(
    "rest_probe_clock", default=None
)


class TimedResponseHandler(ResponseHandler):
    """aiohttp's protocol, stamping when the request leaves and when the answer's bytes arrive."""

    _clock: ProbeClock | None = None

    def start_timeout(self) -> None:
        # aiohttp calls this as it hands the request head of a GET to the transport; a proxy's
        # CONNECT comes through here too, and its answer is not the one timed.
        self.time_with(CLOCK.get())
        super().start_timeout()

    def time_with(self, clock: ProbeClock | None) -> None:
        """The request head leaves now; the answer's bytes stamp `clock` from here on."""
        if clock is not None:
            clock.sent, clock.first, clock.last = time.perf_counter(), None, None
        self._clock = clock

    def data_received(self, data: bytes) -> None:
        clock = self._clock
        if clock is not None and data:
            now = time.perf_counter()  # before parsing and decompressing: arrival, not work
            if clock.first is None:
                clock.first = now
            clock.last = now
        super().data_received(data)
