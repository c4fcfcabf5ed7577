"""A scrape gives the loop back every SCRAPE_STEP_SECONDS even when no other scrape is in flight:
requests waiting to start are not in flight, and each would take its whole scrape in one step of
the loop after the other (probes 3-24 s late under 100 plain scrapers, bench/NOTES.md)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

import exporter.server
from exporter.server import SCRAPE_SLICE_BYTES, _stream

FILLS = 12


class _ReaderThatKeepsUp:
    """A scrape whose every write the socket takes at once: nothing in a write yields."""

    def __init__(self) -> None:
        self.received = 0

    async def write(self, _request: web.Request, _response: web.StreamResponse, data: Any) -> bool:
        self.received += len(data)
        return True

    async def finish(self, _request: web.Request, _response: web.StreamResponse) -> None:
        return None


async def test_a_lone_scrape_yields_between_its_fills(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exporter.server, "SCRAPE_STEP_SECONDS", 0.0)  # yield after every fill
    parts = [b"x" * SCRAPE_SLICE_BYTES] * FILLS
    reader = _ReaderThatKeepsUp()
    turns = 0
    sending = True

    async def other_work() -> None:  # a probe, say: it must get turns while the scrape sends
        nonlocal turns
        while sending:
            turns += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(other_work())
    await asyncio.sleep(0)
    before = turns
    request = make_mocked_request("GET", "/metrics")
    await _stream(request, parts, SCRAPE_SLICE_BYTES * FILLS, reader)  # type: ignore[arg-type]
    during = turns - before
    sending = False
    await other
    assert reader.received == SCRAPE_SLICE_BYTES * FILLS
    assert during >= FILLS - 1, f"the loop got {during} turns during {FILLS} fills"
