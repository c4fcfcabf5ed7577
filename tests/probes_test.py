"""Each probe against the simulator over real sockets: every scenario classified as expected."""

from __future__ import annotations

import asyncio

import pytest
import yarl

from exporter.classify import Result
from exporter.config import KeyConfig, RealtimeSettings
from exporter.keys import KeySource, SourceKind
from exporter.probes.realtime import RealtimeProber
from exporter.probes.rest import RestProber
from exporter.simulator import RunningSimulator, key_id, make_key
from tests.harness import LoopbackRelay
from tests.support.key_config import key_config
from tests.support.simulator import simulator
from tests.support.sockets import established_to

__all__ = ["simulator"]  # a fixture from tests/support

PROBE_TIMEOUT = 2.0  # generous: a loaded CI machine must not turn a verdict into a timeout

REST_EXPECTED: dict[str, tuple[Result, int, str]] = {
    "ok": (Result.OK, 200, ""),
    "ok_no_ratelimit_headers": (Result.OK, 200, ""),
    "invalid_api_key": (Result.INVALID_API_KEY, 401, "invalid_api_key"),
    "missing_scopes": (Result.INSUFFICIENT_PERMISSIONS, 401, "missing_scopes"),
    "account_deactivated": (Result.ACCOUNT_DEACTIVATED, 401, "account_deactivated"),
    "mismatched_organization": (Result.MISMATCHED_ORGANIZATION, 401, "mismatched_organization"),
    "mismatched_project": (Result.MISMATCHED_PROJECT, 401, "mismatched_project"),
    "insufficient_quota": (Result.OK, 200, ""),  # no free call sees credit
    "rate_limited": (Result.RATE_LIMITED, 429, "rate_limit_exceeded"),
    "unsupported_region": (
        Result.UNSUPPORTED_REGION,
        403,
        "unsupported_country_region_territory",
    ),
    "server_error": (Result.SERVER_ERROR, 500, "server_error"),
    "overloaded": (Result.SERVER_ERROR, 503, "server_error"),
    "bad_gateway": (Result.SERVER_ERROR, 502, "server_error"),
    "gateway_timeout": (Result.SERVER_ERROR, 504, "server_error"),
    "hang": (Result.TIMEOUT, 0, "timeout"),
    "hang_body": (Result.TIMEOUT, 0, "timeout"),
    "reset": (Result.CONNECTION_ERROR, 0, "connection_error"),
    "non_json": (Result.PROTOCOL_ERROR, 200, "protocol_error"),
    "wrong_shape": (Result.PROTOCOL_ERROR, 200, "protocol_error"),
    "html_200": (Result.PROTOCOL_ERROR, 200, "protocol_error"),
    "endless": (Result.PROTOCOL_ERROR, 200, "protocol_error"),
    "rt_forbidden": (Result.OK, 200, ""),
    "rest_missing_scopes": (Result.INSUFFICIENT_PERMISSIONS, 401, "missing_scopes"),
}

REALTIME_EXPECTED: dict[str, tuple[Result, int, int | None]] = {
    "ok": (Result.OK, 101, 1000),
    "invalid_api_key": (Result.INVALID_API_KEY, 101, 3000),
    "account_deactivated": (Result.ACCOUNT_DEACTIVATED, 101, 3000),
    "mismatched_organization": (Result.MISMATCHED_ORGANIZATION, 101, 3000),
    "insufficient_quota": (Result.OK, 101, 1000),
    "rate_limited": (Result.OK, 101, 1000),
    "unsupported_region": (Result.UNSUPPORTED_REGION, 403, None),
    "server_error": (Result.SERVER_ERROR, 101, 1011),
    "overloaded": (Result.SERVER_ERROR, 503, None),
    "bad_gateway": (Result.SERVER_ERROR, 502, None),
    "hang": (Result.TIMEOUT, 0, None),
    "reset": (Result.CONNECTION_ERROR, 0, None),
    "rt_missing_scopes": (Result.INSUFFICIENT_PERMISSIONS, 101, 3000),
    "rt_forbidden": (Result.MODEL_NOT_FOUND, 403, None),
    "rt_azure_400": (Result.MODEL_NOT_FOUND, 400, None),
    "rt_html_502": (Result.SERVER_ERROR, 502, None),
    "rt_session_expired": (Result.SERVER_ERROR, 101, 1001),
    "rt_drop": (Result.CONNECTION_ERROR, 101, 1006),
    "rt_silent": (Result.TIMEOUT, 101, None),
    "rt_silent_update": (Result.TIMEOUT, 101, None),
    "rt_binary": (Result.PROTOCOL_ERROR, 101, None),
    "rt_garbage": (Result.PROTOCOL_ERROR, 101, None),
    "rt_unknown_close": (Result.OTHER, 101, 4999),
    "rt_unexpected_event": (Result.PROTOCOL_ERROR, 101, None),
    "rt_flood": (Result.PROTOCOL_ERROR, 101, None),
    "rest_missing_scopes": (Result.OK, 101, 1000),
}


