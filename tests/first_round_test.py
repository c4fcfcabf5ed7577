"""First results in seconds: a fleet of 100 keys is probed whole, and ready, within 5 s of the
exporter's start; a fleet of 10,000 keys is still spread at a bounded rate."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from exporter.scheduler import FIRST_ROUND_RATE, first_round_spread, first_run_offset
from exporter.simulator.scenarios import make_key
from exporter.simulator.state import key_id
from tests.harness import (
    Process,
    start_exporter_process,
    start_simulator_process,
    write_config,
    write_key,
)
from tests.support.metrics import parse_metrics

FLEET = 100
READY_WITHIN = 5.0


def test_a_hundred_keys_are_probed_both_ways_and_ready_within_five_seconds(
    tmp_path: Path,
) -> None:
    simulator, base_url = start_simulator_process(tmp_path)
    exporter: Process | None = None
    try:
        keys = {f"team-{index}": make_key("ok", seed=f"team-{index}") for index in range(FLEET)}
        entries = [
            {"name": name, "api_key_file": str(write_key(tmp_path, name, key))}
            for name, key in keys.items()
        ]
        # The shipped intervals: a minute for REST, five for Realtime.
        config = write_config(
            tmp_path / "config.yml",
            base_url,
            entries,
            interval="60s",
            timeout="10s",
            realtime_interval="5m",
            retry_interval="10s",
        )
        launched = time.monotonic()
        exporter, url = start_exporter_process(config, tmp_path, wait_ready=False)
        while httpx.get(f"{url}/-/ready", timeout=2).status_code != 200:
            assert time.monotonic() - launched < READY_WITHIN, exporter.output()[-3000:]
            time.sleep(0.05)
        ready_after = time.monotonic() - launched
        assert ready_after < READY_WITHIN
        samples = parse_metrics(httpx.get(f"{url}/metrics", timeout=5).text)
        for name in keys:
            for probe in ("rest", "realtime"):
                series = f'openai_probe_result{{key="{name}",probe="{probe}",result="ok"}}'
                assert samples.get(series) == 1, (series, ready_after)
        # Each key was probed once each way: results in seconds, not extra requests.
        stats = httpx.get(base_url.removesuffix("/v1") + "/_sim/stats", timeout=5).json()
        for key in keys.values():
            entry = stats["keys"][key_id(key)]
            assert (entry["rest_requests"], entry["realtime_sessions"]) == (1, 1), entry
    finally:
        if exporter is not None:
            exporter.stop()
        simulator.stop()


@pytest.mark.parametrize(("keys", "interval"), [(100, 60.0), (1000, 60.0), (10_000, 60.0)])
def test_no_second_of_the_first_round_starts_more_than_a_few_hundred_probes(
    keys: int, interval: float
) -> None:
    """The schedule the exporter follows, for every key and both probes (the Realtime interval
    is five minutes): whatever the fleet, no burst."""
    probes = [(f"team-{index}", probe) for index in range(keys) for probe in ("rest", "realtime")]
    spread = first_round_spread(len(probes))
    intervals = {"rest": interval, "realtime": 300.0}
    offsets = [first_run_offset(name, probe, intervals[probe], spread) for name, probe in probes]
    per_second = Counter(int(offset) for offset in offsets)
    # FIRST_ROUND_RATE while the round fits in a minute; a larger one takes the minute, as
    # before (both probes of 10,000 keys: 333 a second). A second may hold a few more by chance.
    mean = len(probes) / max(spread, 1.0)
    assert mean <= max(FIRST_ROUND_RATE, len(probes) / 60.0)
    assert max(per_second.values()) <= 1.25 * mean + 20 <= 450, per_second.most_common(3)
    if keys == 100:
        assert max(offsets) < 2.0  # 200 probes: all started within two seconds
    if keys == 10_000:
        assert spread == 60.0  # as before: the first-round row of docs/performance.md holds
