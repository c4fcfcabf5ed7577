"""A private CA and server certificates for loopback (a fixture for a whole module), and two
CAs with a simulator each for the tests of a rotated CA file."""

from __future__ import annotations

import os
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from exporter.config import KeyConfig
from exporter.simulator import RunningSimulator, start_simulator
from tests.support.key_config import key_config


@dataclass(frozen=True)
class Tls:
    ca: trustme.CA
    ca_file: Path
    cert_file: Path
    key_file: Path


def make_tls(directory: Path) -> Tls:
    """A private CA and a server certificate for every loopback name."""
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1", "::1")
    tls = Tls(ca, directory / "ca.pem", directory / "server.pem", directory / "server.key")
    ca.cert_pem.write_to_path(str(tls.ca_file))
    cert.cert_chain_pems[0].write_to_path(str(tls.cert_file))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(tls.cert_file), append=True)
    cert.private_key_pem.write_to_path(str(tls.key_file))
    return tls


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return make_tls(tmp_path_factory.mktemp("tls"))


async def _tls_simulator(tls: Tls, host: str = "127.0.0.1") -> RunningSimulator:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    return await start_simulator(host, 0, context)


@pytest.fixture(name="simulator")
async def simulator_over_tls(tls: Tls) -> AsyncIterator[RunningSimulator]:
    """The simulator in-process over TLS, its certificate from `tls`: fixture `simulator`."""
    running = await _tls_simulator(tls)
    try:
        yield running
    finally:
        await running.close()


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    """A server TLS context with a certificate from `ca` for 127.0.0.1 and localhost."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


def replace_file(path: Path, data: bytes) -> None:
    """Writes `data` beside `path`, then renames it over: what a rotation does (a new inode)."""
    fresh = path.with_suffix(".new")
    fresh.write_bytes(data)
    os.replace(fresh, path)


@pytest.fixture
async def two_servers() -> AsyncIterator[tuple[trustme.CA, trustme.CA, list[RunningSimulator]]]:
    """Two CAs and a simulator over TLS with a certificate from each, in that order."""
    first, second = trustme.CA(), trustme.CA()
    servers = [
        await start_simulator("127.0.0.1", 0, server_context(first)),
        await start_simulator("127.0.0.1", 0, server_context(second)),
    ]
    try:
        yield first, second, servers
    finally:
        for server in servers:
            await server.close()


def config_for(server: RunningSimulator, ca_file: Path) -> KeyConfig:
    """A key `rotated` on `server` that trusts the roots in `ca_file`."""
    return key_config("rotated", base_url=server.base_url, timeout=5.0, tls_ca_file=str(ca_file))