def probe_config(simulator: RunningSimulator, **overrides: object) -> KeyConfig:
    defaults = {"base_url": simulator.base_url, "timeout": PROBE_TIMEOUT, "interval": 60.0}
    return key_config("test", **(defaults | overrides))


@pytest.mark.parametrize("fresh", [True, False], ids=["own-connection", "pooled"])
@pytest.mark.parametrize("scenario", sorted(REST_EXPECTED))
async def test_rest_probe_classifies_scenario(
    simulator: RunningSimulator, scenario: str, fresh: bool
) -> None:
    """Both ways a REST probe goes: its own connection and the shared pool."""
    expected, status, code = REST_EXPECTED[scenario]
    prober = RestProber()
    try:
        result = await prober.probe_on_connection(
            probe_config(simulator), make_key(scenario), fresh=fresh
        )
    finally:
        await prober.aclose()
    assert (result.result, result.http_status, result.error_code) == (expected, status, code), (
        result
    )
    assert result.probe == "rest"
    assert result.duration > 0
    if status:
        timed = {"connect", "first_byte", "transfer"} if fresh else {"first_byte", "transfer"}
        assert timed <= set(result.phases), result.phases
    if expected is Result.TIMEOUT:
        assert PROBE_TIMEOUT - 0.1 <= result.duration < PROBE_TIMEOUT + 0.6


async def test_rest_probe_reports_ratelimit_and_retry_after(simulator: RunningSimulator) -> None:
    prober = RestProber()
    try:
        limited = await prober.probe(probe_config(simulator), make_key("rate_limited", 37))
        ok = await prober.probe(probe_config(simulator), make_key("ok"))
    finally:
        await prober.aclose()
    assert limited.retry_after == 37
    assert limited.ratelimit["remaining_requests"] == 0
    assert ok.request_id.startswith("req_")
    assert ok.ratelimit["limit_requests"] > 0


async def test_rest_probe_timing_includes_server_delay(simulator: RunningSimulator) -> None:
    prober = RestProber()
    try:
        result = await prober.probe(probe_config(simulator), make_key("slow", 300))
    finally:
        await prober.aclose()
    assert result.result is Result.OK
    assert 0.3 <= result.duration < 0.6
    assert 0.29 <= result.phases["first_byte"] < 0.6


class HeadRecorder(LoopbackRelay):
    """Forwards to the simulator and keeps the request head each connection opens with."""

    def __init__(self, upstream_port: int) -> None:
        super().__init__()
        self.upstream_port = upstream_port
        self.heads: list[dict[str, str]] = []

    async def connect_upstream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")[1:]
        fields = (line.split(":", 1) for line in lines if ":" in line)
        self.heads.append({name.strip().lower(): value.strip() for name, value in fields})
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        up_writer.write(head)
        return up_reader, up_writer


