"""A REST probe on a connection of its own, opened with asyncio rather than aiohttp's client.

Every tenth probe of a key, and its first, opens its own connection so that connect and TLS
stay measured. Around such a probe aiohttp's client (session, request, connector, happy
eyeballs) cost 0.5-0.9 ms of CPU more than the connection itself, a fifth of the probe; here
asyncio opens TCP and starts TLS on it, the request head is written in one piece, and the
answer is read by aiohttp's own protocol and C parser with the parameters its client gives
them, so an answer or a failure reads the same on either path (tests/own_connection_test.py
holds them side by side). Through a proxy, aiohttp's client does it all (rest.py).
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import time
from collections.abc import Mapping

import aiohappyeyeballs
import aiohttp
import yarl
from aiohttp.helpers import is_ip_address
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.http_parser import RawResponseMessage

from exporter.probes.rest_answer import (
    classify_exception,
    failure,
    from_response,
    read_capped,
    timed_out,
)
from exporter.probes.rest_timing import ProbeClock, TimedResponseHandler
from exporter.result import ProbeResult

_READ_BUFSIZE = 2**16  # aiohttp's client default
_HAPPY_EYEBALLS_DELAY_S = 0.25  # aiohttp's default (RFC 8305 suggests 0.25 s too)
_SHUTDOWN_TIMEOUT_S = 5.0
# Control characters but tab, and DEL: aiohttp's rule (RFC 9110 5.5), so both paths refuse alike.
_FORBIDDEN_IN_HEADERS = re.compile("[\x00-\x08\x0a-\x1f\x7f]")


async def probe_on_own_connection(
    url: yarl.URL,
    headers: Mapping[str, str],
    context: ssl.SSLContext | None,
    timeout: float,  # noqa: ASYNC109 (the probe's own budget, as in rest.py)
    key: str,
    models: frozenset[str] = frozenset(),
) -> ProbeResult:
    """`GET url` on a new connection (TLS when `context` is given), closed after the answer."""
    clock = ProbeClock()
    started = time.perf_counter()
    connection: _Connection | None = None
    read_whole = False
    try:
        async with asyncio.timeout(timeout):
            head = request_head(url, headers)
            connection = await _Connection.open(url, context, clock)
            message, payload = await connection.exchange(head, clock)
            body, oversize = await read_capped(payload)
            read_whole = not oversize
    except TimeoutError as error:
        return timed_out(error, clock, started, True, timeout, key)
    except (aiohttp.ClientError, HttpProcessingError, OSError, ValueError) as error:
        return failure(clock, started, True, *classify_exception(error, key))
    finally:
        if connection is not None:
            connection.close(politely=read_whole)
    finished = clock.last if clock.last is not None else time.perf_counter()
    began = clock.connect_started if clock.connect_started is not None else started
    phases = clock.phases(connection=True)
    return from_response(
        message.code, message.headers, body, oversize, finished - began, phases, key, models
    )


def request_head(url: yarl.URL, headers: Mapping[str, str]) -> bytes:
    """The request line and headers; a value with a control character is never sent."""
    lines = [
        f"GET {url.raw_path_qs} HTTP/1.1",
        f"Host: {url.host_port_subcomponent}",
        "Accept: */*",
        "Accept-Encoding: gzip, deflate",  # what the parser decodes without optional libraries
    ]
    for name, value in headers.items():
        if _FORBIDDEN_IN_HEADERS.search(name) or _FORBIDDEN_IN_HEADERS.search(value):
            raise ValueError(f"the {name} header holds a control character: it cannot be sent")
        lines.append(f"{name}: {value}")
    lines.append("Connection: close\r\n\r\n")
    return "\r\n".join(lines).encode("utf-8")


class _Connection:
    """One TCP connection, TLS started on it when asked, with aiohttp's protocol reading it."""

    __slots__ = ("protocol", "transport")

    def __init__(self, transport: asyncio.Transport, protocol: TimedResponseHandler) -> None:
        self.transport = transport
        self.protocol = protocol

    @classmethod
    async def open(
        cls, url: yarl.URL, context: ssl.SSLContext | None, clock: ProbeClock
    ) -> _Connection:
        loop = asyncio.get_running_loop()
        protocol = TimedResponseHandler(loop)
        host, port = url.raw_host, url.port
        if host is None or port is None:
            raise ConnectionError(f"{url} names no host to connect to")
        clock.connect_started = time.perf_counter()  # DNS is part of connect
        try:
            sock = await _connect(loop, host, port)
        except OSError as error:
            # The bare error names neither host nor port ("Name or service not known").
            where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            detail = error.strerror or str(error)
            raise ConnectionError(f"cannot connect to {where}: {detail}") from error
        tcp, _ = await loop.create_connection(
            (lambda: protocol) if context is None else asyncio.Protocol, sock=sock
        )
        clock.tcp_done = time.perf_counter()
        if context is None:
            return cls(tcp, protocol)
        clock.tls_started = time.perf_counter()
        # A name's trailing dot is for DNS; certificates never hold it (aiohttp drops it too).
        tls = await loop.start_tls(
            tcp,
            protocol,
            context,
            server_hostname=host.rstrip("."),
            # A peer that never answers close_notify holds the socket this long after the probe.
            ssl_shutdown_timeout=_SHUTDOWN_TIMEOUT_S,
        )
        clock.tls_done = time.perf_counter()
        if tls is None:  # the loop closed the connection under us
            raise aiohttp.ServerDisconnectedError("closed during the TLS handshake")
        protocol.connection_made(tls)  # start_tls leaves this to the caller
        return cls(tls, protocol)

    async def exchange(
        self, head: bytes, clock: ProbeClock
    ) -> tuple[RawResponseMessage, aiohttp.StreamReader]:
        protocol = self.protocol
        protocol.set_response_params(read_until_eof=True, read_bufsize=_READ_BUFSIZE)
        protocol.time_with(clock)
        self.transport.write(head)
        while True:
            message, payload = await protocol.read()
            # 1xx answers are interim (101 excepted): the answer comes after, as aiohttp reads it.
            if not 100 <= message.code <= 199 or message.code == 101:
                return message, payload

    def close(self, *, politely: bool) -> None:
        # A peer whose answer was read whole gets TLS's close_notify (and _SHUTDOWN_TIMEOUT_S to
        # answer it); one that failed, hung or is still sending is dropped at once.
        if politely:
            self.transport.close()
        else:
            self.transport.abort()


async def _connect(loop: asyncio.AbstractEventLoop, host: str, port: int) -> socket.socket:
    """A connected socket: the name resolved as aiohttp resolves it, addresses raced as it races
    them. aiohappyeyeballs closes every attempt that loses or is cancelled; asyncio's own race
    (3.11) left a connected socket open when cancelled at the wrong moment."""
    if is_ip_address(host):
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    else:
        infos = await loop.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_ADDRCONFIG
        )
    return await aiohappyeyeballs.start_connection(
        infos, happy_eyeballs_delay=_HAPPY_EYEBALLS_DELAY_S
    )
