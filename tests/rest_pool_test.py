"""REST connection reuse: one fresh connection every FRESH_CONNECTION_EVERY probes of a key."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
import yarl

from exporter.config import KeyConfig
from exporter.probes import rest
from exporter.probes.rest import FRESH_CONNECTION_EVERY, RestProber
from exporter.simulator import RunningSimulator, make_key
from tests.support.key_config import key_config
from tests.support.proxy import CountingRelay
from tests.support.simulator import simulator

__all__ = ["simulator"]  # a fixture from tests/support


def _config(simulator: RunningSimulator, name: str) -> KeyConfig:
    return key_config(name, base_url=simulator.base_url, timeout=5.0)


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
    relay = await CountingRelay(yarl.URL(simulator.base_url).port or 0).start()
    prober = RestProber()
    configs = [
        replace(_config(simulator, f"k{index}"), base_url=f"http://127.0.0.1:{relay.port}/v1")
        for index in range(6)
    ]
    keys = [make_key("ok", seed=str(index)) for index in range(6)]
    try:
        for round_ in range(3):  # rounds of concurrent probes, and sequential ones between them
            results = await asyncio.gather(
                *(prober.probe(config, key) for config, key in zip(configs, keys, strict=True))
            )
            assert all(result.healthy and "connect" in result.phases for result in results)
            assert relay.accepted == 6 * (round_ + 1), "a fresh probe reused a connection"
        for config, key in zip(configs, keys, strict=True):
            assert (await prober.probe(config, key)).healthy
        assert relay.accepted == 6 * 4
    finally:
        await prober.aclose()
        await relay.close()


async def test_pooled_probes_share_one_connection(simulator: RunningSimulator) -> None:
    relay = await CountingRelay(yarl.URL(simulator.base_url).port or 0).start()
    prober = RestProber()
    config = replace(_config(simulator, "a"), base_url=f"http://127.0.0.1:{relay.port}/v1")
    try:
        for _ in range(FRESH_CONNECTION_EVERY + 1):
            assert (await prober.probe(config, make_key("ok", seed="a"))).healthy
    finally:
        await prober.aclose()
        await relay.close()
    # Probe 0 and probe FRESH_CONNECTION_EVERY on their own, the ones between on one kept-alive.
    assert relay.accepted == 3
