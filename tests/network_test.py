"""The upstream network as it really is: certificate checks, a corporate root, proxies from the
environment, an IPv6 listen address, and a per-probe timeout that always wins.

What the probes do with proxy variables (aiohttp 3.14, websockets 17, Linux), as observed here:
- REST (aiohttp, the proxy resolved from the environment once per URL): https:// goes through
  HTTPS_PROXY with CONNECT; http:// goes through HTTP_PROXY as an absolute-form request
  (`GET http://host/v1/models`), no CONNECT.
- Realtime (websockets): wss:// uses HTTPS_PROXY, ws:// uses HTTPS_PROXY then HTTP_PROXY; both
  with CONNECT.
- Neither bypasses localhost or 127.0.0.1 on its own: only NO_PROXY does, and it compares
  names as written, never resolved: NO_PROXY=127.0.0.1 does not cover `localhost`.
"""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from exporter.classify import Result
from exporter.config import KeyConfig
from exporter.keys import KeySource, SourceKind
from exporter.probes.realtime import RealtimeProber
from exporter.probes.rest import RestProber
from exporter.result import ProbeResult
from exporter.runner import ProbeRunner
from exporter.simulator import RunningSimulator, make_key
from exporter.state import StateStore
from tests.conftest import require_ipv6_loopback
from tests.harness import (
    Process,
    exporter_command,
    free_port,
    wait_http,
    write_config,
)
from tests.support.key_config import key_config
from tests.support.metrics import probe_results
from tests.support.proxy import TunnelProxy, no_proxy_from_outside
from tests.support.rest_paths import rest_both_ways
from tests.support.simulator import SimulatorThread, simulator_in_thread
from tests.support.tls import Tls, make_tls, tls

__all__ = ["no_proxy_from_outside", "tls"]  # fixtures from tests/support


@pytest.fixture(scope="module")
def tls_simulator(tls: Tls) -> Iterator[RunningSimulator]:
    """The simulator over TLS, its certificate signed by a CA no system store holds."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    thread = SimulatorThread(ssl_context=context)
    try:
        yield thread.simulator
    finally:
        thread.close()


@pytest.fixture(scope="module")
def plain_simulator() -> Iterator[RunningSimulator]:
    with simulator_in_thread() as simulator:
        yield simulator


def network_config(base_url: str, timeout: float = 2.0, ca_file: Path | None = None) -> KeyConfig:
    return key_config(
        "network",
        base_url=base_url,
        timeout=timeout,
        interval=60.0,
        probes=("rest", "realtime"),
        tls_ca_file=str(ca_file) if ca_file else None,
    )


async def probe_both(config: KeyConfig, key: str) -> dict[str, ProbeResult]:
    # The shared pool must see the network exactly as a probe's own connection does.
    rest_result, pooled = await rest_both_ways(config, key)
    assert pooled.result is rest_result.result, (rest_result, pooled)
    realtime_result = await RealtimeProber().probe(config, key)
    return {"rest": rest_result, "realtime": realtime_result}


def on_host(simulator: RunningSimulator, host: str) -> str:
    return simulator.base_url.replace(simulator.host, host, 1)


# --- certificates -------------------------------------------------------------------------------


async def test_certificates_are_verified_by_default(tls_simulator: RunningSimulator) -> None:
    results = await probe_both(network_config(tls_simulator.base_url), make_key("ok"))
    for probe, result in results.items():
        assert result.result is Result.TLS_ERROR, (probe, result)
        assert "CERTIFICATE_VERIFY_FAILED" in result.message, (probe, result)


async def test_a_corporate_root_in_tls_ca_file_is_trusted(
    tls_simulator: RunningSimulator, tls: Tls
) -> None:
    config = network_config(tls_simulator.base_url, ca_file=tls.ca_file)
    results = await probe_both(config, make_key("ok"))
    assert {probe: result.result for probe, result in results.items()} == {
        "rest": Result.OK,
        "realtime": Result.OK,
    }, results
    assert results["rest"].phases["tls"] > 0


async def test_the_corporate_root_adds_to_trust_and_checks_names(
    tls_simulator: RunningSimulator, tls: Tls, tmp_path: Path
) -> None:
    """ca_file trusts the root for the names it signed, not for any name."""
    other = make_tls(tmp_path)  # another CA: its root must not vouch for our simulator
    config = network_config(tls_simulator.base_url, ca_file=other.ca_file)
    results = await probe_both(config, make_key("ok"))
    assert {result.result for result in results.values()} == {Result.TLS_ERROR}, results


# --- proxies ------------------------------------------------------------------------------------


@pytest.fixture
async def proxy() -> AsyncIterator[TunnelProxy]:
    running = await TunnelProxy().start()
    try:
        yield running
    finally:
        await running.close()


async def test_https_proxy_carries_rest_and_realtime(
    tls_simulator: RunningSimulator, tls: Tls, proxy: TunnelProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    base_url = on_host(tls_simulator, "localhost")
    results = await probe_both(network_config(base_url, ca_file=tls.ca_file), make_key("ok"))
    assert {result.result for result in results.values()} == {Result.OK}, results
    target = f"CONNECT localhost:{tls_simulator.port}"
    # REST on its own connection, REST through the shared pool, then Realtime
    assert proxy.requests == [target, target, target], proxy.requests


async def test_http_proxy_carries_plain_rest_and_realtime(
    plain_simulator: RunningSimulator, proxy: TunnelProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    base_url = on_host(plain_simulator, "localhost")
    results = await probe_both(network_config(base_url), make_key("ok"))
    assert {result.result for result in results.values()} == {Result.OK}, results
    assert proxy.requests == [
        f"GET {base_url}/models",  # the own connection: plain HTTP is forwarded, not tunnelled
        f"GET {base_url}/models",  # the shared pool: forwarded too
        f"CONNECT localhost:{plain_simulator.port}",  # websockets tunnels ws:// too
    ], proxy.requests


@pytest.mark.parametrize(
    ("no_proxy", "host", "proxied"),
    [
        ("localhost", "localhost", False),
        ("127.0.0.1", "127.0.0.1", False),
        ("127.0.0.1", "localhost", True),  # names are compared as written, never resolved
        ("example.com,localhost", "localhost", False),
        ("*", "localhost", False),
        ("", "localhost", True),
    ],
)
async def test_no_proxy_is_honoured(
    tls_simulator: RunningSimulator,
    tls: Tls,
    proxy: TunnelProxy,
    monkeypatch: pytest.MonkeyPatch,
    no_proxy: str,
    host: str,
    proxied: bool,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    if no_proxy:
        monkeypatch.setenv("NO_PROXY", no_proxy)
    base_url = on_host(tls_simulator, host)
    results = await probe_both(network_config(base_url, ca_file=tls.ca_file), make_key("ok"))
    assert {result.result for result in results.values()} == {Result.OK}, results
    assert len(proxy.requests) == (3 if proxied else 0), proxy.requests


async def test_a_proxy_that_is_down_fails_both_probes(
    tls_simulator: RunningSimulator, tls: Tls, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The variable is read, not just tolerated: a dead proxy is a connection error."""
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{free_port()}")
    base_url = on_host(tls_simulator, "localhost")
    results = await probe_both(network_config(base_url, ca_file=tls.ca_file), make_key("ok"))
    assert {result.result for result in results.values()} == {Result.CONNECTION_ERROR}, results


