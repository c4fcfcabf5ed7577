"""The CA file: added to the system's roots, read again when it changes (a rotated corporate root
needs no restart), its last good contents kept while it is gone or broken. Real files, real
TLS servers, both probes."""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme

from exporter.classify import Result
from exporter.config import KeyConfig
from exporter.keys import KeySource, SourceKind
from exporter.probes.realtime import RealtimeProber
from exporter.probes.rest import RestProber
from exporter.probes.tls import tls_context
from exporter.simulator import RunningSimulator, make_key, start_simulator
from tests.rest_connection_test import no_proxy_from_outside

__all__ = ["no_proxy_from_outside"]  # a fixture, shared with that module


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


def replace_file(path: Path, data: bytes) -> None:
    """Written beside, then renamed over: what a secret rotation does (a new inode)."""
    fresh = path.with_suffix(".new")
    fresh.write_bytes(data)
    os.replace(fresh, path)


@pytest.fixture
async def two_servers() -> AsyncIterator[tuple[trustme.CA, trustme.CA, list[RunningSimulator]]]:
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
    return KeyConfig(
        name="rotated",
        source=KeySource(SourceKind.ENV, "UNUSED"),
        base_url=server.base_url,
        timeout=5.0,
        tls_ca_file=str(ca_file),
    )


async def results(server: RunningSimulator, ca_file: Path) -> dict[str, Result]:
    config, key = config_for(server, ca_file), make_key("ok")
    rest, realtime = RestProber(), RealtimeProber()
    try:
        return {
            "own connection": (await rest.probe_through(config, key, fresh=True)).result,
            "pooled": (await rest.probe_through(config, key, fresh=False)).result,
            "realtime": (await realtime.probe(config, key)).result,
        }
    finally:
        await rest.aclose()
        await realtime.aclose()


ALL_OK = {"own connection": Result.OK, "pooled": Result.OK, "realtime": Result.OK}
ALL_TLS_ERRORS = {name: Result.TLS_ERROR for name in ALL_OK}


async def test_a_rotated_ca_file_is_trusted_without_a_restart(
    tmp_path: Path, two_servers: tuple[trustme.CA, trustme.CA, list[RunningSimulator]]
) -> None:
    first, second, (first_server, second_server) = two_servers
    ca_file = tmp_path / "corporate-root.pem"
    ca_file.write_bytes(first.cert_pem.bytes())
    assert await results(first_server, ca_file) == ALL_OK
    assert await results(second_server, ca_file) == ALL_TLS_ERRORS

    replace_file(ca_file, second.cert_pem.bytes())
    assert await results(second_server, ca_file) == ALL_OK
    assert await results(first_server, ca_file) == ALL_TLS_ERRORS


async def test_a_pooled_session_follows_the_rotation(
    tmp_path: Path, two_servers: tuple[trustme.CA, trustme.CA, list[RunningSimulator]]
) -> None:
    """The same prober, its pool already open: new connections use the new roots."""
    first, second, (first_server, second_server) = two_servers
    ca_file = tmp_path / "corporate-root.pem"
    ca_file.write_bytes(first.cert_pem.bytes())
    prober, key = RestProber(), make_key("ok")
    try:
        pooled = await prober.probe_through(config_for(first_server, ca_file), key, fresh=False)
        assert pooled.result is Result.OK, pooled
        replace_file(ca_file, second.cert_pem.bytes())
        after = await prober.probe_through(config_for(second_server, ca_file), key, fresh=False)
        assert after.result is Result.OK, after
    finally:
        await prober.aclose()


def test_the_context_is_built_again_only_when_the_file_changes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = trustme.CA(), trustme.CA()
    ca_file = tmp_path / "root.pem"
    ca_file.write_bytes(first.cert_pem.bytes())
    original = tls_context(str(ca_file))
    assert tls_context(str(ca_file)) is original  # one stat per call, no parsing

    replace_file(ca_file, second.cert_pem.bytes())
    rotated = tls_context(str(ca_file))
    assert rotated is not original

    caplog.set_level(logging.INFO, logger="exporter.tls")
    caplog.clear()
    replace_file(ca_file, b"-----BEGIN CERTIFICATE-----\nMIIB")  # caught half-written
    assert tls_context(str(ca_file)) is rotated
    assert tls_context(str(ca_file)) is rotated
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1, caplog.records  # once per change of the file, not per probe

    ca_file.unlink()
    assert tls_context(str(ca_file)) is rotated

    ca_file.write_bytes(first.cert_pem.bytes())
    assert tls_context(str(ca_file)) not in (original, rotated)


def test_a_ca_file_broken_from_the_start_is_an_error(tmp_path: Path) -> None:
    ca_file = tmp_path / "root.pem"
    ca_file.write_text("not a certificate\n")
    with pytest.raises(ssl.SSLError):
        tls_context(str(ca_file))
