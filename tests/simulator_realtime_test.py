"""The simulator's Realtime WebSocket over real loopback sockets, against the facts file."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest
import websockets

from exporter.simulator import (
    RunningSimulator,
    make_key,
)
from exporter.simulator.openai_shapes import REALTIME_MODELS
from tests.support.simulator_client import (
    recv_json,
    rt_connect,
    sim,
    until_closed,
)

__all__ = ["sim"]  # fixtures, shared from tests/support


# --- Realtime ----------------------------------------------------------------------------


async def test_realtime_happy_path(sim: RunningSimulator) -> None:
    async with rt_connect(sim, make_key("ok"), model="gpt-realtime-mini") as ws:
        assert ws.response is not None
        assert "x-request-id" not in ws.response.headers
        created = await recv_json(ws)
        assert created["type"] == "session.created"
        assert created["event_id"].startswith("event_")
        session = created["session"]
        assert session["type"] == "realtime"
        assert session["object"] == "realtime.session"
        assert session["id"].startswith("sess_")
        assert session["model"] == "gpt-realtime-mini"
        assert session["output_modalities"] == ["audio"]
        assert session["expires_at"] > time.time()
        update = {
            "type": "session.update",
            "session": {"type": "realtime", "output_modalities": ["text"]},
        }
        await ws.send(json.dumps(update))
        updated = await recv_json(ws)
        assert updated["type"] == "session.updated"
        assert updated["session"]["output_modalities"] == ["text"]
        assert updated["session"]["id"] == session["id"]


async def test_errors_inside_a_session_keep_it_open(sim: RunningSimulator) -> None:
    async with rt_connect(sim, make_key("ok")) as ws:
        await recv_json(ws)
        await ws.send(json.dumps({"type": "session.update", "session": {}, "event_id": "c1"}))
        missing = await recv_json(ws)
        assert missing["type"] == "error"
        assert missing["error"]["code"] == "missing_required_parameter"
        assert missing["error"]["param"] == "session.type"
        assert missing["error"]["event_id"] == "c1"
        await ws.send(json.dumps({"type": "session.update", "session": {"type": "bogus"}}))
        assert (await recv_json(ws))["error"]["code"] == "invalid_value"
        await ws.send("{not json")
        assert (await recv_json(ws))["error"]["code"] == "invalid_json"
        await ws.send(json.dumps({"type": "no.such.event"}))
        unknown = await recv_json(ws)
        assert (unknown["error"]["code"], unknown["error"]["param"]) == ("invalid_value", "type")
        await ws.send(json.dumps({"type": "session.update", "session": {"type": "realtime"}}))
        assert (await recv_json(ws))["type"] == "session.updated"


async def test_realtime_invalid_key_is_101_then_error_then_3000(sim: RunningSimulator) -> None:
    key = "sk-proj-" + "Z" * 150 + "MxYA"
    async with rt_connect(sim, key) as ws:
        events = await until_closed(ws)
        assert ws.close_code == 3000
        assert ws.close_reason == "invalid_request_error.invalid_api_key"
    assert len(events) == 1
    event = events[0]
    assert list(event) == ["type", "event_id", "error"]
    assert event["type"] == "error" and event["event_id"].startswith("event_")
    assert event["error"] == {
        "type": "invalid_request_error",
        "code": "invalid_api_key",
        "message": "Incorrect API key provided: sk-proj-...MxYA. "
        "You can find your API key at https://platform.openai.com/account/api-keys.",
        "param": None,
        "event_id": None,
    }


async def test_realtime_invalid_api_key_scenario(sim: RunningSimulator) -> None:
    async with rt_connect(sim, make_key("invalid_api_key")) as ws:
        events = await until_closed(ws)
    assert events[0]["error"]["code"] == "invalid_api_key"
    assert (ws.close_code, ws.close_reason) == (3000, "invalid_request_error.invalid_api_key")


async def test_realtime_without_authorization(sim: RunningSimulator) -> None:
    async with rt_connect(sim, None) as ws:
        events = await until_closed(ws)
    assert events[0]["error"]["code"] is None
    assert events[0]["error"]["message"] == "Missing bearer or basic authentication in header"
    assert (ws.close_code, ws.close_reason) == (3000, "invalid_request_error")


@pytest.mark.parametrize(
    ("scenario", "code", "reason"),
    [
        ("account_deactivated", "account_deactivated", "invalid_request_error.account_deactivated"),
        (
            "mismatched_organization",
            "mismatched_organization",
            "invalid_request_error.mismatched_organization",
        ),
        ("mismatched_project", "mismatched_project", "invalid_request_error.mismatched_project"),
        ("rt_missing_scopes", None, "invalid_request_error"),
    ],
)
async def test_realtime_in_band_key_errors(
    sim: RunningSimulator, scenario: str, code: str | None, reason: str
) -> None:
    async with rt_connect(sim, make_key(scenario)) as ws:
        events = await until_closed(ws)
    assert [event["type"] for event in events] == ["error"]
    assert events[0]["error"]["code"] == code
    assert (ws.close_code, ws.close_reason) == (3000, reason)
    if scenario == "rt_missing_scopes":
        assert events[0]["error"]["message"].startswith(
            "You have insufficient permissions for this operation. "
            "Missing scopes: api.model.realtime."
        )


async def test_beta_header_is_refused_even_for_a_good_key(sim: RunningSimulator) -> None:
    beta = {"OpenAI-Beta": "realtime=v1"}
    async with rt_connect(sim, make_key("ok"), headers=beta) as ws:
        events = await until_closed(ws)
    assert events[0]["error"]["code"] == "beta_api_shape_disabled"
    assert events[0]["error"]["message"].startswith("The Realtime Beta API is no longer supported.")
    assert (ws.close_code, ws.close_reason) == (
        4000,
        "invalid_request_error.beta_api_shape_disabled",
    )


async def test_missing_and_unknown_models(sim: RunningSimulator) -> None:
    async with rt_connect(sim, make_key("ok"), model=None) as ws:
        await until_closed(ws)
    assert (ws.close_code, ws.close_reason) == (4000, "invalid_request_error.missing_model")
    async with rt_connect(sim, make_key("ok"), model="gpt-4o") as ws:
        events = await until_closed(ws)
    assert events[0]["error"]["code"] == "invalid_model"
    assert (ws.close_code, ws.close_reason) == (4000, "invalid_request_error.invalid_model")


@pytest.mark.parametrize("model", REALTIME_MODELS)
async def test_every_known_model_opens_a_session(sim: RunningSimulator, model: str) -> None:
    async with rt_connect(sim, make_key("ok"), model=model) as ws:
        assert (await recv_json(ws))["session"]["model"] == model


@pytest.mark.parametrize(
    ("scenario", "status", "content_type"),
    [
        ("rt_forbidden", 403, "application/json"),
        ("rt_azure_400", 400, "application/json"),
        ("rt_html_502", 502, "text/html"),
        ("unsupported_region", 403, "application/json"),
        ("overloaded", 503, "application/json"),
        ("bad_gateway", 502, "text/html"),
        ("gateway_timeout", 504, "text/html"),
    ],
)
async def test_rejected_upgrades(
    sim: RunningSimulator, scenario: str, status: int, content_type: str
) -> None:
    with pytest.raises(websockets.InvalidStatus) as caught:
        async with rt_connect(sim, make_key(scenario)):
            pass
    response = caught.value.response
    assert response.status_code == status
    assert response.headers["content-type"].startswith(content_type)
    if content_type == "application/json":
        error = json.loads(response.body)["error"]
        if scenario == "rt_azure_400":
            assert set(error) == {"code", "message"}
        else:
            assert list(error) == ["message", "type", "param", "code"]
            if scenario == "rt_forbidden":
                assert error["code"] == "model_not_found"


async def test_realtime_server_error_closes_1011(sim: RunningSimulator) -> None:
    async with rt_connect(sim, make_key("server_error")) as ws:
        events = await until_closed(ws)
    assert events[0]["error"]["type"] == "server_error"
    assert ws.close_code == 1011


async def test_session_expired(sim: RunningSimulator) -> None:
    async with rt_connect(sim, make_key("rt_session_expired")) as ws:
        events = await until_closed(ws)
    assert [event["type"] for event in events] == ["session.created", "error"]
    assert events[1]["error"]["code"] == "session_expired"
    assert events[1]["error"]["message"] == "Your session hit the maximum duration of 60 minutes."
    assert ws.close_code == 1001


async def test_drop_is_1006(sim: RunningSimulator) -> None:
    async with rt_connect(sim, make_key("rt_drop")) as ws:
        with pytest.raises(websockets.ConnectionClosedError) as caught:
            await recv_json(ws)
    assert caught.value.rcvd is None
    assert ws.close_code == 1006


async def test_silent_never_sends_session_created(sim: RunningSimulator) -> None:
    async with rt_connect(sim, make_key("rt_silent")) as ws:
        await ws.send(json.dumps({"type": "session.update", "session": {"type": "realtime"}}))
        with pytest.raises(TimeoutError):
            await recv_json(ws, wait_s=0.3)
    assert ws.close_code == 1000  # the client's own clean close is answered


async def test_silent_update_never_answers(sim: RunningSimulator) -> None:
    async with rt_connect(sim, make_key("rt_silent_update")) as ws:
        assert (await recv_json(ws))["type"] == "session.created"
        await ws.send(json.dumps({"type": "session.update", "session": {"type": "realtime"}}))
        with pytest.raises(TimeoutError):
            await recv_json(ws, wait_s=0.3)


async def test_binary_garbage_and_unexpected_first_frames(sim: RunningSimulator) -> None:
    async with rt_connect(sim, make_key("rt_binary")) as ws:
        assert isinstance(await asyncio.wait_for(ws.recv(), 2), bytes)
    async with rt_connect(sim, make_key("rt_garbage")) as ws:
        text = await asyncio.wait_for(ws.recv(), 2)
        assert isinstance(text, str)
        with pytest.raises(json.JSONDecodeError):
            json.loads(text)
    async with rt_connect(sim, make_key("rt_unexpected_event")) as ws:
        event = await recv_json(ws)
        assert event["type"] not in ("session.created", "error")
        with pytest.raises(TimeoutError):
            await recv_json(ws, wait_s=0.2)


async def test_unknown_close_code(sim: RunningSimulator) -> None:
    async with rt_connect(sim, make_key("rt_unknown_close")) as ws:
        assert await until_closed(ws) == []
    assert ws.close_code == 4999
    assert ws.close_reason


async def test_flood_then_happy_path(sim: RunningSimulator) -> None:
    async with rt_connect(sim, make_key("rt_flood", 60)) as ws:
        before = 0
        while (await recv_json(ws))["type"] != "session.created":
            before += 1
        assert before == 60
        await ws.send(json.dumps({"type": "session.update", "session": {"type": "realtime"}}))
        between = 0
        while (await recv_json(ws))["type"] != "session.updated":
            between += 1
        assert between == 20


async def test_slow_session_created(sim: RunningSimulator) -> None:
    started = time.monotonic()
    async with rt_connect(sim, make_key("slow", 300)) as ws:
        assert (await recv_json(ws))["type"] == "session.created"
    assert 0.3 <= time.monotonic() - started < 1.5


async def test_realtime_hang_never_answers_the_upgrade(sim: RunningSimulator) -> None:
    with pytest.raises(TimeoutError):
        async with rt_connect(sim, make_key("hang"), open_timeout=0.3):
            pass


async def test_realtime_reset_at_upgrade(sim: RunningSimulator) -> None:
    with pytest.raises((ConnectionResetError, websockets.InvalidMessage, EOFError)):
        async with rt_connect(sim, make_key("reset")):
            pass


@pytest.mark.parametrize(
    "scenario", ["missing_scopes", "rest_missing_scopes", "rate_limited", "non_json", "endless"]
)
async def test_rest_only_failures_leave_realtime_healthy(
    sim: RunningSimulator, scenario: str
) -> None:
    async with rt_connect(sim, make_key(scenario)) as ws:
        assert (await recv_json(ws))["type"] == "session.created"
        await ws.send(json.dumps({"type": "session.update", "session": {"type": "realtime"}}))
        assert (await recv_json(ws))["type"] == "session.updated"


async def test_insufficient_quota_shows_on_response_create(sim: RunningSimulator) -> None:
    async with rt_connect(sim, make_key("insufficient_quota")) as ws:
        assert (await recv_json(ws))["type"] == "session.created"
        await ws.send(json.dumps({"type": "response.create"}))
        error = await recv_json(ws)
        assert error["error"]["code"] == "insufficient_quota"
        await ws.send(json.dumps({"type": "session.update", "session": {"type": "realtime"}}))
        assert (await recv_json(ws))["type"] == "session.updated"


async def test_client_may_leave_at_any_time(
    sim: RunningSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for scenario in ("ok", "slow", "rt_flood", "rt_silent", "invalid_api_key", "hang"):
        connection = rt_connect(sim, make_key(scenario, 200 if scenario == "slow" else None))
        try:
            ws = await asyncio.wait_for(connection.__aenter__(), 0.3)
        except TimeoutError:
            continue
        await ws.close()
    async with rt_connect(sim, make_key("ok")) as ws:
        assert (await recv_json(ws))["type"] == "session.created"
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors == []
