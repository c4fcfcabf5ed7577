"""Basic auth does not tell who exists (issue 22): an unknown user's check costs as much as a
wrong password for the configured users, whatever cost their hashes were made with."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import bcrypt
import httpx
import pytest
from aiohttp import web

from exporter.webconfig import WebConfigWatcher, auth_middleware
from tests.support.loopback_app import served_on_loopback

COST = 12  # above exporter-toolkit's fixed stand-in cost of 10: a wrong password took 4x longer


@pytest.fixture
async def protected(tmp_path: Path) -> AsyncIterator[str]:
    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=COST)).decode()
    config = tmp_path / "web.yml"
    config.write_text(f"basic_auth_users:\n  alice: {hashed}\n  bob: {hashed}\n")
    app = web.Application(middlewares=[auth_middleware(WebConfigWatcher(str(config)))])

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app.router.add_get("/metrics", metrics)
    async with served_on_loopback(app) as port:
        yield f"http://127.0.0.1:{port}/metrics"


async def fastest_refusal(client: httpx.AsyncClient, url: str, user: str, tries: int = 4) -> float:
    """The quickest of a few refusals: the bcrypt time, with the least noise from other work."""
    times = []
    for _ in range(tries):
        started = time.perf_counter()
        response = await client.get(url, auth=(user, "wrong"))
        times.append(time.perf_counter() - started)
        assert response.status_code == 401
    return min(times)


async def test_an_unknown_user_costs_as_much_as_a_wrong_password(protected: str) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        assert (await client.get(protected, auth=("alice", "right"))).status_code == 200
        await client.get(protected, auth=("nobody", "wrong"))  # the stand-in is made once
        wrong_password = await fastest_refusal(client, protected, "alice")
        unknown_user = await fastest_refusal(client, protected, "nobody")
    ratio = unknown_user / wrong_password
    # Same cost: about 1. A cost-10 stand-in against cost-12 hashes made it about 0.25.
    assert 0.5 < ratio < 2.0, (unknown_user, wrong_password)
