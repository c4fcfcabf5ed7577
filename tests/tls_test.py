"""The CA file: added to the system's roots, read again when it changes (a rotated corporate root
needs no restart), its last good contents kept while it is gone or broken. Real files, real
TLS servers, both probes."""

from __future__ import annotations

import logging
import os
import ssl
from pathlib import Path

import pytest
import trustme

from exporter.classify import Result
from exporter.probes import tls
from exporter.probes.realtime import RealtimeProber
from exporter.probes.rest import RestProber
from exporter.probes.tls import CaFileUnreadable, tls_context
from exporter.simulator import RunningSimulator, make_key
from tests.support.proxy import no_proxy_from_outside
from tests.support.rest_paths import rest_both_ways
from tests.support.tls import config_for, replace_file, two_servers

__all__ = ["no_proxy_from_outside", "two_servers"]  # fixtures from tests/support


async def results(server: RunningSimulator, ca_file: Path) -> dict[str, Result]:
    config, key = config_for(server, ca_file), make_key("ok")
    own, pooled = await rest_both_ways(config, key)
    realtime = RealtimeProber()
    try:
        found = {"own connection": own.result, "pooled": pooled.result}
        return {**found, "realtime": (await realtime.probe(config, key)).result}
    finally:
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
        pooled = await prober.probe_on_connection(
            config_for(first_server, ca_file), key, fresh=False
        )
        assert pooled.result is Result.OK, pooled
        replace_file(ca_file, second.cert_pem.bytes())
        after = await prober.probe_on_connection(
            config_for(second_server, ca_file), key, fresh=False
        )
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


def test_a_ca_file_broken_from_the_start_is_an_error_read_again_later(tmp_path: Path) -> None:
    ca_file = tmp_path / "root.pem"
    ca_file.write_text("not a certificate\n")
    with pytest.raises(CaFileUnreadable) as caught:
        tls_context(str(ca_file))
    assert str(ca_file) in str(caught.value)
    assert "not a certificate" not in str(caught.value)  # never the contents
    with pytest.raises(CaFileUnreadable):
        tls_context(str(ca_file))  # from memory until the file changes or the retry is due

    good = trustme.CA().cert_pem.bytes()
    replace_file(ca_file, good)
    assert isinstance(tls_context(str(ca_file)), ssl.SSLContext)


def test_a_touched_file_keeps_its_context_and_a_chmod_counts_as_a_change(tmp_path: Path) -> None:
    """Same contents, new mtime: no new context (no session retired for nothing). A fix that
    changes only the inode's metadata (chmod, chown) moves its ctime, so it is seen."""
    first = trustme.CA().cert_pem.bytes()
    ca_file = tmp_path / "root.pem"
    ca_file.write_bytes(first)
    context = tls_context(str(ca_file))
    os.utime(ca_file, ns=(1_000_000_000, 1_000_000_000))
    assert tls_context(str(ca_file)) is context

    status = ca_file.stat()
    ca_file.write_bytes(first[:100])  # cut short, in place
    assert tls_context(str(ca_file)) is context  # last good kept
    ca_file.write_bytes(first)  # fixed in place: same inode, size and mtime as before
    os.utime(ca_file, ns=(status.st_atime_ns, status.st_mtime_ns))
    os.chmod(ca_file, 0o644)
    assert tls_context(str(ca_file)) is context  # read again (ctime moved), same contents


def test_a_failed_read_is_tried_again_on_a_timer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error that leaves the file as it was (too many open files, a permission fixed on a
    directory above it) must not pin the old roots for good."""
    first, second = trustme.CA(), trustme.CA()
    ca_file = tmp_path / "root.pem"
    ca_file.write_bytes(first.cert_pem.bytes())
    original = tls_context(str(ca_file))
    replace_file(ca_file, second.cert_pem.bytes())
    real_open = open

    def failing_open(path: object, *args: object, **kwargs: object) -> object:
        if str(path) == str(ca_file):
            raise OSError(24, "Too many open files")
        return real_open(path, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr("builtins.open", failing_open)
    assert tls_context(str(ca_file)) is original
    monkeypatch.undo()
    assert tls_context(str(ca_file)) is original  # not yet due
    monkeypatch.setattr(tls, "RETRY_FAILED_S", 0.0)
    assert tls_context(str(ca_file)) is not original
