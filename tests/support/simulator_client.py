"""The simulator in-process for its own tests: fixtures, an HTTP client, Realtime helpers and
the OpenAI error envelope every REST error must have."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from exporter.simulator import (
    RunningSimulator,
    start_simulator,
)

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
