"""The exporter and the simulator as processes: the simulator's control API, waiting for a round,
stopping cleanly, key names with a chosen first-run offset."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from exporter.scheduler import first_run_offset
from exporter.simulator import key_id
from tests.harness import Process, write_config, write_key
from tests.support.metrics import Scrape, scrape

PREFIXES = ("sk-proj-", "sk-svcacct-", "sk-admin-", "sk-")
KINDS = {
    "sk-proj-": "project",
    "sk-svcacct-": "service_account",
    "sk-admin-": "admin",
    "sk-": "user",
}


# --- reading /metrics ---------------------------------------------------------------------------


# --- the simulator's control API ----------------------------------------------------------------


def sim_root(base_url: str) -> str:
    return base_url.removesuffix("/v1")


def sim_stats(base_url: str, key: str) -> dict[str, Any]:
    stats = httpx.get(f"{sim_root(base_url)}/_sim/stats", timeout=5).json()
    return dict(stats["keys"].get(key_id(key), {}))


def sim_override(base_url: str, key: str, scenario: str | None, arg: int | None = None) -> None:
    response = httpx.post(
        f"{sim_root(base_url)}/_sim/override",
        json={"key": key, "scenario": scenario, "arg": arg},
        timeout=5,
    )
    assert response.status_code == 200, response.text


def stop_cleanly(process: Process, within: float = 5.0) -> float:
    """SIGTERM; the process must exit 0 within `within` seconds. Returns how long it took."""
    assert process.popen is not None
    started = time.monotonic()
    process.signal(signal.SIGTERM)
    try:
        code = process.popen.wait(within)
    except subprocess.TimeoutExpired:
        process.stop()
        pytest.fail(f"no exit within {within}s of SIGTERM:\n{process.output()[-3000:]}")
    assert code == 0, f"exit code {code} after SIGTERM:\n{process.output()[-3000:]}"
    return time.monotonic() - started


def name_with_rest_offset(prefix: str, interval: float, high: float) -> str:
    for index in range(10_000):
        name = f"{prefix}-{index}"
        if first_run_offset(name, "rest", interval) < high:
            return name
    raise AssertionError(f"no name with a REST first-run offset under {high}")


def reload_config(directory: Path, base_url: str, keys: dict[str, str]) -> Path:
    entries = [
        {"name": name, "api_key_file": str(write_key(directory, name, key))}
        for name, key in keys.items()
    ]
    return write_config(directory / "config.yml", base_url, entries)


def wait_for_a_second_round(url: str, series: int, timeout: float = 30.0) -> Scrape:
    """Wait until each of `series` key-and-probe pairs has run again since they had all run
    once (openai_probe_last_run_timestamp_seconds moved on); returns the last scrape."""
    first: dict[tuple[str, str], float] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        metrics = scrape(url)
        runs = {
            (s.labels["key"], s.labels["probe"]): s.value
            for s in metrics.find("openai_probe_last_run_timestamp_seconds")
        }
        if not first and len(runs) == series:
            first = runs
        elif first and all(runs[pair] > when for pair, when in first.items()):
            return metrics
        time.sleep(0.1)
    pytest.fail(f"no second round of {series} probes within {timeout}s (first round: {first})")
