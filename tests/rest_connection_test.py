"""REST connections over real sockets: a fresh probe times TCP connect and the TLS handshake
apart, pooled probes share one kept-alive connection, and the duration runs to the last byte of
the answer: from connecting on the probe's own connection, from the request on a pooled one."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from aiohttp import web

from exporter.classify import Result
from exporter.config import KeyConfig
from exporter.probes.rest import RestProber
from exporter.simulator import RunningSimulator, key_id, make_key, start_simulator
from tests.conftest import require_ipv6_loopback
from tests.support.key_config import key_config
from tests.support.loopback_app import served_on_loopback
from tests.support.proxy import CountingRelay, TunnelProxy, no_proxy_from_outside
from tests.support.tls import Tls, simulator_over_tls, tls

__all__ = ["no_proxy_from_outside", "simulator_over_tls", "tls"]  # fixtures from tests/support
TIMED_FRESH = {"connect", "tls", "first_byte", "transfer"}
TIMED_POOLED = {"first_byte", "transfer"}


def conn_config(base_url: str, tls: Tls | None, name: str = "conn") -> KeyConfig:
    ca_file = str(tls.ca_file) if tls else None
    return key_config(name, base_url=base_url, timeout=5.0, interval=60.0, tls_ca_file=ca_file)


async def test_a_fresh_probe_times_connect_and_tls_apart(
    simulator: RunningSimulator, tls: Tls
) -> None:
    prober = RestProber()
    try:
        wall = time.perf_counter()
        result = await prober.probe_on_connection(
            conn_config(simulator.base_url, tls), make_key("ok"), fresh=True
        )
        wall = time.perf_counter() - wall
    finally:
        await prober.aclose()
    assert result.result is Result.OK, result
    assert set(result.phases) == TIMED_FRESH, result.phases
    assert result.phases["connect"] > 0
    assert result.phases["tls"] > 0
    assert result.phases["first_byte"] > 0
    # The duration is the whole probe on its own connection: connect, TLS, request and answer
    # (and the few microseconds between the handshake and the request leaving), inside the call.
    phases = sum(result.phases[phase] for phase in TIMED_FRESH)
    assert phases <= result.duration <= wall


async def test_pooled_probes_share_one_connection_and_fresh_ones_never(
    simulator: RunningSimulator, tls: Tls
) -> None:
    forwarder = await CountingRelay(simulator.port).start()
    prober = RestProber()
    config = conn_config(f"https://127.0.0.1:{forwarder.port}/v1", tls)
    key = make_key("ok")
    try:
        pooled = [await prober.probe_on_connection(config, key, fresh=False) for _ in range(5)]
        assert forwarder.accepted == 1
        fresh = [await prober.probe_on_connection(config, key, fresh=True) for _ in range(3)]
        assert forwarder.accepted == 4
        again = await prober.probe_on_connection(config, key, fresh=False)
        assert forwarder.accepted == 4  # the pooled connection outlived the fresh ones
    finally:
        await prober.aclose()
        await forwarder.close()
    assert all(result.result is Result.OK for result in [*pooled, *fresh, again])
    assert all(set(result.phases) == TIMED_POOLED for result in [*pooled, again])
    for result in fresh:
        assert set(result.phases) == TIMED_FRESH, result.phases
        assert result.phases["connect"] > 0 and result.phases["tls"] > 0


async def test_the_duration_ends_with_the_last_byte_of_the_body(
    simulator: RunningSimulator, tls: Tls
) -> None:
    """`drip` sends the body in ten pieces over 0.9 x 400 ms: the transfer phase covers them."""
    prober = RestProber()
    config = conn_config(simulator.base_url, tls)
    try:
        for fresh in (True, False):
            wall = time.perf_counter()
            result = await prober.probe_on_connection(config, make_key("drip", 400), fresh=fresh)
            wall = time.perf_counter() - wall
            assert result.result is Result.OK, result
            # The first piece comes at once, the last one 0.9 x 400 ms later: the transfer holds
            # the wait between them (lower bounds only: a busy machine only makes them longer).
            assert result.phases["transfer"] >= 0.3, result.phases
            assert result.phases["first_byte"] < result.phases["transfer"], result.phases
            answer = result.phases["first_byte"] + result.phases["transfer"]
            if fresh:  # its own connection: connect and TLS are in the duration too
                answer += result.phases["connect"] + result.phases["tls"]
                assert answer <= result.duration <= wall
            else:
                assert result.duration == pytest.approx(answer, abs=1e-6)
    finally:
        await prober.aclose()


async def test_a_server_delay_is_the_first_byte_phase(
    simulator: RunningSimulator, tls: Tls
) -> None:
    prober = RestProber()
    config = conn_config(simulator.base_url, tls)
    try:
        await prober.probe_on_connection(config, make_key("ok"), fresh=False)  # a warm connection
        for fresh in (False, True):
            key = make_key("slow", 200, seed=f"first-byte-{fresh}")
            wall = time.perf_counter()
            result = await prober.probe_on_connection(config, key, fresh=fresh)
            wall = time.perf_counter() - wall
            assert result.result is Result.OK, result
            # The simulator's own record of the wait: the first byte came after it, not sooner.
            ((arrived, woke, _),) = simulator.stats()["keys"][key_id(key)]["rest_answer_times"]
            assert woke - arrived >= 0.2
            assert woke - arrived <= result.phases["first_byte"] <= result.duration <= wall
    finally:
        await prober.aclose()


async def test_a_failed_handshake_keeps_the_connect_phase(simulator: RunningSimulator) -> None:
    """No ca_file: the simulator's private CA is not trusted, TCP connected but TLS refused."""
    prober = RestProber()
    try:
        result = await prober.probe_on_connection(
            conn_config(simulator.base_url, None), make_key("ok"), fresh=True
        )
    finally:
        await prober.aclose()
    assert result.result is Result.TLS_ERROR, result
    assert "CERTIFICATE_VERIFY_FAILED" in result.message
    assert set(result.phases) == {"connect"}, result.phases


