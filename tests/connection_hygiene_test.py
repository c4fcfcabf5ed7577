"""The exporter's HTTP server against clients that misbehave (issue 22): a half-sent request or
an idle connection is closed, a client that stops reading is dropped and cannot starve new
scrapes, malformed requests log one short debug line (rate-limited, no traceback), and the
`Server` header names only the product."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from aiohttp import web

from exporter import connection_hygiene
from exporter.config import parse_config
from exporter.connection_hygiene import PRODUCT, ClientErrorFilter, runner_options
from exporter.server import create_app
from exporter.service import Exporter

KEYS = 3000  # an exposition of about 0.5 MB: more than a stalled client's socket takes
IDLE_S = 0.5
STALL_S = 0.2
WRITE_TIMEOUT_S = 1.5


@dataclass
class Served:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@pytest.fixture
async def served(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Served]:
    monkeypatch.setattr(connection_hygiene, "STALL_S", STALL_S)
    monkeypatch.setattr(connection_hygiene, "WRITE_TIMEOUT_S", WRITE_TIMEOUT_S)
    exporter = Exporter(None)
    keys = "".join(f"  - {{name: key-{i}, api_key_env: K}}\n" for i in range(KEYS))
    exporter.switch_to(parse_config("keys:\n" + keys, "many.yml"))
    app = create_app(exporter, max_requests=4)
    runner = web.AppRunner(app, handle_signals=False, **runner_options(idle_timeout=IDLE_S))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    listener = site._server.sockets[0]  # type: ignore[union-attr]
    # Accepted sockets inherit this: a small send buffer, so that a client that does not read
    # stalls the server's writes (loopback's own would take the whole exposition at once).
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
    port = listener.getsockname()[1]
    try:
        yield Served("127.0.0.1", port)
    finally:
        await runner.cleanup()


async def raw_connection(
    served: Served, receive_buffer: int = 0
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (served.host, served.port))
    return await asyncio.open_connection(sock=sock, limit=1024)


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """True when the server closed the connection (EOF or reset) within `seconds`."""
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True


async def test_a_half_sent_request_is_closed_after_the_idle_timeout(served: Served) -> None:
    reader, writer = await raw_connection(served)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never finished
    await writer.drain()
    started = time.monotonic()
    assert await closed_within(reader, IDLE_S + 2)
    assert time.monotonic() - started < IDLE_S + 1.5
    writer.close()


async def test_an_idle_connection_is_closed_after_the_idle_timeout(served: Served) -> None:
    reader, writer = await raw_connection(served)
    assert await closed_within(reader, IDLE_S + 2)  # connected, and nothing sent
    writer.close()
    # A connection that answered a request is closed once idle, too.
    reader, writer = await raw_connection(served)
    writer.write(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await reader.readline()).startswith(b"HTTP/1.1 200")
    assert await closed_within(reader, IDLE_S + 2)
    writer.close()


async def test_clients_that_stop_reading_neither_starve_scrapes_nor_stay(served: Served) -> None:
    stalled = []
    for _ in range(4):  # as many as --web.max-requests: all of them would hold every place
        reader, writer = await raw_connection(served, receive_buffer=4096)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        stalled.append((reader, writer))
    await asyncio.sleep(STALL_S * 3)
    async with httpx.AsyncClient(timeout=10) as client:
        for _ in range(3):
            started = time.monotonic()
            response = await client.get(f"{served.url}/metrics")
            assert response.status_code == 200, response.text
            assert time.monotonic() - started < 2.0
            assert response.text.count("\n") > KEYS
    # Dropped after the write timeout: none stays open.
    await asyncio.sleep(WRITE_TIMEOUT_S + 0.5)
    for reader, writer in stalled:
        assert await closed_within(reader, 5.0)
        writer.close()


async def test_a_slow_reader_that_keeps_reading_gets_the_whole_exposition(served: Served) -> None:
    reader, writer = await raw_connection(served, receive_buffer=4096)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    received = 0
    while chunk := await reader.read(16384):
        received += len(chunk)
        await asyncio.sleep(0.001)  # slower than the server, but always reading
    writer.close()
    assert received > 500_000


async def test_malformed_requests_log_short_quiet_lines(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    for _ in range(30):
        reader, writer = await raw_connection(served)
        writer.write(b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n")
        assert (await reader.readline()).startswith(b"HTTP/1.")
        writer.close()
    assert not [r for r in caplog.records if r.levelno >= logging.INFO and r.exc_info], [
        r.getMessage() for r in caplog.records
    ]
    assert sum(len(r.getMessage()) for r in caplog.records if r.levelno >= logging.INFO) == 0


def test_client_error_lines_are_debug_without_traceback_and_rate_limited() -> None:
    logger = logging.getLogger("exporter.http.test")
    logger.setLevel(logging.DEBUG)
    kept: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            kept.append(record)

    logger.addHandler(Keep())
    logger.addFilter(ClientErrorFilter(lines_per_minute=5))
    connection_hygiene.http_log.setLevel(logging.DEBUG)
    try:
        for _ in range(100):
            try:
                raise ConnectionResetError("Connection lost")
            except ConnectionResetError:
                logger.exception("Error handling request from %s", "127.0.0.1")
    finally:
        connection_hygiene.http_log.setLevel(logging.NOTSET)
    assert len(kept) == 5
    for record in kept:
        assert record.levelno == logging.DEBUG and record.exc_info is None
        assert record.getMessage() == (
            "Error handling request from 127.0.0.1: ConnectionResetError: Connection lost"
        )


async def test_the_server_header_is_a_plain_product_name(served: Served) -> None:
    async with httpx.AsyncClient() as client:
        for path in ("/", "/metrics", "/-/healthy", "/nothing-here"):
            response = await client.get(f"{served.url}{path}")
            assert response.headers["server"] == PRODUCT, path
    # A request aiohttp refuses before any application code runs (the private hook's case).
    reader, writer = await raw_connection(served)
    writer.write(b"BREW / HTTP/1.1\r\n\r\n")
    head = await reader.read(1024)
    writer.close()
    assert head.startswith(b"HTTP/1.")
    assert f"\r\nServer: {PRODUCT}\r\n".encode() in head, head
