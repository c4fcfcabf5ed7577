"""The simulator against tests/testdata/openai_facts.json: the error bodies, headers, events and
close codes of the facts file, copied there by hand, so the simulator is not its own oracle."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from exporter.simulator import RunningSimulator, make_key
from tests.support.simulator_client import (
    auth,
    client,
    recv_json,
    rt_connect,
    sim,
    until_closed,
)

__all__ = ["client", "sim"]  # fixtures from tests/support
FACTS: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parent / "testdata" / "openai_facts.json").read_text()
)


# Errors only a billed call gets: OpenAI never sent them to GET /v1/models.
BILLED_ONLY = {"insufficient_quota"}


def assert_message(message: str, fact: dict[str, Any]) -> None:
    if "message" in fact:
        assert message == fact["message"]
    if "message_starts" in fact:
        assert message.startswith(fact["message_starts"]), message
    if "message_contains" in fact:
        assert fact["message_contains"] in message, message
    if "message_pattern" in fact:
        assert re.fullmatch(fact["message_pattern"], message), message


@pytest.mark.parametrize("scenario", sorted(FACTS["rest_errors"]))
async def test_rest_error_bodies_and_headers(
    sim: RunningSimulator, client: httpx.AsyncClient, scenario: str
) -> None:
    fact = FACTS["rest_errors"][scenario]
    headers = {} if scenario == "no_key" else auth(make_key(scenario))
    if scenario in BILLED_ONLY:
        # Not seen on /models (the facts): a free call answers as usual, a billed one refuses.
        listed = await client.get(f"{sim.base_url}/models", headers=headers)
        assert listed.status_code == 200
        response = await client.post(
            f"{sim.base_url}/responses",
            headers=headers,
            json={"model": "gpt-4.1-nano", "input": "ping", "max_output_tokens": 16},
        )
    else:
        response = await client.get(f"{sim.base_url}/models", headers=headers)
    assert response.status_code == fact["status"]
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["error"]
    error = body["error"]
    assert list(error) == ["message", "type", "param", "code"]
    assert (error["type"], error["param"], error["code"]) == (fact["type"], None, fact["code"])
    assert_message(error["message"], fact)
    for name in FACTS["rest_headers"] + fact.get("headers", []):
        assert name in response.headers, name


@pytest.mark.parametrize("scenario", sorted(FACTS["rest_html"]))
async def test_edge_failures_are_html(
    sim: RunningSimulator, client: httpx.AsyncClient, scenario: str
) -> None:
    response = await client.get(f"{sim.base_url}/models", headers=auth(make_key(scenario)))
    assert response.status_code == FACTS["rest_html"][scenario]
    assert response.headers["content-type"].startswith("text/html")
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)


REALTIME_CASES = {  # fact -> (key, model, extra headers)
    "invalid_api_key": ("invalid_api_key", "gpt-realtime", {}),
    "no_key": (None, "gpt-realtime", {}),
    "beta": ("ok", "gpt-realtime", {"OpenAI-Beta": "realtime=v1"}),
    "session_expired": ("rt_session_expired", "gpt-realtime", {}),
}


@pytest.mark.parametrize("case", sorted(FACTS["realtime_errors"]))
async def test_realtime_error_events_and_closes(sim: RunningSimulator, case: str) -> None:
    fact = FACTS["realtime_errors"][case]
    scenario, model, headers = REALTIME_CASES[case]
    key = make_key(scenario) if scenario else None
    async with rt_connect(sim, key, model=model, headers=headers) as ws:
        events = await until_closed(ws)
    errors = [event for event in events if event["type"] == "error"]
    assert len(errors) == 1, events
    event = errors[0]
    assert list(event) == ["type", "event_id", "error"]
    assert event["event_id"].startswith("event_")
    error = event["error"]
    assert error["param"] is None
    if case != "session_expired":  # the facts give that one's code and message only
        assert (error["type"], error["event_id"]) == ("invalid_request_error", None)
    assert error["code"] == fact["code"]
    assert_message(error["message"], fact)
    assert ws.close_code == fact["close"]
    if "reason" in fact:
        assert ws.close_reason == fact["reason"]


@pytest.mark.parametrize("case", sorted(FACTS["realtime_closes"]))
async def test_realtime_model_closes(sim: RunningSimulator, case: str) -> None:
    fact = FACTS["realtime_closes"][case]
    model = None if case == "missing_model" else "gpt-no-such-model"
    async with rt_connect(sim, make_key("ok"), model=model) as ws:
        await until_closed(ws)
    assert (ws.close_code, ws.close_reason) == (fact["close"], fact["reason"])


async def test_realtime_session_created_and_updated(sim: RunningSimulator) -> None:
    fact = FACTS["realtime_session_created"]
    async with rt_connect(sim, make_key("ok")) as ws:
        created = await recv_json(ws)
        assert created["type"] == "session.created"
        session = created["session"]
        assert (session["type"], session["object"], session["model"]) == (
            fact["type"],
            fact["object"],
            fact["model"],
        )
        assert session["id"].startswith(fact["id_prefix"])
        assert session["output_modalities"] == fact["output_modalities"]
        assert all(name in session for name in fact["fields"])
        update = {
            "type": "session.update",
            "session": {"type": "realtime", "output_modalities": ["text"]},
        }
        await ws.send(json.dumps(update))
        assert (await recv_json(ws))["type"] == "session.updated"
