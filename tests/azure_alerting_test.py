"""Azure keys page through the unchanged rules and show on the unchanged dashboards: the real
exporter probes the simulator's Azure paths, a real Prometheus scrapes it and evaluates the
project's rules (fast variant); only openai_key_info carries the new `provider` label."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from exporter.simulator.azure import make_azure_key
from tests.conftest import require_tool
from tests.e2e.alerting import fast_rules, start_prometheus
from tests.harness import (
    Process,
    start_exporter_process,
    start_simulator_process,
    write_config,
    write_key,
)
from tests.support.metrics import scrape

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

FOR_SCALE = 0.05  # 5 min `for:` -> 15 s


def _query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=5)
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


def _firing(prometheus: str) -> set[tuple[str, str]]:
    response = httpx.get(f"{prometheus}/api/v1/alerts", timeout=5)
    response.raise_for_status()
    return {
        (alert["labels"]["alertname"], alert["labels"].get("key", ""))
        for alert in response.json()["data"]["alerts"]
        if alert["state"] == "firing"
    }


def test_azure_keys_fire_the_same_alerts_and_fill_the_same_panels(tmp_path: Path) -> None:
    prometheus_bin = require_tool("prometheus")
    processes: list[Process] = []
    try:
        simulator, base_url = start_simulator_process(tmp_path)
        processes.append(simulator)
        azure_url = base_url.removesuffix("/v1") + "/openai/v1"
        keys: dict[str, str] = {
            "azure-healthy": make_azure_key("ok"),
            "azure-invalid": make_azure_key("invalid_api_key"),
            "azure-throttled": make_azure_key("rate_limited"),
        }
        config = write_config(
            tmp_path / "exporter.yml",
            azure_url,
            [
                {"name": name, "api_key_file": str(write_key(tmp_path, name, key))}
                for name, key in keys.items()
            ],
            provider="azure",
        )
        exporter, exporter_url = start_exporter_process(config, tmp_path)
        processes.append(exporter)
        rules = fast_rules(tmp_path / "fast.rules.yml", FOR_SCALE)
        # No Alertmanager: the rules' firing is read from Prometheus itself.
        prometheus, prometheus_url = start_prometheus(
            prometheus_bin, tmp_path, exporter_url, "http://127.0.0.1:9", rules
        )
        processes.append(prometheus)

        expected = {
            ("OpenAIKeyInvalid", "azure-invalid"),
            ("OpenAIKeyRateLimited", "azure-throttled"),
        }
        deadline = time.monotonic() + 120
        while not expected <= (firing := _firing(prometheus_url)):
            assert time.monotonic() < deadline, f"not firing: {expected - firing}"
            for process in processes:
                assert process.popen is not None and process.popen.poll() is None, process.output()
            time.sleep(1)
        assert not any(key == "azure-healthy" for _, key in firing), firing

        # The overview dashboard's key table query, as generated (grafana/overview.py).
        rows = _query(prometheus_url, "max by (key, fingerprint) (openai_key_info)")
        assert {row["metric"]["key"] for row in rows} == set(keys)
        valid = {
            row["metric"]["key"]: row["value"][1]
            for row in _query(prometheus_url, "openai_key_valid")
        }
        assert valid == {"azure-healthy": "1", "azure-invalid": "0", "azure-throttled": "1"}

        for sample in scrape(exporter_url).samples:
            if sample.name == "openai_key_info":
                assert sample.labels["provider"] == "azure"
                assert sample.labels["kind"] == "azure"
            else:
                assert "provider" not in sample.labels, sample  # no new label elsewhere
        text = httpx.get(f"{exporter_url}/metrics", timeout=5).text
        for key in keys.values():
            assert key not in text
            assert key not in exporter.output()  # nor in a log line
    finally:
        for process in reversed(processes):
            process.stop()
