"""A private CA and server certificate for loopback, as a fixture for a whole module."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from exporter.simulator import RunningSimulator, start_simulator


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