@pytest.mark.parametrize("path", ["pooled REST", "fresh REST", "Realtime upgrade"])
async def test_every_probe_sends_organization_and_project(
    simulator: RunningSimulator, path: str
) -> None:
    recorder = await HeadRecorder(yarl.URL(simulator.base_url).port or 0).start()
    base_url = f"http://127.0.0.1:{recorder.port}/v1"
    config = probe_config(simulator, base_url=base_url, organization="org-abc", project="proj_abc")
    rest = RestProber()
    try:
        if path == "Realtime upgrade":
            result = await RealtimeProber().probe(config, make_key("ok"))
        else:
            result = await rest.probe_on_connection(
                config, make_key("ok"), fresh=path == "fresh REST"
            )
    finally:
        await rest.aclose()
        await recorder.close()
    assert result.result is Result.OK, result
    assert len(recorder.heads) == 1, recorder.heads
    assert recorder.heads[0]["openai-organization"] == "org-abc"
    assert recorder.heads[0]["openai-project"] == "proj_abc"


async def test_rest_probe_connection_refused_is_classified() -> None:
    prober = RestProber()
    config = KeyConfig(
        name="t",
        source=KeySource(SourceKind.ENV, "X"),
        base_url="http://127.0.0.1:9/v1",
        timeout=1.0,
    )
    try:
        result = await prober.probe(config, make_key("ok"))
    finally:
        await prober.aclose()
    assert result.result is Result.CONNECTION_ERROR


@pytest.mark.parametrize("scenario", sorted(REALTIME_EXPECTED))
async def test_realtime_probe_classifies_scenario(
    simulator: RunningSimulator, scenario: str
) -> None:
    expected, status, close_code = REALTIME_EXPECTED[scenario]
    result = await RealtimeProber().probe(probe_config(simulator), make_key(scenario))
    assert (result.result, result.http_status) == (expected, status), result
    if close_code is not None:
        assert result.close_code == close_code, result
    if expected is Result.OK:
        assert set(result.phases) == {"connect", "session_created", "session_updated"}
        assert result.error_code == ""
    else:
        assert result.error_code


async def test_realtime_invalid_key_reports_openai_error_code(simulator: RunningSimulator) -> None:
    result = await RealtimeProber().probe(probe_config(simulator), make_key("invalid_api_key"))
    assert result.error_code == "invalid_api_key"
    assert "Incorrect API key provided" in result.message
    assert "connect" in result.phases


async def test_realtime_beta_shape_is_retired(simulator: RunningSimulator) -> None:
    config = probe_config(simulator, realtime=RealtimeSettings(api="beta"))
    result = await RealtimeProber().probe(config, make_key("ok"))
    assert result.result is Result.API_SHAPE_RETIRED
    assert (result.close_code, result.error_code) == (4000, "beta_api_shape_disabled")


async def test_realtime_unknown_model(simulator: RunningSimulator) -> None:
    config = probe_config(simulator, realtime=RealtimeSettings(model="gpt-nope"))
    result = await RealtimeProber().probe(config, make_key("ok"))
    assert result.result is Result.MODEL_NOT_FOUND
    assert (result.close_code, result.error_code) == (4000, "invalid_model")


async def test_realtime_delay_before_session_created_is_its_phase(
    simulator: RunningSimulator,
) -> None:
    result = await RealtimeProber().probe(probe_config(simulator), make_key("slow", 250))
    assert result.result is Result.OK
    assert 0.25 <= result.phases["session_created"] < 0.5
    assert result.phases["connect"] < 0.2


async def test_realtime_probe_never_bills_and_leaks_nothing(simulator: RunningSimulator) -> None:
    """100 probes, healthy and failing: no billable event, no task or socket left behind."""
    scenarios = [
        "ok",
        "invalid_api_key",
        "rt_drop",
        "rt_binary",
        "rt_silent_update",
        "server_error",
    ]
    keys = {scenario: make_key(scenario) for scenario in scenarios}
    prober = RealtimeProber()
    tasks_before = len(asyncio.all_tasks())
    config = probe_config(simulator, timeout=0.3)
    for index in range(100):
        await prober.probe(config, keys[scenarios[index % len(scenarios)]])
    await asyncio.sleep(0.2)
    stats = simulator.stats()
    for key in keys.values():
        entry = stats["keys"].get(key_id(key), {})
        assert entry.get("billable_events", 0) == 0, entry
    ok_events = stats["keys"][key_id(keys["ok"])]["client_events"]
    assert set(ok_events) == {"session.update"}, ok_events
    assert len(asyncio.all_tasks()) <= tasks_before
    assert established_to([simulator.port]) == 0
