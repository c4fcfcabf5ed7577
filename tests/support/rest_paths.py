"""The REST probe on both of its paths, for tests that hold the two to the same answers."""

from __future__ import annotations

from exporter.config import KeyConfig
from exporter.probes.rest import RestProber
from exporter.result import ProbeResult


async def rest_both_ways(config: KeyConfig, key: str) -> tuple[ProbeResult, ProbeResult]:
    """The REST probe on a connection of its own, then on a pooled one (its prober closed after)."""
    prober = RestProber()
    try:
        fresh = await prober.probe_on_connection(config, key, fresh=True)
        pooled = await prober.probe_on_connection(config, key, fresh=False)
    finally:
        await prober.aclose()
    return fresh, pooled
