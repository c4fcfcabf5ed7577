"""The simulator's REST side over real loopback sockets, against the facts file row by row."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time

import httpx
import pytest

from exporter.simulator import (
    SCENARIOS,
    RunningSimulator,
    key_id,
    make_key,
    start_simulator,
)
from exporter.simulator.timing import sleep_until
from tests.support.simulator_client import (
    REQUEST_ID,
    assert_error_envelope,
    auth,
    client,
    get_models,
    sim,
)
from tests.support.virtual_clock import run_virtual

__all__ = ["client", "sim"]  # fixtures, shared from tests/support


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
    key = make_key("slow", 300)
    started = time.monotonic()
    response = await get_models(client, sim, key)
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.headers["openai-processing-ms"] == "300"
    # The simulator's own record, not a wall-clock margin: it woke at its deadline, not before.
    ((arrived, woke, written),) = sim.stats()["keys"][key_id(key)]["rest_answer_times"]
    assert 0.3 <= woke - arrived <= written - arrived <= elapsed


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


async def test_sleep_until_never_wakes_before_its_deadline() -> None:
    """How late it wakes is a figure of the benchmark (bench/, the simulator's own lateness
    from rest_answer_times), not asserted here: a shared machine moves it."""
    for _ in range(20):
        deadline = time.monotonic() + 0.01
        await sleep_until(deadline)
        assert time.monotonic() >= deadline


def test_drip_stays_under_its_budget() -> None:
    """On a virtual clock (tests/support/virtual_clock.py) the drip's own timing is exact: its
    pieces arrive apart, the last one at 0.9 x 500 ms, and a busy machine cannot move that."""

    async def pieces() -> tuple[list[float], bytes]:
        loop = asyncio.get_running_loop()
        async with await start_simulator() as sim:
            reader, writer = await asyncio.open_connection(sim.host, sim.port)
            key = make_key("drip", 500)
            sent = loop.time()
            writer.write(
                f"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n".encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
            times, body = [], b""
            while len(body) < length:
                body += await reader.read(65536)
                times.append(loop.time() - sent)
            writer.close()
        return times, body

    times, body = run_virtual(pieces())
    assert len(times) >= 5, times
    assert times[-1] == pytest.approx(0.45, abs=1e-6)
    assert times == sorted(times) and times[0] < 0.1
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
