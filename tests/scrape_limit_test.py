"""`--web.max-requests`: past the limit a scrape gets 503 at once, and a slot frees when a scrape
ends. The real /metrics handler on a loopback socket, one scrape held by a reader that stops."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web

from exporter.server import create_app
from exporter.service import Exporter

KEYS = 2000  # about 400 KB of exposition: far more than the small socket buffers below hold
BUFFER = 4096  # each end's kernel buffer: a reader that stops holds the scrape in its writes


@pytest.fixture
async def limited_to_one(tmp_path: Path) -> AsyncIterator[int]:
    """An exporter with KEYS configured keys (none probed), served with --web.max-requests=1;
    yields its port."""
    os.environ["SCRAPE_LIMIT_TEST_KEY"] = "sk-proj-" + "A" * 48
    config = tmp_path / "config.yml"
    keys = [{"name": f"key-{n:05d}", "api_key_env": "SCRAPE_LIMIT_TEST_KEY"} for n in range(KEYS)]
    config.write_text(yaml.safe_dump({"defaults": {"probes": ["rest"]}, "keys": keys}))
    exporter = Exporter(str(config))
    exporter.read_and_switch()
    runner = web.AppRunner(create_app(exporter, max_requests=1))
    await runner.setup()
    listener = socket.socket()
    # Accepted connections inherit it: the server cannot park a whole exposition in the kernel.
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
    listener.bind(("127.0.0.1", 0))
    site = web.SockSite(runner, listener)
    await site.start()
    try:
        yield listener.getsockname()[1]
    finally:
        await runner.cleanup()
        del os.environ["SCRAPE_LIMIT_TEST_KEY"]


async def status_of(session: aiohttp.ClientSession, port: int) -> int:
    async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
        await response.read()
        return response.status


async def test_past_the_limit_a_scrape_gets_503_until_the_held_one_ends(
    limited_to_one: int,
) -> None:
    loop = asyncio.get_running_loop()
    held = socket.socket()
    held.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
    held.setblocking(False)
    await loop.sock_connect(held, ("127.0.0.1", limited_to_one))
    await loop.sock_sendall(
        held, b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    # The status line arrived: the held scrape is inside the handler, sending its body.
    assert (await loop.sock_recv(held, 15)).startswith(b"HTTP/1.1 200")
    async with aiohttp.ClientSession() as session:
        assert await status_of(session, limited_to_one) == 503
        assert await status_of(session, limited_to_one) == 503  # refused ones hold no slot
        received = 15
        while data := await loop.sock_recv(held, 65536):
            received += len(data)
        held.close()
        assert received > 50 * BUFFER  # the body really was larger than the buffers
        assert await status_of(session, limited_to_one) == 200