# --- IPv6 ---------------------------------------------------------------------------------------


def test_ipv6_listen_address_serves_metrics(tmp_path: Path) -> None:
    require_ipv6_loopback()
    # The upstream stays on IPv4: start_simulator binds AF_INET whatever the host.
    with simulator_in_thread() as simulator:
        key_file = tmp_path / "ipv6.key"
        key_file.write_text(make_key("ok") + "\n")
        key_file.chmod(0o600)
        config = write_config(
            tmp_path / "exporter.yml",
            simulator.base_url,
            [{"name": "ipv6", "api_key_file": str(key_file)}],
        )
        port = free_port()
        exporter = Process(
            exporter_command("--config.file", str(config), "--web.listen-address", f"[::1]:{port}"),
            tmp_path / "exporter.log",
        ).start()
        try:
            wait_http(f"http://[::1]:{port}/-/ready", process=exporter)
            metrics = httpx.get(f"http://[::1]:{port}/metrics", timeout=5).text
        finally:
            exporter.stop()
        assert probe_results(metrics) == {("ipv6", "rest"): "ok", ("ipv6", "realtime"): "ok"}
        with pytest.raises(httpx.ConnectError):  # [::1] means IPv6 loopback only
            httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


# --- the per-probe timeout ----------------------------------------------------------------------

TIMEOUT_S = 0.5
TIMEOUT_SLACK_S = 0.3


@pytest.mark.parametrize(
    ("scenario", "probes"),
    [
        ("hang", ("rest", "realtime")),  # no response headers; the upgrade never answered
        ("hang_body", ("rest",)),  # half a body, then nothing
        ("rt_silent", ("realtime",)),  # upgraded, then no event
        ("rt_silent_update", ("realtime",)),  # session.update never answered
    ],
)
async def test_the_probe_timeout_always_wins(
    plain_simulator: RunningSimulator, scenario: str, probes: tuple[str, ...]
) -> None:
    """The runner's guard is timeout + 1 s: a probe must end on its own well before it."""
    os.environ["NETWORK_TIMEOUT_KEY"] = make_key(scenario)
    config = KeyConfig(
        name="timeout",
        source=KeySource(SourceKind.ENV, "NETWORK_TIMEOUT_KEY"),
        base_url=plain_simulator.base_url,
        timeout=TIMEOUT_S,
        interval=60.0,
        probes=probes,
    )
    store = StateStore()
    store.configure({config.name: probes})
    runner = ProbeRunner(store, {"rest": RestProber(), "realtime": RealtimeProber()})
    try:
        for probe in probes:
            started = time.monotonic()
            result = await runner.run(config, probe)
            elapsed = time.monotonic() - started
            assert result.result is Result.TIMEOUT, result
            assert TIMEOUT_S <= result.duration < TIMEOUT_S + TIMEOUT_SLACK_S, result
            assert elapsed < TIMEOUT_S + TIMEOUT_SLACK_S, (probe, elapsed)
            assert "0.5s" in result.message, result
    finally:
        await runner.aclose()
        os.environ.pop("NETWORK_TIMEOUT_KEY", None)
