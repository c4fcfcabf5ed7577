"""The REST probe's phases come from public hooks only (exporter/probes/rest_timing.py): aiohttp's
TraceConfig signals and the ssl module's SSLContext.sslobject_class. A new aiohttp (or Python)
that stops giving either fails here, by name, before a probe silently loses a phase."""

from __future__ import annotations

import sys

import aiohttp
import pytest

from exporter.config import KeyConfig
from exporter.probes.rest import RestProber
from exporter.simulator import RunningSimulator, make_key
from tests.support.key_config import key_config
from tests.support.proxy import no_proxy_from_outside
from tests.support.tls import Tls, simulator_over_tls, tls

__all__ = ["no_proxy_from_outside", "simulator_over_tls", "tls"]  # fixtures from tests/support

BROKEN = (
    f"aiohttp {aiohttp.__version__} on Python {sys.version.split()[0]}: exporter/probes/"
    "rest_timing.py no longer gets the {phases} phase(s) from aiohttp's TraceConfig signals "
    "(connection create start/end, request headers sent, request end) or from "
    "SSLContext.sslobject_class (the TLS handshake); fix that module or pin aiohttp below this "
    "version in pyproject.toml"
)


def timed_config(simulator: RunningSimulator, tls: Tls) -> KeyConfig:
    return key_config(
        "timed", base_url=simulator.base_url, timeout=5.0, tls_ca_file=str(tls.ca_file)
    )


@pytest.mark.parametrize("fresh", [True, False], ids=["new connection", "pooled"])
async def test_every_phase_is_stamped_through_public_hooks(
    simulator: RunningSimulator, tls: Tls, fresh: bool
) -> None:
    prober = RestProber()
    config = timed_config(simulator, tls)
    try:
        if not fresh:
            await prober.probe_on_connection(config, make_key("ok"), fresh=False)  # warm the pool
        result = await prober.probe_on_connection(config, make_key("slow", 20), fresh=fresh)
    finally:
        await prober.aclose()
    assert result.healthy, result
    expected = {"connect", "tls", "first_byte", "transfer"} if fresh else {"first_byte", "transfer"}
    missing = expected - set(result.phases)
    assert not missing, BROKEN.format(phases=", ".join(sorted(missing)))
    assert set(result.phases) == expected, result.phases
    # The phases lie inside the probe: the clocks were stamped in order, on this probe.
    assert sum(result.phases.values()) <= result.duration + 1e-6, result
    assert result.phases["first_byte"] >= 0.02, BROKEN.format(phases="first_byte")
