"""End to end, all real processes on loopback: the exporter probes keys in the simulator,
Prometheus evaluates the project's rules (fast variant), Alertmanager routes and inhibits with
the example configuration, and a webhook receives what a person would be paged with."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from exporter.simulator.scenarios import make_key
from tests.conftest import require_tool
from tests.e2e.alerting import (
    Delivery,
    WebhookReceiver,
    fast_alertmanager_config,
    fast_rules,
    start_alertmanager,
    start_prometheus,
)
from tests.harness import (
    Process,
    start_exporter_process,
    start_simulator_process,
    write_config,
    write_key,
)
from tests.support.runbook import RUNBOOK_EN, anchors

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

# 5 min `for:` -> 15 s: OpenAIKeyRateLimited and OpenAIKeyProbeFailing fire within the test.
FOR_SCALE = 0.05
# A variable no one sets: the `missing` key's source.
MISSING_ENV = "OPENAI_KEY_EXPORTER_E2E_UNSET_KEY"

# The alerts the webhook must get, as (alertname, key), and from which receiver.
EXPECTED_FIRING = {
    ("OpenAIKeyInvalid", "invalid"): "openai-key-page",
    ("OpenAIKeyMissingOrMalformed", "missing"): "openai-key-page",
    ("OpenAIKeyRealtimeRefused", "realtime-forbidden"): "openai-key-page",
    ("OpenAIKeyRealtimeRefused", "realtime-scopes"): "openai-key-page",
    ("OpenAIKeyRateLimited", "rate-limited"): "openai-key-ticket",
}
# Fires in Prometheus (the `invalid` key's Realtime probe cannot connect) but the inhibit rules
# keep it from the webhook while OpenAIKeyInvalid fires for the same key.
INHIBITED = ("OpenAIKeyProbeFailing", "invalid")


@dataclass
class Stack:
    workdir: Path
    exporter: str
    prometheus: str
    alertmanager: str
    webhook: WebhookReceiver
    processes: list[Process]

    def prometheus_alerts(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.prometheus}/api/v1/alerts", timeout=5)
        response.raise_for_status()
        alerts: list[dict[str, Any]] = response.json()["data"]["alerts"]
        return alerts

    def alertmanager_alerts(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.alertmanager}/api/v2/alerts", timeout=5)
        response.raise_for_status()
        alerts: list[dict[str, Any]] = response.json()
        return alerts

    def delivered(self, status: str = "firing") -> set[tuple[str, str]]:
        return {(d.alertname, d.key) for d in self.webhook.deliveries() if d.status == status}

    def diagnostics(self) -> str:
        parts = [f"--- {p.log_path.name}\n{p.output()[-6000:]}" for p in self.processes]
        for name, fetch in (
            ("prometheus /api/v1/alerts", self.prometheus_alerts),
            ("alertmanager /api/v2/alerts", self.alertmanager_alerts),
        ):
            try:
                parts.append(f"--- {name}\n{json.dumps(fetch(), indent=1)}")
            except httpx.HTTPError as error:
                parts.append(f"--- {name}\nunavailable: {error}")
        try:
            metrics = httpx.get(f"{self.exporter}/metrics", timeout=5).text
            results = [
                line
                for line in metrics.splitlines()
                if line.startswith(("openai_probe_result{", "openai_probe_consecutive_failures"))
                and not line.endswith(" 0")
            ]
            parts.append("--- exporter results\n" + "\n".join(results))
        except httpx.HTTPError as error:
            parts.append(f"--- exporter /metrics\nunavailable: {error}")
        parts.append("--- webhook payloads\n" + json.dumps(self.webhook.payloads(), indent=1))
        return "\n".join(parts)

    def wait_until(self, what: str, condition: Callable[[], bool], timeout: float) -> float:
        """Seconds it took; fails with `what` after `timeout`."""
        start = time.monotonic()
        while not condition():
            if time.monotonic() - start > timeout:
                raise AssertionError(f"within {timeout:g}s: {what}")
            for process in self.processes:
                code = process.popen.poll() if process.popen else None
                assert code is None, f"{process.log_path.name}: exited {code}"
            time.sleep(0.5)
        return time.monotonic() - start


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    prometheus_bin = require_tool("prometheus")
    alertmanager_bin = require_tool("prometheus-alertmanager")
    monkeypatch.delenv(MISSING_ENV, raising=False)
    processes: list[Process] = []
    webhook = WebhookReceiver().start()
    # Bound but not listening: connections to its port are refused for as long as it is held.
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))
    try:
        simulator, base_url = start_simulator_process(tmp_path)
        processes.append(simulator)

        def key_file(name: str, *scenario: Any) -> str:
            return str(write_key(tmp_path, name, make_key(*scenario)))

        keys: list[dict[str, Any]] = [
            {"name": "healthy", "api_key_file": key_file("healthy", "ok")},
            {
                "name": "invalid",
                "api_key_file": key_file("invalid", "invalid_api_key"),
                "realtime": {"url": f"ws://127.0.0.1:{refused.getsockname()[1]}/v1/realtime"},
            },
            {"name": "missing", "api_key_env": MISSING_ENV},
            {"name": "realtime-forbidden", "api_key_file": key_file("rt-403", "rt_forbidden")},
            {"name": "realtime-scopes", "api_key_file": key_file("rt-scopes", "rt_missing_scopes")},
            # retry-after 1 s, so the key is re-probed, and stays rate limited, every second
            {"name": "rate-limited", "api_key_file": key_file("rate", "rate_limited", 1)},
        ]
        config = write_config(
            tmp_path / "exporter.yml",
            base_url,
            keys,
            interval="2s",
            timeout="1s",
            retry_interval="1s",
            realtime_interval="2s",
        )
        exporter, exporter_url = start_exporter_process(config, tmp_path)
        processes.append(exporter)

        am_config = fast_alertmanager_config(tmp_path / "alertmanager.yml", webhook.url)
        check = subprocess.run(
            [require_tool("amtool"), "check-config", str(am_config)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert check.returncode == 0, check.stdout + check.stderr
        alertmanager, alertmanager_url = start_alertmanager(alertmanager_bin, am_config, tmp_path)
        processes.append(alertmanager)

        rules = fast_rules(tmp_path / "fast.rules.yml", FOR_SCALE)
        prometheus, prometheus_url = start_prometheus(
            prometheus_bin, tmp_path, exporter_url, alertmanager_url, rules
        )
        processes.append(prometheus)
        yield Stack(tmp_path, exporter_url, prometheus_url, alertmanager_url, webhook, processes)
    finally:
        for process in reversed(processes):
            process.stop()
        webhook.stop()
        refused.close()


def _firing_in_prometheus(stack: Stack, alertname: str, key: str) -> bool:
    return any(
        a["labels"].get("alertname") == alertname
        and a["labels"].get("key") == key
        and a["state"] == "firing"
        for a in stack.prometheus_alerts()
    )


def _inhibited_in_alertmanager(stack: Stack, alertname: str, key: str) -> bool:
    return any(
        a["labels"].get("alertname") == alertname
        and a["labels"].get("key") == key
        and a["status"]["state"] == "suppressed"
        and a["status"]["inhibitedBy"]
        for a in stack.alertmanager_alerts()
    )


def _runbook_anchor(delivery: Delivery) -> str:
    url = delivery.annotations.get("runbook_url", "")
    match = re.fullmatch(r"https?://\S+/runbook#([a-z0-9-]+)", url)  # the served runbook
    assert match, f"{delivery.alertname} ({delivery.key}): runbook_url {url!r}"
    return match.group(1)


def test_alerts_reach_the_webhook_inhibited_and_resolved(stack: Stack) -> None:
    try:
        _run_scenario(stack)
    except BaseException:
        print(stack.diagnostics())
        raise


def _run_scenario(stack: Stack) -> None:
    started = time.monotonic()
    expected = set(EXPECTED_FIRING)
    stack.wait_until(
        f"the webhook gets {sorted(expected)} (got {sorted(stack.delivered())})",
        lambda: expected <= stack.delivered(),
        timeout=90,
    )
    stack.wait_until(
        f"{INHIBITED} fires in Prometheus and Alertmanager marks it inhibited",
        lambda: (
            _firing_in_prometheus(stack, *INHIBITED)
            and _inhibited_in_alertmanager(stack, *INHIBITED)
        ),
        timeout=60,
    )
    # Several group intervals (1 s) in which Alertmanager would have sent it, were it not inhibited.
    time.sleep(4)
    assert stack.delivered() == expected, "extra or missing notifications before the rotation"
    assert not [a for a in stack.prometheus_alerts() if a["labels"].get("key") == "healthy"]

    runbook = set(anchors(RUNBOOK_EN))
    for delivery in stack.webhook.deliveries():
        assert _runbook_anchor(delivery) in runbook, f"{delivery.alertname}: no such section"
        assert delivery.annotations.get("summary"), f"{delivery.alertname}: no summary"
        route = EXPECTED_FIRING[(delivery.alertname, delivery.key)]
        assert delivery.receiver == route, f"{delivery.alertname} routed to {delivery.receiver}"

    # Rotate the way a secret mount does: the new file replaces the old one in one step.
    key_path = stack.workdir / "invalid.key"
    write_key(stack.workdir, "invalid.new", make_key("ok"))
    os.replace(stack.workdir / "invalid.new.key", key_path)
    rotated = time.monotonic()
    stack.wait_until(
        "OpenAIKeyInvalid for the rotated key is resolved at the webhook",
        lambda: ("OpenAIKeyInvalid", "invalid") in stack.delivered("resolved"),
        timeout=60,
    )
    resolved = [
        d
        for d in stack.webhook.deliveries()
        if (d.alertname, d.key, d.status) == ("OpenAIKeyInvalid", "invalid", "resolved")
    ]
    assert all(d.notification_status == "resolved" for d in resolved)
    assert not _firing_in_prometheus(stack, "OpenAIKeyInvalid", "invalid")
    # With its cause gone, the warning the inhibition held back is delivered: proof that the
    # inhibition, not a rule, kept it away.
    stack.wait_until(
        f"{INHIBITED} reaches the webhook once OpenAIKeyInvalid is resolved",
        lambda: INHIBITED in stack.delivered(),
        timeout=30,
    )
    assert stack.delivered("resolved") == {("OpenAIKeyInvalid", "invalid")}
    print(
        f"alerts delivered after {rotated - started:.1f}s, "
        f"resolved {time.monotonic() - rotated:.1f}s after the rotation"
    )
