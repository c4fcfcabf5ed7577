"""Answers the simulator does not give but real networks do: compressed bodies, odd headers,
pathological JSON. Each against a real aiohttp server on loopback."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import pytest
from aiohttp import web

from exporter.classify import Result
from exporter.config import KeyConfig
from exporter.metrics import render_key
from exporter.probes.realtime import RealtimeProber
from exporter.probes.rest import RestProber
from exporter.result import ProbeResult
from exporter.simulator import make_key, start_simulator
from exporter.state import KeyState, ProbeState
from tests.support.key_config import key_config
from tests.support.loopback_app import served_on_loopback

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
FRESH_OR_POOLED = pytest.mark.parametrize("fresh", [True, False], ids=["own-connection", "pooled"])
MODELS = {"object": "list", "data": [{"id": "gpt-realtime", "object": "model"}]}
INVALID = {
    "error": {
        "message": "Incorrect API key provided: sk-proj-...sQoA.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
}


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    async with AsyncExitStack() as servers:

        async def start(handler: Handler) -> str:
            app = web.Application()
            app.router.add_route("*", "/v1/{tail:.*}", handler)
            port = await servers.enter_async_context(served_on_loopback(app))
            return f"http://127.0.0.1:{port}/v1"

        yield start


def config(base_url: str) -> KeyConfig:
    return key_config("quirk", base_url=base_url, timeout=2.0)


async def probe(base_url: str, key: str = "", *, fresh: bool = True) -> ProbeResult:
    prober = RestProber()
    try:
        return await prober.probe_on_connection(
            config(base_url), key or make_key("ok"), fresh=fresh
        )
    finally:
        await prober.aclose()


def gzipped(status: int, payload: object) -> web.Response:
    body = gzip.compress(json.dumps(payload).encode())
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    return web.Response(status=status, body=body, headers=headers)


@pytest.mark.parametrize(
    ("status", "payload", "expected"),
    [(200, MODELS, Result.OK), (401, INVALID, Result.INVALID_API_KEY)],
)
@FRESH_OR_POOLED
async def test_a_compressed_answer_is_read_decoded(
    fresh: bool,
    serve: Callable[[Handler], Awaitable[str]],
    status: int,
    payload: object,
    expected: Result,
) -> None:
    """A proxy may gzip whatever the probe asks for: the verdict must not change."""

    async def handler(request: web.Request) -> web.Response:
        return gzipped(status, payload)

    result = await probe(await serve(handler), fresh=fresh)
    assert result.result is expected, result


@FRESH_OR_POOLED
async def test_a_gzip_bomb_is_capped(
    fresh: bool, serve: Callable[[Handler], Awaitable[str]]
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            body=gzip.compress(b" " * (64 * 1024 * 1024)), headers={"Content-Encoding": "gzip"}
        )

    result = await probe(await serve(handler), fresh=fresh)
    assert result.result is Result.PROTOCOL_ERROR
    assert "MiB" in result.message


@FRESH_OR_POOLED
async def test_non_finite_ratelimit_headers_are_ignored(
    fresh: bool,
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    async def handler(request: web.Request) -> web.Response:
        headers = {
            "x-ratelimit-limit-requests": "inf",
            "x-ratelimit-remaining-requests": "nan",
            "x-ratelimit-limit-tokens": "-5",
            "x-ratelimit-remaining-tokens": "1000",
        }
        return web.json_response(MODELS, headers=headers)

    result = await probe(await serve(handler), fresh=fresh)
    assert result.result is Result.OK
    assert result.ratelimit == {"remaining_tokens": 1000.0}


@FRESH_OR_POOLED
async def test_json_nested_thousands_deep_is_a_protocol_error(
    fresh: bool,
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=b"[" * 100_000 + b"]" * 100_000, content_type="application/json")

    result = await probe(await serve(handler), fresh=fresh)
    assert result.result is Result.PROTOCOL_ERROR


@FRESH_OR_POOLED
async def test_a_429_of_type_server_error_is_a_server_error(
    fresh: bool,
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    """The historical "model overloaded" answer came as a 429 of type server_error."""

    async def handler(request: web.Request) -> web.Response:
        error = {"message": "That model is currently overloaded", "type": "server_error"}
        return web.json_response({"error": {**error, "param": None, "code": None}}, status=429)

    result = await probe(await serve(handler), fresh=fresh)
    assert result.result is Result.SERVER_ERROR


@FRESH_OR_POOLED
async def test_a_key_with_a_trailing_space_is_sent_as_the_wire_would(
    fresh: bool,
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    """HTTP drops whitespace at the end of a header value; the key still reaches OpenAI."""
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers["Authorization"])
        return web.json_response(MODELS)

    key = make_key("ok")
    result = await probe(await serve(handler), key + " \t", fresh=fresh)
    assert result.result is Result.OK
    assert seen == [f"Bearer {key}"]


async def test_realtime_event_nested_thousands_deep_is_a_protocol_error(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        await socket.send_str("[" * 100_000 + "]" * 100_000)
        await socket.receive()
        return socket

    result = await RealtimeProber().probe(config(await serve(handler)), make_key("ok"))
    assert result.result is Result.PROTOCOL_ERROR, result


async def test_realtime_429_on_the_upgrade_reads_retry_after(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=429, text="slow down", headers={"retry-after": "42"})

    result = await RealtimeProber().probe(config(await serve(handler)), make_key("ok"))
    assert (result.result, result.retry_after) == (Result.RATE_LIMITED, 42.0)


def test_unknown_error_codes_count_as_one_series() -> None:
    """Codes collapse to `other` when counted, so the exposition never repeats a series."""
    state = ProbeState()
    for code in ("weird_code_1", "weird_code_2", "other"):
        state.observe(ProbeResult(probe="rest", result=Result.OTHER, error_code=code))
    assert state.errors_total == {"other": 3}
    text = b"".join(render_key(KeyState(name="k", rest=state))).decode()
    lines = [line for line in text.splitlines() if line.startswith("openai_probe_errors_total")]
    assert lines == ['openai_probe_errors_total{key="k",probe="rest",code="other"} 3']


def test_failure_phases_are_not_mixed_with_an_older_success() -> None:
    state = ProbeState()
    healthy = {"connect": 0.01, "session_created": 0.02, "session_updated": 0.03}
    state.observe(ProbeResult(probe="realtime", result=Result.OK, phases=healthy))
    state.observe(ProbeResult(probe="realtime", result=Result.TIMEOUT, phases={"connect": 0.5}))
    assert state.phases == {"connect": 0.5}
    rest = ProbeState()
    rest.observe(ProbeResult(probe="rest", result=Result.OK, phases={"connect": 0.1, "tls": 0.2}))
    rest.observe(ProbeResult(probe="rest", result=Result.OK, phases={"first_byte": 0.3}))
    assert rest.phases == {"connect": 0.1, "tls": 0.2, "first_byte": 0.3}


async def test_the_simulator_still_agrees() -> None:
    """The same probes, unchanged, against the bundled simulator."""
    simulator = await start_simulator()
    try:
        assert (await probe(simulator.base_url)).result is Result.OK
    finally:
        await simulator.close()
