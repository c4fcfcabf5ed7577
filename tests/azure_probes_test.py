"""Azure OpenAI keys: every probe sends `api-key` (never Authorization), against the simulator's
Azure paths over real sockets, and Azure's answers are classified by the same table."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from exporter.classify import Result
from exporter.config import InferenceSettings, KeyConfig, LiveSettings, RealtimeSettings
from exporter.probes.inference import InferenceProber
from exporter.probes.live import LiveProber
from exporter.probes.realtime import RealtimeProber
from exporter.probes.rest import RestProber
from exporter.simulator import RunningSimulator
from exporter.simulator.azure import make_azure_key
from tests.support.key_config import key_config
from tests.support.loopback_app import served_on_loopback
from tests.support.simulator import simulator

__all__ = ["simulator"]  # a fixture from tests/support

PROBE_TIMEOUT = 2.0
HEX_KEY = "0123456789abcdef0123456789abcdef"  # an older resource's key shape, unknown here


def azure_config(base_url: str, deployment: str = "my-realtime", **overrides: object) -> KeyConfig:
    defaults = {
        "base_url": base_url,
        "timeout": PROBE_TIMEOUT,
        "provider": "azure",
        "realtime": RealtimeSettings(model=deployment),
    }
    return key_config("azure", **(defaults | overrides))


@pytest.mark.parametrize("fresh", [True, False], ids=["own-connection", "pooled"])
@pytest.mark.parametrize(
    ("key", "expected", "status", "code"),
    [
        (make_azure_key("ok"), Result.OK, 200, ""),
        (make_azure_key("invalid_api_key"), Result.INVALID_API_KEY, 401, "invalid_api_key"),
        (HEX_KEY, Result.INVALID_API_KEY, 401, "invalid_api_key"),  # another resource's key
        (make_azure_key("rate_limited"), Result.RATE_LIMITED, 429, "rate_limit_exceeded"),
    ],
    ids=["ok", "invalid", "other-resource", "throttled"],
)
async def test_rest_probe_lists_the_resource_models(
    simulator: RunningSimulator,
    key: str,
    expected: Result,
    status: int,
    code: str,
    fresh: bool,
) -> None:
    prober = RestProber()
    try:
        config = azure_config(simulator.azure_base_url)
        result = await prober.probe_on_connection(config, key, fresh=fresh)
    finally:
        await prober.aclose()
    assert (result.result, result.http_status, result.error_code) == (expected, status, code)
    assert key not in result.message
    if expected is Result.RATE_LIMITED:
        assert result.retry_after == 20  # retry-after honoured
    assert simulator.stats()["keys"], "the simulator saw the request on its Azure path"


async def test_hex_key_selected_by_override_is_accepted(simulator: RunningSimulator) -> None:
    simulator.set_override(HEX_KEY, "ok")
    prober = RestProber()
    try:
        result = await prober.probe(azure_config(simulator.azure_base_url), HEX_KEY)
    finally:
        await prober.aclose()
    assert result.result is Result.OK, result


@pytest.mark.parametrize(
    ("key", "deployment", "expected", "status"),
    [
        (make_azure_key("ok"), "my-realtime", Result.OK, 101),
        (make_azure_key("ok"), "missing-realtime", Result.MODEL_NOT_FOUND, 404),
        (make_azure_key("ok"), "unsupported-gpt-4o", Result.MODEL_NOT_FOUND, 400),
        (make_azure_key("invalid_api_key"), "my-realtime", Result.INVALID_API_KEY, 401),
        (make_azure_key("rate_limited"), "my-realtime", Result.RATE_LIMITED, 429),
    ],
    ids=["ok", "deployment-not-found", "operation-not-supported", "invalid", "throttled"],
)
async def test_realtime_probe_opens_a_session_on_the_deployment(
    simulator: RunningSimulator, key: str, deployment: str, expected: Result, status: int
) -> None:
    prober = RealtimeProber()
    try:
        result = await prober.probe(azure_config(simulator.azure_base_url, deployment), key)
    finally:
        await prober.aclose()
    assert (result.result, result.http_status) == (expected, status), result
    assert key not in result.message
    if expected is Result.RATE_LIMITED:
        assert result.retry_after == 20


async def test_live_probe_opens_a_session_on_azure(simulator: RunningSimulator) -> None:
    config = azure_config(
        simulator.azure_base_url, probes=("live",), live=LiveSettings(model="gpt-live-1")
    )
    prober = LiveProber()
    try:
        result = await prober.probe(config, make_azure_key("ok"))
        refused = await prober.probe(config, make_azure_key("invalid_api_key"))
    finally:
        await prober.aclose()
    assert result.result is Result.OK, result
    assert (refused.result, refused.http_status) == (Result.INVALID_API_KEY, 401), refused


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """A server that records the headers of every request and refuses it as Azure does."""
    seen: list[dict[str, str]] = []

    async def record(request: web.Request) -> web.StreamResponse:
        seen.append(dict(request.headers))
        body = {
            "error": {"code": "401", "message": "Access denied due to invalid subscription key"}
        }
        return web.json_response(body, status=401)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    async with served_on_loopback(app, access_log=None) as port:
        yield f"http://127.0.0.1:{port}/openai/v1", seen


async def test_every_probe_sends_api_key_and_never_authorization(
    recorder: tuple[str, list[dict[str, str]]],
) -> None:
    base_url, seen = recorder
    key = make_azure_key("ok")
    config = azure_config(
        base_url,
        organization="org-x",
        project="proj_x",
        live=LiveSettings(model="gpt-live-1"),
        inference=InferenceSettings(model="gpt-4.1-nano"),
    )
    results = []
    for prober in (RestProber(), RealtimeProber(), LiveProber(), InferenceProber()):
        try:
            results.append(await prober.probe(config, key))  # type: ignore[attr-defined]
        finally:
            await prober.aclose()  # type: ignore[attr-defined]
    assert [result.result for result in results] == [Result.INVALID_API_KEY] * 4, results
    assert len(seen) == 4
    for headers in seen:
        lowered = {name.lower(): value for name, value in headers.items()}
        assert lowered.get("api-key") == key
        assert "authorization" not in lowered
        assert "openai-organization" not in lowered  # Azure has no organization or project
        assert "openai-project" not in lowered
