"""The client sessions the HTTP probes share (exporter/probes/http_sessions.py): one per CA file
and kind, replaced when the CA file's roots rotate, every one closed at the end. Real files, a
real TLS simulator, the inference probe as well as REST's."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import aiohttp
import trustme

from exporter.classify import Result
from exporter.config import KeyConfig
from exporter.probes.http_sessions import HttpSessions
from exporter.probes.inference import InferenceProber
from exporter.simulator import RunningSimulator, make_key
from tests.support.proxy import no_proxy_from_outside
from tests.support.tls import config_for, replace_file, two_servers

__all__ = ["no_proxy_from_outside", "two_servers"]  # fixtures


def _kinds() -> HttpSessions:
    return HttpSessions(
        {
            "a": lambda context: aiohttp.TCPConnector(ssl=context),
            "b": lambda context: aiohttp.TCPConnector(ssl=context, force_close=True),
        }
    )


async def test_one_session_per_ca_file_and_kind_until_the_roots_rotate(tmp_path: Path) -> None:
    first, second = trustme.CA(), trustme.CA()
    ca_file = tmp_path / "root.pem"
    ca_file.write_bytes(first.cert_pem.bytes())
    sessions = _kinds()
    a = sessions.get(str(ca_file), "a")
    assert sessions.get(str(ca_file), "a") is a
    b = sessions.get(str(ca_file), "b")
    assert b is not a and sessions.get(None, "a") is not a

    replace_file(ca_file, second.cert_pem.bytes())
    rotated = sessions.get(str(ca_file), "a")
    assert rotated is not a
    assert not a.closed  # probes in flight on it finish there
    await sessions.aclose()
    assert a.closed and rotated.closed and b.closed


async def test_the_inference_probe_follows_a_rotated_ca_file(
    tmp_path: Path,
    two_servers: tuple[trustme.CA, trustme.CA, list[RunningSimulator]],
) -> None:
    first, second, (first_server, second_server) = two_servers
    ca_file = tmp_path / "corporate-root.pem"
    ca_file.write_bytes(first.cert_pem.bytes())
    prober, key = InferenceProber(), make_key("ok")

    def config(server: RunningSimulator) -> KeyConfig:
        return replace(config_for(server, ca_file), probes=("rest", "inference"))

    try:
        before = await prober.probe(config(first_server), key)
        assert before.result is Result.OK, before
        refused = await prober.probe(config(second_server), key)
        assert refused.result is Result.TLS_ERROR, refused
        replace_file(ca_file, second.cert_pem.bytes())
        after = await prober.probe(config(second_server), key)
        assert after.result is Result.OK, after
    finally:
        await prober.aclose()
