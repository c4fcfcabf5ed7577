"""The opt-in GPT-Live probe against the simulator over real sockets: the protocol, every
classification, a started session always ended and its billed seconds counted, its config."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import websockets
from aiohttp import WSMsgType, web

from exporter.classify import Result
from exporter.config import ConfigError, KeyConfig, LiveSettings, parse_config
from exporter.metrics import ExporterMetrics, MetricsRenderer
from exporter.probes.live import LiveProber, classify_live_error, estimated_monthly_cost
from exporter.simulator import RunningSimulator, key_id, make_key
from exporter.state import KeyIdentity, StateStore
from tests.conftest import require_tool
from tests.support.key_config import key_config
from tests.support.loopback_app import served_on_loopback
from tests.support.simulator import simulator

__all__ = ["simulator"]  # a fixture from tests/support

TIMEOUT = 2.0

# scenario -> (result, HTTP status, close code, error code)
EXPECTED: dict[str, tuple[Result, int, int | None, str]] = {
    "ok": (Result.OK, 101, 1000, ""),
    "invalid_api_key": (Result.INVALID_API_KEY, 401, None, "invalid_api_key"),
    "live_key_in_band": (Result.INVALID_API_KEY, 101, 1008, "invalid_api_key"),
    "account_deactivated": (Result.ACCOUNT_DEACTIVATED, 101, 1008, "account_deactivated"),
    "insufficient_quota": (Result.INSUFFICIENT_QUOTA, 101, None, "credit_balance_exhausted"),
    "live_model_not_found": (Result.MODEL_NOT_FOUND, 101, None, "model_not_found"),
    "live_shape_retired": (Result.API_SHAPE_RETIRED, 101, None, "unknown_parameter"),
    "live_drop": (Result.CONNECTION_ERROR, 101, 1006, "connection_error"),
    "server_error": (Result.SERVER_ERROR, 101, 1011, "server_error"),
    "unsupported_region": (
        Result.UNSUPPORTED_REGION,
        403,
        None,
        "unsupported_country_region_territory",
    ),
    "bad_gateway": (Result.SERVER_ERROR, 502, None, "server_error"),
    "reset": (Result.CONNECTION_ERROR, 0, None, "connection_error"),
    "rt_forbidden": (Result.OK, 101, 1000, ""),  # a Realtime-only refusal
}
NO_SESSION = {"invalid_api_key", "live_key_in_band", "account_deactivated", "insufficient_quota"}


def live_config(base_url: str, **overrides: Any) -> KeyConfig:
    defaults = {
        "base_url": base_url,
        "timeout": TIMEOUT,
        "probes": ("rest", "live"),
        "live": LiveSettings(model="gpt-live-1"),
    }
    return key_config("voice", **(defaults | overrides))


def _key_stats(simulator: RunningSimulator, key: str) -> dict[str, Any]:
    stats: dict[str, Any] = simulator.stats()["keys"].get(key_id(key), {})
    return stats


@pytest.mark.parametrize("scenario", sorted(EXPECTED))
async def test_live_probe_classifies_scenario(simulator: RunningSimulator, scenario: str) -> None:
    key = make_key(scenario)
    prober = LiveProber()
    result = await prober.probe(live_config(simulator.base_url), key)
    await prober.aclose()
    expected_result, status, close, code = EXPECTED[scenario]
    assert (result.probe, result.result, result.http_status) == ("live", expected_result, status)
    assert result.close_code == close, result
    assert result.error_code == code
    assert key not in result.message and key[-24:] not in result.message
    stats = _key_stats(simulator, key)
    events = stats.get("client_events", {})
    assert set(events) <= {"session.start", "session.close"}  # never audio, never a response
    if result.healthy:
        assert set(result.phases) == {"connect", "session_started", "session_closed"}
        assert result.billed_seconds == 1.0  # usage.seconds from session.closed
        assert stats["live_sessions"] == 1 and stats["live_billed_seconds"] == 1
        assert events == {"session.start": 1, "session.close": 1}
    if scenario in NO_SESSION:
        assert result.billed_seconds == 0.0
        assert stats["live_sessions"] == 0
        assert "session.close" not in events  # a refused start is not a session


async def test_a_session_that_never_starts_is_still_closed(simulator: RunningSimulator) -> None:
    key = make_key("live_silent")
    prober = LiveProber()
    result = await prober.probe(live_config(simulator.base_url, timeout=1.0), key)
    assert result.result is Result.TIMEOUT
    assert result.message == "no session.started within 1s"
    assert _key_stats(simulator, key)["client_events"] == {"session.start": 1, "session.close": 1}


async def test_a_slow_start_times_out_and_is_ended(simulator: RunningSimulator) -> None:
    key = make_key("slow", 3000)
    prober = LiveProber()
    result = await prober.probe(live_config(simulator.base_url, timeout=1.0), key)
    assert result.result is Result.TIMEOUT
    await asyncio.sleep(0.1)
    assert _key_stats(simulator, key)["client_events"]["session.close"] == 1


async def test_shutdown_during_a_session_ends_it(simulator: RunningSimulator) -> None:
    """Cancelled as the exporter's stop cancels it: session.close is still sent, and aclose
    waits for it (bounded), so no session is left open and billed."""
    key = make_key("slow", 5000)
    prober = LiveProber()
    task = asyncio.create_task(prober.probe(live_config(simulator.base_url, timeout=8.0), key))
    await asyncio.sleep(0.5)
    task.cancel()
    started = asyncio.get_running_loop().time()
    await prober.aclose()
    assert asyncio.get_running_loop().time() - started < 2.0
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.1)
    assert _key_stats(simulator, key)["client_events"].get("session.close") == 1


async def test_the_probe_sends_only_the_documented_shape() -> None:
    """Authorization only, no query parameters, session.start with the model alone."""
    seen: dict[str, Any] = {}

    async def handler(request: web.Request) -> web.WebSocketResponse:
        seen["query"] = dict(request.query)
        seen["headers"] = {k.lower() for k in request.headers}
        seen["authorization"] = request.headers.get("Authorization", "")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            assert message.type is WSMsgType.TEXT
            event = json.loads(message.data)
            seen.setdefault("events", []).append(event)
            if event["type"] == "session.start":
                await ws.send_json({"type": "session.started", "session": {"id": "live_1"}})
            elif event["type"] == "session.close":
                closed = {"type": "session.closed", "reason": "close_requested"}
                await ws.send_json({**closed, "usage": {"seconds": 2}})
                await ws.close(code=1000)
        return ws

    app = web.Application()
    app.router.add_get("/v1/live/sessions", handler)
    async with served_on_loopback(app) as port:
        config = live_config(f"http://127.0.0.1:{port}/v1", organization="org-x", project="proj_y")
        result = await LiveProber().probe(config, make_key("ok"))
    assert result.result is Result.OK and result.billed_seconds == 2.0
    assert seen["query"] == {}
    assert seen["authorization"] == f"Bearer {make_key('ok')}"
    assert not {"openai-beta", "openai-organization", "openai-project"} & seen["headers"]
    assert "sec-websocket-protocol" not in seen["headers"]
    assert seen["events"] == [
        {"type": "session.start", "session": {"model": "gpt-live-1"}},
        {"type": "session.close"},
    ]


async def test_simulator_session_object_is_strict(simulator: RunningSimulator) -> None:
    headers = {"Authorization": f"Bearer {make_key('ok')}"}
    async with websockets.connect(simulator.live_url, additional_headers=headers) as ws:
        start = {"model": "gpt-live-1", "voice": "alloy"}
        await ws.send(json.dumps({"type": "session.start", "session": start}))
        error = json.loads(await ws.recv())
    assert error["type"] == "error"
    assert error["error"]["code"] == "unknown_parameter"
    assert error["error"]["param"] == "session.voice"


async def test_simulator_refuses_a_missing_key_at_the_upgrade(simulator: RunningSimulator) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(simulator.live_url):
            pass
    assert refused.value.response.status_code == 401
    assert b"missing_authorization" in (refused.value.response.body or b"")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"type": "insufficient_quota", "code": "insufficient_quota"}, Result.INSUFFICIENT_QUOTA),
        (
            {"type": "invalid_request_error", "code": "credit_balance_exhausted"},
            Result.INSUFFICIENT_QUOTA,
        ),
        ({"type": "invalid_request_error", "code": "invalid_api_key"}, Result.INVALID_API_KEY),
        (
            {"type": "invalid_request_error", "code": "model_not_found", "param": "session.model"},
            Result.MODEL_NOT_FOUND,
        ),
        ({"type": "invalid_request_error", "code": "unknown_parameter"}, Result.API_SHAPE_RETIRED),
        (
            {"type": "invalid_request_error", "code": "invalid_value", "param": "session.audio"},
            Result.API_SHAPE_RETIRED,
        ),
        ({"type": "server_error", "code": None}, Result.SERVER_ERROR),
        ({"type": "weird", "code": "weird"}, Result.PROTOCOL_ERROR),
    ],
)
def test_live_error_classification(error: dict[str, Any], expected: Result) -> None:
    assert classify_live_error(error)[0] is expected


async def test_billed_seconds_and_close_codes_are_published(
    simulator: RunningSimulator, tmp_path: Path
) -> None:
    promtool = require_tool("promtool")
    store = StateStore()
    renderer = MetricsRenderer(ExporterMetrics(), store.latency)
    store.subscribe(renderer.update)
    store.configure({"voice": ("rest", "live")})
    prober = LiveProber()
    for _ in range(2):
        result = await prober.probe(live_config(simulator.base_url), make_key("ok"))
        store.record("voice", KeyIdentity(), result)
    body = renderer.render().decode()
    assert 'openai_probe_billed_seconds_total{key="voice"} 2\n' in body
    assert 'openai_live_close_code{key="voice"} 1000\n' in body
    assert 'openai_live_closes_total{key="voice",code="1000"} 2\n' in body
    assert 'openai_probe_success{key="voice",probe="live"} 1\n' in body
    assert "openai_realtime_close_code" not in body
    checked = await asyncio.create_subprocess_exec(
        promtool,
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await checked.communicate(body.encode())
    assert checked.returncode == 0, output


def test_estimated_monthly_cost() -> None:
    keys = [
        key_config("a", probes=("rest", "live"), live=LiveSettings("m", None, 900)),
        key_config("b", probes=("rest",), live=LiveSettings("m", None, 60)),
    ]
    count, monthly = estimated_monthly_cost(keys)
    assert count == 1
    assert monthly == pytest.approx(2.88)  # 2,880 probes a month at about $0.001 each


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        (
            "keys: [{name: a, api_key_env: A, probes: [rest, live]}]",
            r"c\.yml:1: keys\[0\]\.live\.model: missing: the live probe is listed in probes",
        ),
        (
            "keys: [{name: a, api_key_env: A, probes: [live], live: {model: gpt-realtime}}]",
            r"c\.yml:1: keys\[0\]\.live\.model: 'gpt-realtime' is a Realtime model "
            r"\(use a GPT-Live model such as gpt-live-1; a Realtime model goes in "
            r"keys\[0\]\.realtime\.model\)",
        ),
        (
            "keys: [{name: a, api_key_env: A, realtime: {model: gpt-live-1}}]",
            r"c\.yml:1: keys\[0\]\.realtime\.model: 'gpt-live-1' is a GPT-Live model",
        ),
        (
            "defaults: {live: {model: gpt-realtime-mini}}\nkeys: [{name: a, api_key_env: A}]",
            r"c\.yml:1: defaults\.live\.model: 'gpt-realtime-mini' is a Realtime model",
        ),
        (
            "keys: [{name: a, api_key_env: A, probes: [live], live: {model: gpt-live-1, "
            "interval: 5s}, timeout: 10s, interval: 1m}]",
            r"keys\[0\]\.timeout: 10s is longer than live\.interval",
        ),
    ],
)
def test_live_configuration_errors_name_the_field(yaml_text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(yaml_text, "c.yml")


def test_live_configuration() -> None:
    text = (
        "defaults: {base_url: 'https://example.test/v1', probes: [rest, live]}\n"
        "keys:\n"
        "  - {name: a, api_key_env: A, live: {model: gpt-live-1, interval: 15m}}\n"
        "  - {name: b, api_key_env: B, live: {model: gpt-live-1, url: 'wss://x.test/live'}}\n"
    )
    first, second = parse_config(text, "c.yml").keys
    assert first.probes == ("rest", "live")
    assert first.live_url == "wss://example.test/v1/live/sessions"
    assert first.interval_for("live") == 900.0
    assert second.live_url == "wss://x.test/live"
    plain = parse_config("keys: [{name: a, api_key_env: A}]", "c.yml").keys[0]
    assert "live" not in plain.probes  # opt-in: never on by default


def _live_app(behaviour: str) -> web.Application:
    """A Live endpoint that misbehaves as `behaviour` says (served on loopback by the test)."""

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            event = json.loads(message.data)
            if event["type"] == "session.start":
                if behaviour == "binary":
                    await ws.send_bytes(b"\x00\x01")
                elif behaviour == "garbage":
                    await ws.send_str("<html>not an event</html>")
                elif behaviour == "close_4999":
                    await ws.close(code=4999, message=b"sim.unknown")
                elif behaviour == "close_1011":
                    await ws.close(code=1011)
                else:
                    await ws.send_json({"type": "session.started", "session": {"id": "live_1"}})
            elif event["type"] == "session.close":
                if behaviour == "no_closed":
                    continue  # never answers: the end is bounded
                closed: dict[str, Any] = {"type": "session.closed", "reason": "close_requested"}
                if behaviour == "odd_usage":
                    closed["usage"] = {"seconds": "two"}
                await ws.send_json(closed)
                await ws.close(code=1000)
        return ws

    app = web.Application()
    app.router.add_get("/v1/live/sessions", handler)
    return app


@pytest.mark.parametrize(
    ("behaviour", "expected", "close"),
    [
        ("binary", Result.PROTOCOL_ERROR, None),
        ("garbage", Result.PROTOCOL_ERROR, None),
        ("close_4999", Result.OTHER, 4999),
        ("close_1011", Result.SERVER_ERROR, 1011),
        ("no_closed", Result.TIMEOUT, None),
        ("odd_usage", Result.OK, 1000),
    ],
)
async def test_live_probe_survives_a_misbehaving_server(
    behaviour: str, expected: Result, close: int | None
) -> None:
    async with served_on_loopback(_live_app(behaviour)) as port:
        loop = asyncio.get_running_loop()
        began = loop.time()
        result = await LiveProber().probe(
            live_config(f"http://127.0.0.1:{port}/v1"), make_key("ok")
        )
        elapsed = loop.time() - began
    assert (result.result, result.close_code) == (expected, close), result
    assert elapsed < TIMEOUT + 1.0  # within the runner's slack, whatever the server does
    if behaviour == "no_closed":
        assert result.message == "no session.closed within 0.8s"
    if behaviour in ("no_closed", "odd_usage"):
        # No usable usage.seconds: the time the session was open, as measured, is counted.
        assert 0 < result.billed_seconds < 2
