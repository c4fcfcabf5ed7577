"""The OpenAI simulator, over real loopback sockets, against the facts file row by row."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trustme
import websockets
from websockets.asyncio.client import ClientConnection

from exporter.simulator import (
    SCENARIOS,
    RunningSimulator,
    key_id,
    make_key,
    select_scenario,
    start_simulator,
)
from exporter.simulator.openai_shapes import REALTIME_MODELS, redact_key
from exporter.simulator.timing import sleep_until

REQUEST_ID = re.compile(r"req_[0-9a-f]{32}")
KEY_CHARS = re.compile(r"[A-Za-z0-9_-]+")


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    simulator = await start_simulator()
    yield simulator
    await simulator.close()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=3.0) as http:
        yield http


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def get_models(
    http: httpx.AsyncClient, sim: RunningSimulator, key: str | None
) -> httpx.Response:
    headers = auth(key) if key is not None else {}
    return await http.get(f"{sim.base_url}/models", headers=headers)


def rt_connect(
    sim: RunningSimulator,
    key: str | None,
    model: str | None = "gpt-realtime",
    headers: dict[str, str] | None = None,
    open_timeout: float = 2.0,
) -> websockets.asyncio.client.connect:
    all_headers = auth(key) if key is not None else {}
    all_headers.update(headers or {})
    url = sim.realtime_url + (f"?model={model}" if model is not None else "")
    return websockets.connect(
        url, additional_headers=all_headers, open_timeout=open_timeout, close_timeout=1.0
    )


async def recv_json(ws: ClientConnection, wait_s: float = 2.0) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.recv(), wait_s)
    assert isinstance(message, str)
    event = json.loads(message)
    assert isinstance(event, dict)
    return event


async def until_closed(ws: ClientConnection) -> list[dict[str, Any]]:
    """Every event the server sends before it closes the socket."""
    events = []
    with pytest.raises(websockets.ConnectionClosed):
        while True:
            events.append(await recv_json(ws))
    return events


def assert_error_envelope(response: httpx.Response, status: int, type_: str, code: str | None):
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"]
    assert list(body["error"]) == ["message", "type", "param", "code"]
    assert body["error"]["type"] == type_
    assert body["error"]["code"] == code
    assert body["error"]["param"] is None
    assert REQUEST_ID.fullmatch(response.headers["x-request-id"])
    assert response.headers["openai-version"] == "2020-10-01"
    assert int(response.headers["openai-processing-ms"]) >= 0
    return body["error"]["message"]


# --- keys and scenario selection ---------------------------------------------------------


def test_make_key_is_plausible_and_selects_its_scenario() -> None:
    for name in SCENARIOS:
        key = make_key(name)
        assert len(key) == 164
        assert key.startswith("sk-proj-sim--")
        assert KEY_CHARS.fullmatch(key)
        selected = select_scenario(key)
        assert selected is not None
        assert selected.scenario == name
        assert selected.arg == SCENARIOS[name].default_arg


def test_make_key_carries_the_argument_and_any_prefix() -> None:
    key = make_key("rate_limited", 30, prefix="sk-svcacct-", length=120, seed="a")
    assert key.startswith("sk-svcacct-sim--rate_limited--30--")
    assert len(key) == 120
    assert select_scenario(key) == select_scenario(key.replace("sk-svcacct-", "sk-"))
    selected = select_scenario(key)
    assert selected is not None and (selected.scenario, selected.arg) == ("rate_limited", 30)


def test_make_key_is_deterministic_per_seed() -> None:
    assert make_key("ok", seed="x") == make_key("ok", seed="x")
    assert make_key("ok", seed="x")[-4:] != make_key("ok", seed="y")[-4:]


def test_make_key_refuses_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="unknown simulator scenario"):
        make_key("no_such_scenario")
    with pytest.raises(ValueError, match="too short"):
        make_key("ok", length=10)


def test_handwritten_keys_select_too() -> None:
    selected = select_scenario("sk-proj-sim--ok--AAAA")
    assert selected is not None and selected.scenario == "ok"
    assert select_scenario("sk-proj-sim--nonexistent--AAAA") is None
    assert select_scenario("sk-proj-AAAAAAAAAAAAAAAAAAAAAA") is None
    assert select_scenario("sk-proj-sim--ok--AA AA") is None  # a stray space breaks a key


def test_key_id_is_sha256_prefix() -> None:
    key = make_key("ok")
    assert key_id(key) == hashlib.sha256(key.encode()).hexdigest()[:16]


def test_redaction_keeps_eight_and_four() -> None:
    key = make_key("ok", seed="r")
    assert redact_key(key) == f"{key[:8]}...{key[-4:]}"
    assert redact_key("short") == "*****"


# --- REST --------------------------------------------------------------------------------


async def test_ok_lists_models_with_ratelimit_headers(
    sim: RunningSimulator, client: httpx.AsyncClient
) -> None:
    key = make_key("ok")
    first = await get_models(client, sim, key)
    second = await get_models(client, sim, key)
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/json"
    body = first.json()
    assert body["object"] == "list"
    ids = [model["id"] for model in body["data"]]
    assert "gpt-realtime" in ids
    for model in body["data"]:
        assert set(model) == {"id", "object", "created", "owned_by", "shutdown_date"}
        assert model["object"] == "model" and model["owned_by"] == "system"
    assert REQUEST_ID.fullmatch(first.headers["x-request-id"])
    assert first.headers["openai-version"] == "2020-10-01"
    assert first.headers["x-ratelimit-limit-requests"] == "10000"
    assert first.headers["x-ratelimit-remaining-requests"] == "9999"
    assert second.headers["x-ratelimit-remaining-requests"] == "9998"
    for name in ("reset-requests", "limit-tokens", "remaining-tokens", "reset-tokens"):
        assert f"x-ratelimit-{name}" in first.headers


async def test_ok_no_ratelimit_headers(sim: RunningSimulator, client: httpx.AsyncClient) -> None:
    response = await get_models(client, sim, make_key("ok_no_ratelimit_headers"))
    assert response.status_code == 200
    assert response.json()["object"] == "list"
    assert not [name for name in response.headers if name.startswith("x-ratelimit-")]


async def test_single_model_and_unknown_paths(
    sim: RunningSimulator, client: httpx.AsyncClient
) -> None:
    headers = auth(make_key("ok"))
    found = await client.get(f"{sim.base_url}/models/gpt-realtime", headers=headers)
    assert found.json() == {**found.json(), "id": "gpt-realtime", "object": "model"}
    missing = await client.get(f"{sim.base_url}/models/gpt-nope", headers=headers)
    assert assert_error_envelope(missing, 404, "invalid_request_error", "model_not_found")
    unknown = await client.post(f"{sim.base_url}/chat/things", headers=headers)
    message = assert_error_envelope(unknown, 404, "invalid_request_error", None)
    assert message == "Invalid URL (POST /v1/chat/things)"


REST_ERRORS = [
    # scenario, status, type, code, message start
    ("invalid_api_key", 401, "invalid_request_error", "invalid_api_key", "Incorrect API key"),
    ("missing_scopes", 401, "invalid_request_error", None, "You have insufficient permissions"),
    ("rest_missing_scopes", 401, "invalid_request_error", None, "You have insufficient"),
    ("account_deactivated", 401, "invalid_request_error", "account_deactivated", "This key is"),
    (
        "mismatched_organization",
        401,
        "invalid_request_error",
        "mismatched_organization",
        "OpenAI-Organization header should match organization for API key",
    ),
    (
        "mismatched_project",
        401,
        "invalid_request_error",
        "mismatched_project",
        "OpenAI-Project header should match project for API key",
    ),
    ("rate_limited", 429, "requests", "rate_limit_exceeded", "Rate limit reached for"),
    (
        "unsupported_region",
        403,
        "request_forbidden",
        "unsupported_country_region_territory",
        "Country, region, or territory not supported",
    ),
    ("server_error", 500, "server_error", None, "The server had an error"),
    ("overloaded", 503, "server_error", None, "That model is currently overloaded"),
]


@pytest.mark.parametrize(("scenario", "status", "type_", "code", "start"), REST_ERRORS)
async def test_rest_error_rows(
    sim: RunningSimulator,
    client: httpx.AsyncClient,
    scenario: str,
    status: int,
    type_: str,
    code: str | None,
    start: str,
) -> None:
    key = make_key(scenario)
    response = await get_models(client, sim, key)
    message = assert_error_envelope(response, status, type_, code)
    assert message.startswith(start)
    assert key not in response.text
    if "scopes" in scenario:
        assert "Missing scopes: api.model.read" in message


async def test_unknown_key_is_redacted_like_openai(
    sim: RunningSimulator, client: httpx.AsyncClient
) -> None:
    key = "sk-proj-" + "Q" * 150 + "sQoA"
    response = await get_models(client, sim, key)
    message = assert_error_envelope(response, 401, "invalid_request_error", "invalid_api_key")
    assert message == (
        "Incorrect API key provided: sk-proj-...sQoA. "
        "You can find your API key at https://platform.openai.com/account/api-keys."
    )


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Basic Zm9vOmJhcg==", "sk-proj-sim--ok--AAAA"]
)
async def test_no_key_provided(
    sim: RunningSimulator, client: httpx.AsyncClient, header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = await client.get(f"{sim.base_url}/models", headers=headers)
    message = assert_error_envelope(response, 401, "invalid_request_error", None)
    assert message.startswith("You didn't provide an API key.")


async def test_rate_limited_retry_after(sim: RunningSimulator, client: httpx.AsyncClient) -> None:
    default = await get_models(client, sim, make_key("rate_limited"))
    assert default.headers["retry-after"] == "20"
    assert default.headers["x-ratelimit-remaining-requests"] == "0"
    custom = await get_models(client, sim, make_key("rate_limited", 30))
    assert custom.headers["retry-after"] == "30"
    assert "Please try again in 30s." in custom.json()["error"]["message"]


@pytest.mark.parametrize(("scenario", "status"), [("bad_gateway", 502), ("gateway_timeout", 504)])
async def test_edge_html_pages(
    sim: RunningSimulator, client: httpx.AsyncClient, scenario: str, status: int
) -> None:
    response = await get_models(client, sim, make_key(scenario))
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert response.text.startswith("<html>")
    assert f"<title>{status} " in response.text


async def test_body_faults(sim: RunningSimulator, client: httpx.AsyncClient) -> None:
    non_json = await get_models(client, sim, make_key("non_json"))
    assert non_json.status_code == 200
    assert non_json.headers["content-type"].startswith("text/plain")
    with pytest.raises(json.JSONDecodeError):
        non_json.json()
    wrong = await get_models(client, sim, make_key("wrong_shape"))
    assert wrong.status_code == 200
    assert "data" not in wrong.json()
    html = await get_models(client, sim, make_key("html_200"))
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")


async def test_slow_answers_after_its_delay(
    sim: RunningSimulator, client: httpx.AsyncClient
) -> None:
    started = time.monotonic()
    response = await get_models(client, sim, make_key("slow", 300))
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert 0.3 <= elapsed < 1.0
    assert response.headers["openai-processing-ms"] == "300"


async def read_body(reader: asyncio.StreamReader, head: bytes) -> bytes:
    length = re.search(rb"(?i)content-length: (\d+)", head)
    assert length is not None, head
    return await reader.readexactly(int(length.group(1)))


async def test_slow_sends_nothing_before_its_delay_then_its_whole_answer() -> None:
    # The answer is ready before the wait (its head buffered by prepare()), so a client must see
    # no byte of it early, then head and body together.
    async with await start_simulator() as sim:
        reader, writer = await asyncio.open_connection(sim.host, sim.port)
        request = f"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {make_key('slow', 300)}\r\n\r\n"
        sent = time.monotonic()
        writer.write(request.encode())
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(1), 0.25)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2.0)
        assert time.monotonic() - sent >= 0.3
        body = await asyncio.wait_for(read_body(reader, head), 0.05)
        assert json.loads(body)["object"] == "list"
        writer.close()


async def test_slow_counts_from_the_arrival_of_the_request_and_records_its_answers(
    sim: RunningSimulator,
) -> None:
    key = make_key("slow", 100)
    reader, writer = await asyncio.open_connection(sim.host, sim.port)
    request = f"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n"
    measured: list[tuple[float, float]] = []
    for pause in (0.0, 0.15):  # the second request comes in two pieces: its end is its arrival
        begun = time.monotonic()
        writer.write(request[:20].encode())
        await writer.drain()
        await asyncio.sleep(pause)
        writer.write(request[20:].encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2.0)
        await asyncio.wait_for(read_body(reader, head), 2.0)
        measured.append((begun, time.monotonic()))
    writer.close()
    stats = sim.stats()["keys"][key_id(key)]
    answers = stats["rest_answer_times"]
    assert len(answers) == 2
    assert [arrived for arrived, _, _ in answers] == stats["rest_request_times"]
    for (begun, done), (arrived, woke, written) in zip(measured, answers, strict=True):
        assert begun <= arrived and written <= done  # inside what the client measured
        assert woke >= arrived + 0.1  # never early
        assert written - arrived < 0.1 + 0.05  # and not much late, even on a busy CI machine
    assert answers[1][0] - measured[1][0] >= 0.15


async def test_sleep_until_wakes_at_the_deadline_not_a_millisecond_after() -> None:
    lateness = []
    for _ in range(20):
        deadline = time.monotonic() + 0.01
        await sleep_until(deadline)
        lateness.append(time.monotonic() - deadline)
    assert min(lateness) >= 0
    assert sorted(lateness)[len(lateness) // 2] < 0.0005  # asyncio.sleep alone: about 0.3-1 ms


async def test_drip_stays_under_its_budget(
    sim: RunningSimulator, client: httpx.AsyncClient
) -> None:
    started = time.monotonic()
    pieces = 0
    body = b""
    async with client.stream(
        "GET", f"{sim.base_url}/models", headers=auth(make_key("drip", 500))
    ) as r:
        async for chunk in r.aiter_raw():
            pieces += 1
            body += chunk
    elapsed = time.monotonic() - started
    assert 0.35 < elapsed < 0.5
    assert pieces >= 5
    assert json.loads(body)["object"] == "list"


async def test_hang_never_sends_headers(sim: RunningSimulator) -> None:
    async with httpx.AsyncClient(timeout=httpx.Timeout(3.0, read=0.3)) as http:
        with pytest.raises(httpx.ReadTimeout):
            await get_models(http, sim, make_key("hang"))


async def test_hang_body_sends_headers_then_half_a_body(sim: RunningSimulator) -> None:
    async with httpx.AsyncClient(timeout=httpx.Timeout(3.0, read=0.3)) as http:
        url = f"{sim.base_url}/models"
        async with http.stream("GET", url, headers=auth(make_key("hang_body"))) as response:
            assert response.status_code == 200
            with pytest.raises(httpx.ReadTimeout):
                await response.aread()


async def test_reset_sends_a_tcp_rst(sim: RunningSimulator) -> None:
    reader, writer = await asyncio.open_connection(sim.host, sim.port)
    request = (
        f"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {make_key('reset')}\r\n\r\n"
    )
    writer.write(request.encode())
    await writer.drain()
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(), 2.0)
    writer.close()


async def test_reset_is_an_httpx_transport_error(
    sim: RunningSimulator, client: httpx.AsyncClient
) -> None:
    with pytest.raises(httpx.TransportError):
        await get_models(client, sim, make_key("reset"))
    assert (await get_models(client, sim, make_key("ok"))).status_code == 200


async def test_endless_streams_until_the_client_leaves(
    sim: RunningSimulator, client: httpx.AsyncClient
) -> None:
    received = 0
    url = f"{sim.base_url}/models"
    async with client.stream("GET", url, headers=auth(make_key("endless"))) as response:
        assert response.status_code == 200
        async for chunk in response.aiter_raw():
            received += len(chunk)
            if received > 5_000_000:
                break
    assert received > 5_000_000
    assert (await get_models(client, sim, make_key("ok"))).status_code == 200


async def test_rest_clients_may_leave_at_any_time(
    sim: RunningSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    leaving = ["slow", "drip", "hang", "hang_body", "reset", "ok"]  # endless: its own test
    async with httpx.AsyncClient(timeout=httpx.Timeout(1.0, read=0.1)) as http:
        for scenario in leaving:
            with contextlib.suppress(httpx.HTTPError):
                await get_models(http, sim, make_key(scenario, 500 if scenario == "slow" else None))
    await asyncio.sleep(0.6)  # the slow and drip handlers finish writing to nobody
    async with httpx.AsyncClient(timeout=2.0) as http:
        assert (await get_models(http, sim, make_key("ok"))).status_code == 200
    errors = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert errors == []


@pytest.mark.parametrize("scenario", [name for name in SCENARIOS if name.startswith("rt_")])
async def test_realtime_scenarios_answer_rest_ok(
    sim: RunningSimulator, client: httpx.AsyncClient, scenario: str
) -> None:
    response = await get_models(client, sim, make_key(scenario))
    assert response.status_code == 200
    assert response.json()["object"] == "list"


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


# --- stats, overrides, lifecycle ---------------------------------------------------------


async def test_stats_count_requests_sessions_and_billable_events(
    sim: RunningSimulator, client: httpx.AsyncClient
) -> None:
    key = make_key("ok", seed="stats")
    other = make_key("ok", seed="other")
    for _ in range(3):
        await get_models(client, sim, key)
    await get_models(client, sim, other)
    await get_models(client, sim, None)
    async with rt_connect(sim, key) as ws:
        await recv_json(ws)
        events = [
            {"type": "session.update", "session": {"type": "realtime"}},
            {"type": "input_audio_buffer.append", "audio": ""},
            {"type": "input_audio_buffer.commit"},
            {"type": "conversation.item.create", "item": {"type": "message"}},
            {"type": "response.create"},
        ]
        for event in events:
            await ws.send(json.dumps(event))
        for _ in range(5):  # session.updated, committed, item added, response created/done
            await recv_json(ws)

    stats = (await client.get(f"{sim.base_url.removesuffix('/v1')}/_sim/stats")).json()
    assert stats == json.loads(json.dumps(sim.stats()))
    assert key not in json.dumps(stats)
    mine = stats["keys"][key_id(key)]
    assert mine["rest_requests"] == 3
    assert mine["realtime_sessions"] == 1
    assert mine["billable_events"] == 4
    assert mine["client_events"] == {
        "session.update": 1,
        "input_audio_buffer.append": 1,
        "input_audio_buffer.commit": 1,
        "conversation.item.create": 1,
        "response.create": 1,
    }
    assert len(mine["rest_request_times"]) == 3
    assert mine["rest_request_times"] == sorted(mine["rest_request_times"])
    assert time.monotonic() - mine["rest_request_times"][0] < 10
    assert mine["rest_answer_times"] == []  # only timed scenarios (slow) time their answers
    assert stats["keys"][key_id(other)]["rest_requests"] == 1
    assert stats["keys"]["anonymous"]["rest_requests"] == 1
    assert stats["totals"]["rest_requests"] == 5
    assert stats["totals"]["billable_events"] == 4
    assert sim.recent_rest_requests(key, 60) == 3

    reset = await client.post(f"{sim.base_url.removesuffix('/v1')}/_sim/reset")
    assert reset.status_code == 204
    assert sim.stats() == {
        "keys": {},
        "totals": {
            "rest_requests": 0,
            "realtime_sessions": 0,
            "live_sessions": 0,
            "live_billed_seconds": 0,
            "billable_events": 0,
            "client_events": {},
        },
    }


async def test_probe_like_session_is_not_billable(sim: RunningSimulator) -> None:
    key = make_key("ok")
    async with rt_connect(sim, key) as ws:
        await recv_json(ws)
        await ws.send(json.dumps({"type": "session.update", "session": {"type": "realtime"}}))
        await recv_json(ws)
    assert sim.stats()["keys"][key_id(key)]["billable_events"] == 0


async def test_http_override_revokes_then_restores(
    sim: RunningSimulator, client: httpx.AsyncClient
) -> None:
    control = sim.base_url.removesuffix("/v1") + "/_sim/override"
    key = make_key("ok")
    assert (await get_models(client, sim, key)).status_code == 200
    answer = await client.post(
        control, json={"key": key, "scenario": "invalid_api_key", "arg": None}
    )
    assert answer.status_code == 200
    assert answer.json()["key_id"] == key_id(key)
    assert key not in answer.text
    assert (await get_models(client, sim, key)).status_code == 401
    async with rt_connect(sim, key) as ws:
        await until_closed(ws)
    assert ws.close_code == 3000
    assert (await client.delete(control)).status_code == 204
    assert (await get_models(client, sim, key)).status_code == 200

    bad = await client.post(control, json={"key": key, "scenario": "nope"})
    assert bad.status_code == 400
    assert (await client.post(control, content=b"not json")).status_code == 400


async def test_python_override_with_argument(
    sim: RunningSimulator, client: httpx.AsyncClient
) -> None:
    key = "sk-proj-a-real-looking-key-without-any-scenario-0000"
    assert (await get_models(client, sim, key)).status_code == 401
    sim.set_override(key, "rate_limited", 7)
    limited = await get_models(client, sim, key)
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "7")
    sim.set_override(key, None)
    assert (await get_models(client, sim, key)).status_code == 401
    with pytest.raises(ValueError, match="unknown simulator scenario"):
        sim.set_override(key, "nope")


async def test_keys_never_reach_the_logs(
    sim: RunningSimulator, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    keys = [make_key(name, seed="log") for name in ("ok", "invalid_api_key", "server_error")]
    for key in keys:
        await get_models(client, sim, key)
        sim.set_override(key, "ok")
    await client.post(
        sim.base_url.removesuffix("/v1") + "/_sim/override", json={"key": keys[0], "scenario": "ok"}
    )
    text = caplog.text + "".join(str(record.args) for record in caplog.records)
    for key in keys:
        assert key not in text
        assert key[20:60] not in text


async def test_close_does_not_wait_for_hung_clients() -> None:
    simulator = await start_simulator()
    hung: list[asyncio.Task[Any]] = []

    async def rest(scenario: str) -> None:
        async with httpx.AsyncClient(timeout=30.0) as http:
            with contextlib.suppress(httpx.HTTPError):
                await get_models(http, simulator, make_key(scenario))

    async def realtime(scenario: str) -> None:
        try:
            async with rt_connect(simulator, make_key(scenario), open_timeout=30) as ws:
                await ws.recv()
                await ws.recv()
        except (websockets.WebSocketException, OSError, EOFError):
            pass

    hung += [asyncio.create_task(rest(name)) for name in ("hang", "hang_body", "hang")]
    hung += [asyncio.create_task(realtime(name)) for name in ("hang", "rt_silent", "ok")]
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await simulator.close()
    assert time.monotonic() - started < 2.0
    await asyncio.wait_for(asyncio.gather(*hung), 3.0)
    await simulator.close()  # a second close is harmless


async def test_tls_serves_https_and_wss() -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    async with await start_simulator(ssl_context=server_context) as simulator:
        assert simulator.base_url.startswith("https://127.0.0.1:")
        assert simulator.realtime_url.startswith("wss://127.0.0.1:")
        async with httpx.AsyncClient(verify=client_context) as http:
            response = await get_models(http, simulator, make_key("ok"))
            assert response.status_code == 200
        url = simulator.realtime_url + "?model=gpt-realtime"
        async with websockets.connect(
            url, additional_headers=auth(make_key("ok")), ssl=client_context
        ) as ws:
            assert (await recv_json(ws))["type"] == "session.created"
