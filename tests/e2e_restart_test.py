"""End to end, all real processes on loopback: a firing page survives an exporter restart.

The exporter probes an invalid key; Prometheus (the project's rules, fast variant) and
Alertmanager (the example configuration) page the webhook. The exporter is stopped and started
again on the same address with the same --storage.path: the webhook gets no `resolved`. The key
is then fixed: exactly one `resolved`, and no second page."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from exporter.simulator.scenarios import make_key
from tests.conftest import require_tool
from tests.e2e.alerting import (
    WebhookReceiver,
    fast_alertmanager_config,
    fast_rules,
    start_alertmanager,
    start_prometheus,
)
from tests.harness import (
    Process,
    exporter_command,
    free_port,
    start_simulator_process,
    wait_http,
    write_config,
    write_key,
)
from tests.support.metrics import parse_metrics

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

# keep_firing_for 2m -> 12 s: longer than the restart's gap in scrapes, shorter than the test.
FOR_SCALE = 0.1
ALERT = ("OpenAIKeyInvalid", "voice")


def _start_exporter(config: Path, port: int, storage: Path, log: Path) -> Process:
    process = Process(
        exporter_command(
            "--config.file",
            str(config),
            "--web.listen-address",
            f"127.0.0.1:{port}",
            "--storage.path",
            str(storage),
        ),
        log,
    ).start()
    wait_http(f"http://127.0.0.1:{port}/-/healthy", process=process)
    return process


def _wait(what: str, condition: Callable[[], bool], timeout: float) -> float:
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, f"within {timeout:g}s: {what}"
        time.sleep(0.25)
    return time.monotonic() - start


def test_a_restart_never_resolves_a_firing_page(tmp_path: Path) -> None:
    prometheus_bin = require_tool("prometheus")
    alertmanager_bin = require_tool("prometheus-alertmanager")
    webhook = WebhookReceiver().start()
    processes: list[Process] = []
    exporter: Process | None = None

    def deliveries(status: str) -> list[tuple[str, str]]:
        return [(d.alertname, d.key) for d in webhook.deliveries() if d.status == status]

    try:
        simulator, base_url = start_simulator_process(tmp_path)
        processes.append(simulator)
        key_path = write_key(tmp_path, "voice", make_key("invalid_api_key", seed="restart"))
        config = write_config(
            tmp_path / "exporter.yml",
            base_url,
            [{"name": "voice", "api_key_file": str(key_path)}],
            interval="2s",
            timeout="1s",
            retry_interval="1s",
            probes=("rest",),
        )
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        storage = tmp_path / "storage"
        exporter = _start_exporter(config, port, storage, tmp_path / "exporter-1.log")

        am_config = fast_alertmanager_config(tmp_path / "alertmanager.yml", webhook.url)
        alertmanager, alertmanager_url = start_alertmanager(alertmanager_bin, am_config, tmp_path)
        processes.append(alertmanager)
        rules = fast_rules(tmp_path / "fast.rules.yml", FOR_SCALE)
        assert "keep_firing_for: 12s" in rules.read_text()
        prometheus, _ = start_prometheus(prometheus_bin, tmp_path, url, alertmanager_url, rules)
        processes.append(prometheus)

        _wait("the page reaches the webhook", lambda: ALERT in deliveries("firing"), 60)

        # A restart: SIGTERM (the state file is written), a gap of missed scrapes, a new process.
        assert exporter.stop() == 0
        exporter = None
        assert (storage / "openai-key-exporter-state.json").exists()
        time.sleep(4)  # four scrapes fail: the series go stale
        exporter = _start_exporter(config, port, storage, tmp_path / "exporter-2.log")
        # Before its first probe of the new process, the key's results are back.
        samples = parse_metrics(httpx.get(f"{url}/metrics", timeout=5).text)
        failures = samples['openai_probe_consecutive_failures{key="voice",probe="rest"}']
        assert failures >= 2, "the failure count started again from zero"
        # Longer than keep_firing_for: without the stored results, the page would resolve.
        time.sleep(20)
        assert deliveries("resolved") == [], webhook.payloads()
        assert deliveries("firing").count(ALERT) == 1, "paged again after the restart"

        # The fix: a good key in place of the bad one, as a secret rotation writes it.
        fixed = write_key(tmp_path, "voice.new", make_key("ok", seed="restart-fixed"))
        fixed.replace(key_path)
        _wait("the page is resolved", lambda: ALERT in deliveries("resolved"), 60)
        time.sleep(5)  # several group intervals: a second resolved or page would have come
        assert deliveries("resolved") == [ALERT], webhook.payloads()
        assert deliveries("firing").count(ALERT) == 1
    except BaseException:
        for process in [*processes, *([exporter] if exporter else [])]:
            print(f"--- {process.log_path.name}\n{process.output()[-4000:]}")
        print("--- webhook\n" + json.dumps(webhook.payloads(), indent=1))
        raise
    finally:
        if exporter is not None:
            exporter.stop()
        for process in reversed(processes):
            process.stop()
        webhook.stop()