async def test_through_a_proxy_tls_is_the_handshake_with_the_target(
    simulator: RunningSimulator, tls: Tls, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = await TunnelProxy().start()
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    prober = RestProber()
    base_url = simulator.base_url.replace("127.0.0.1", "localhost", 1)
    try:
        result = await prober.probe_on_connection(
            conn_config(base_url, tls), make_key("ok"), fresh=True
        )
    finally:
        await prober.aclose()
        await proxy.close()
    assert result.result is Result.OK, result
    assert proxy.requests == [f"CONNECT localhost:{simulator.port}"]
    assert set(result.phases) == TIMED_FRESH, result.phases
    assert result.phases["tls"] > 0


async def test_an_ipv6_upstream_over_tls(simulator: RunningSimulator, tls: Tls) -> None:
    """The simulator listens on IPv4 only: a forwarder on [::1] stands in for an IPv6 upstream."""
    require_ipv6_loopback()
    forwarder = await CountingRelay(simulator.port, "::1").start()
    prober = RestProber()
    config = conn_config(f"https://[::1]:{forwarder.port}/v1", tls)
    try:
        results = [
            await prober.probe_on_connection(config, make_key("ok"), fresh=fresh)
            for fresh in (True, False)
        ]
    finally:
        await prober.aclose()
        await forwarder.close()
    assert [result.result for result in results] == [Result.OK, Result.OK], results
    assert set(results[0].phases) == TIMED_FRESH
    assert forwarder.accepted == 2


async def test_an_unknown_host_is_a_connection_error_without_phases(tls: Tls) -> None:
    prober = RestProber()
    config = conn_config("https://host.invalid/v1", tls)
    try:
        for fresh in (True, False):
            result = await prober.probe_on_connection(config, make_key("ok"), fresh=fresh)
            assert result.result is Result.CONNECTION_ERROR, result
            assert result.phases == {}, result.phases
    finally:
        await prober.aclose()


async def test_a_plain_http_fresh_probe_has_no_tls_phase(tmp_path: Path) -> None:
    simulator = await start_simulator()
    prober = RestProber()
    try:
        result = await prober.probe_on_connection(
            conn_config(simulator.base_url, None), make_key("ok"), fresh=True
        )
    finally:
        await prober.aclose()
        await simulator.close()
    assert result.result is Result.OK, result
    assert set(result.phases) == {"connect", "first_byte", "transfer"}, result.phases


async def test_no_cookie_from_one_answer_goes_with_the_next_probe() -> None:
    """api.openai.com sets Cloudflare cookies; each probe must stand alone, whatever key it is."""
    seen: list[str | None] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Cookie"))
        response = web.json_response({"object": "list", "data": []})
        response.set_cookie("__cf_bm", "from-an-earlier-answer")
        return response

    app = web.Application()
    app.router.add_get("/v1/models", handler)
    async with served_on_loopback(app) as port:
        prober = RestProber()
        config = conn_config(f"http://localhost:{port}/v1", None)  # a name: IPs get no cookies
        try:
            for fresh in (False, False, True):
                result = await prober.probe_on_connection(config, make_key("ok"), fresh=fresh)
                assert result.result is Result.OK, result
        finally:
            await prober.aclose()
    assert seen == [None, None, None]
