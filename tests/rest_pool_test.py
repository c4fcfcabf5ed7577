"""REST connection reuse: one fresh connection every FRESH_CONNECTION_EVERY probes of a key."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from exporter.config import KeyConfig
from exporter.keys import KeySource, SourceKind
from exporter.probes import rest
from exporter.probes.rest import FRESH_CONNECTION_EVERY, RestProber
from exporter.simulator import RunningSimulator, make_key, start_simulator


@pytest.fixture
async def simulator() -> AsyncIterator[RunningSimulator]:
    running = await start_simulator()
    try:
        yield running
    finally:
        await running.close()


def _config(simulator: RunningSimulator, name: str) -> KeyConfig:
    source = KeySource(SourceKind.ENV, "UNUSED")
    return KeyConfig(name=name, source=source, base_url=simulator.base_url, timeout=5.0)


async def test_every_tenth_probe_of_a_key_opens_its_own_connection(
    simulator: RunningSimulator,
) -> None:
    prober = RestProber()
    config, key = _config(simulator, "a"), make_key("ok", seed="a")
    try:
        results = [await prober.probe(config, key) for _ in range(FRESH_CONNECTION_EVERY + 1)]
    finally:
        await prober.aclose()
    assert all(result.healthy for result in results)
    connected = [index for index, result in enumerate(results) if "connect" in result.phases]
    # Only the probes on a connection of their own time connect and TLS; pooled ones do not.
    assert connected == [0, FRESH_CONNECTION_EVERY]


async def test_fresh_probes_never_share_a_connection(
    simulator: RunningSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rest, "FRESH_CONNECTION_EVERY", 1)
    prober = RestProber()
    configs = [_config(simulator, f"k{index}") for index in range(6)]
    keys = [make_key("ok", seed=str(index)) for index in range(6)]
    try:
        for _ in range(3):  # rounds of concurrent probes, and sequential ones between them
            results = await asyncio.gather(
                *(prober.probe(config, key) for config, key in zip(configs, keys, strict=True))
            )
            assert all(result.healthy and "connect" in result.phases for result in results)
    finally:
        await prober.aclose()
