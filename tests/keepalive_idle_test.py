"""A scraper's keep-alive connection lasts across every common scrape interval: the exporter
closes an idle connection only after Prometheus would have closed it itself (its pool keeps an
idle scrape connection 5 minutes), so a scrape never meets a connection the exporter closed and
never pays a new connection (and TLS handshake) for it.

The exporter's own server (`runner_options()` as `serve_until_stopped` uses them) over real
sockets, on a virtual clock (tests/support/virtual_clock.py): minutes of idling take
milliseconds, and the deadline is checked to the timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from exporter.config import parse_config
from exporter.connection_hygiene import IDLE_TIMEOUT_S, runner_options
from exporter.server import create_app
from exporter.service import Exporter
from tests.support.loopback_app import served_on_loopback
from tests.support.virtual_clock import run_virtual

# prometheus/common config.DefaultHTTPClientConfig: IdleConnTimeout 5 * time.Minute, the pool
# every Prometheus scrape client uses.
PROMETHEUS_IDLE_POOL_S = 300.0
# 15 s (the example configuration), 30 s, 1 m (Prometheus' default scrape_interval), 2 m, 5 m.
SCRAPE_INTERVALS_S = (15.0, 30.0, 60.0, 120.0, 300.0)
SCRAPE = b"GET /metrics HTTP/1.1\r\nHost: exporter\r\nAccept-Encoding: gzip\r\n\r\n"


@asynccontextmanager
async def exporter_server() -> AsyncIterator[int]:
    exporter = Exporter(None)
    keys = "".join(f"  - {{name: key-{i}, api_key_env: UNUSED}}\n" for i in range(3))
    exporter.switch_to(parse_config("keys:\n" + keys, "keys.yml"))
    app = create_app(exporter)
    async with served_on_loopback(app, handle_signals=False, **runner_options()) as port:
        yield port


async def answer(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """(status line, body) of one answer on a keep-alive connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(
        int(line.split(b":", 1)[1]) for line in lines if line.lower().startswith(b"content-length:")
    )
    return lines[0], await reader.readexactly(length)


def test_one_connection_serves_scrapes_at_every_common_interval() -> None:
    async def main() -> list[bytes]:
        statuses = []
        async with exporter_server() as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(SCRAPE)
            statuses.append((await answer(reader))[0])
            for interval in SCRAPE_INTERVALS_S:
                await asyncio.sleep(interval)  # idle, as between two scrapes
                writer.write(SCRAPE)  # on the same connection: it was not closed
                status, body = await answer(reader)
                assert body.startswith(b"\x1f\x8b")  # the whole gzipped exposition came
                statuses.append(status)
            writer.close()
        return statuses

    assert run_virtual(main()) == [b"HTTP/1.1 200 OK"] * (len(SCRAPE_INTERVALS_S) + 1)


def test_an_idle_connection_is_closed_after_prometheus_would_have_closed_it() -> None:
    async def main() -> tuple[float, bytes]:
        async with exporter_server() as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(SCRAPE)
            await answer(reader)
            answered = asyncio.get_running_loop().time()
            rest = await reader.read()  # until the exporter closes it
            closed = asyncio.get_running_loop().time()
            writer.close()
        return closed - answered, rest

    idle, rest = run_virtual(main())
    assert rest == b""  # closed without a word, between answers
    assert idle == pytest.approx(IDLE_TIMEOUT_S, abs=1e-3)
    assert idle > PROMETHEUS_IDLE_POOL_S  # the scraper's pool lets it go first
