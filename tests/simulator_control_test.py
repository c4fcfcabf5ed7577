"""The simulator's stats, overrides and lifecycle, its logs and its TLS."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from typing import Any

import httpx
import pytest
import trustme
import websockets

from exporter.simulator import (
    RunningSimulator,
    key_id,
    make_key,
    start_simulator,
)
from tests.support.simulator_client import (
    auth,
    client,
    get_models,
    recv_json,
    rt_connect,
    sim,
    until_closed,
)

__all__ = ["client", "sim"]  # fixtures, shared from tests/support


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
