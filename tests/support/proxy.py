"""Proxies on loopback for tests, and an environment with none of the machine's proxy settings."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest

from tests.harness import (
    LoopbackRelay,
)

PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def no_proxy_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the proxy variables a test sets count, whatever the machine's environment holds."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


class TunnelProxy(LoopbackRelay):
    """An HTTP proxy on loopback: CONNECT tunnels and absolute-form requests, each recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def connect_upstream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        head = await reader.readuntil(b"\r\n\r\n")
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        self.requests.append(f"{method} {target}")
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            upstream = await asyncio.open_connection(host.strip("[]"), int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            return upstream
        url = urlsplit(target)
        up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port)
        up_writer.write(head)  # absolute-form: HTTP/1.1 servers must accept it
        return up_reader, up_writer


class CountingRelay(LoopbackRelay):
    """Forwards every connection to 127.0.0.1:`upstream_port` and counts those it accepted."""

    def __init__(self, upstream_port: int, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self.upstream_port = upstream_port
        self.accepted = 0

    async def connect_upstream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self.accepted += 1
        return await asyncio.open_connection("127.0.0.1", self.upstream_port)
