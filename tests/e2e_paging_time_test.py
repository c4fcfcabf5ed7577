"""Paging time with the shipped settings, end to end on loopback: the exporter's defaults
(REST every 60 s, a second look 5 s after a failure), Prometheus scraping every 15 s with the
committed rules (key alerts evaluated every 5 s), Alertmanager with the example configuration
as it is (critical: group_wait 0s). A key revoked right after a probe reaches the webhook
within 90 s; alerts/README.md gives the worst case of each setting."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
import yaml

from exporter.simulator.scenarios import make_key
from exporter.simulator.state import key_id
from tests.conftest import require_tool
from tests.e2e.alerting import (
    ALERTMANAGER_EXAMPLE,
    WebhookReceiver,
    start_alertmanager,
    start_prometheus,
)
from tests.harness import REPO, Process, start_exporter_process, start_simulator_process, write_key

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SHIPPED_RULES = REPO / "alerts" / "openai-key-exporter.rules.yml"
SCRAPE_INTERVAL = "15s"  # README's snippet, the compose stack's and the ServiceMonitor's
PAGE_WITHIN = 90.0


def _example_alertmanager(path: Path, webhook_url: str) -> Path:
    """The example configuration with its timers untouched; only the webhook points here."""
    config = yaml.safe_load(ALERTMANAGER_EXAMPLE.read_text(encoding="utf-8"))
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = webhook_url
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def test_a_revoked_key_pages_within_90_seconds_with_the_shipped_settings(tmp_path: Path) -> None:
    prometheus_bin = require_tool("prometheus")
    alertmanager_bin = require_tool("prometheus-alertmanager")
    webhook = WebhookReceiver().start()
    processes: list[Process] = []
    try:
        simulator, base_url = start_simulator_process(tmp_path)
        processes.append(simulator)
        root = base_url.removesuffix("/v1")
        key = make_key("ok", seed="paging-time")
        key_file = write_key(tmp_path, "voice", key)
        # The shipped configuration's settings: none given, so every default applies.
        config = tmp_path / "exporter.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "defaults": {"base_url": base_url},
                    "keys": [{"name": "voice", "api_key_file": str(key_file)}],
                }
            )
        )
        am_config = _example_alertmanager(tmp_path / "alertmanager.yml", webhook.url)
        alertmanager, alertmanager_url = start_alertmanager(alertmanager_bin, am_config, tmp_path)
        processes.append(alertmanager)
        exporter, exporter_url = start_exporter_process(config, tmp_path, wait_ready=False)
        processes.append(exporter)
        prometheus, _ = start_prometheus(
            prometheus_bin,
            tmp_path,
            exporter_url,
            alertmanager_url,
            SHIPPED_RULES,
            scrape_interval=SCRAPE_INTERVAL,
        )
        processes.append(prometheus)

        def probes_made() -> int:
            stats = httpx.get(f"{root}/_sim/stats", timeout=5).json()
            return int(stats["keys"].get(key_id(key), {}).get("rest_requests", 0))

        deadline = time.monotonic() + 30
        while probes_made() < 1:
            assert time.monotonic() < deadline, "no first probe"
            time.sleep(0.02)
        # Revoked right after a probe: the worst moment, a whole interval before the next one.
        response = httpx.post(
            f"{root}/_sim/override",
            json={"key": key, "scenario": "invalid_api_key", "arg": None},
            timeout=5,
        )
        response.raise_for_status()
        revoked = time.monotonic()
        assert probes_made() == 1

        def paged() -> bool:
            return any(
                (d.alertname, d.key, d.status) == ("OpenAIKeyInvalid", "voice", "firing")
                for d in webhook.deliveries()
            )

        while not paged():
            assert time.monotonic() - revoked < PAGE_WITHIN + 30, "no page"
            time.sleep(0.2)
        took = time.monotonic() - revoked
        print(f"revoked to page: {took:.1f}s")
        assert took <= PAGE_WITHIN, f"the page took {took:.1f}s"
        assert probes_made() >= 3  # the probe a minute later and the second look 5 s after it
    except BaseException:
        for process in processes:
            print(f"--- {process.log_path.name}\n{process.output()[-3000:]}")
        print("--- webhook\n" + json.dumps(webhook.payloads(), indent=1))
        raise
    finally:
        for process in reversed(processes):
            process.stop()
        webhook.stop()
