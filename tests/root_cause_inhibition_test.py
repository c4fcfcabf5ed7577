"""The example Alertmanager configuration never hides a key's format alert behind its
invalid-key alert: the finding is the likely root cause. Proven with a real Alertmanager."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import require_tool
from tests.e2e.alerting import fast_alertmanager_config, start_alertmanager


def _alert(name: str, severity: str, **labels: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "labels": {"alertname": name, "severity": severity, "key": "voice", **labels},
        "annotations": {"summary": name},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(minutes=10)).isoformat(),
    }


def test_format_alert_is_not_inhibited_by_the_invalid_key_alert(tmp_path: Path) -> None:
    binary = require_tool("prometheus-alertmanager")
    config = fast_alertmanager_config(tmp_path / "alertmanager.yml", "http://127.0.0.1:9/")
    process, url = start_alertmanager(binary, config, tmp_path)
    try:
        alerts = [
            _alert("OpenAIKeyInvalid", "critical", probe="realtime", result="invalid_api_key"),
            _alert("OpenAIKeyFormatIssue", "info", issue="dotenv_quoted_value"),
            # A consequence of the rejection, which the same rules do silence.
            _alert("OpenAIKeyProbeFailing", "warning", probe="rest", result="timeout"),
        ]
        assert httpx.post(f"{url}/api/v2/alerts", json=alerts, timeout=5).status_code == 200
        deadline = time.monotonic() + 20
        while True:
            states = {
                a["labels"]["alertname"]: a["status"]
                for a in httpx.get(f"{url}/api/v2/alerts", timeout=5).json()
            }
            if states.get("OpenAIKeyProbeFailing", {}).get("state") == "suppressed":
                break
            assert time.monotonic() < deadline, states
            time.sleep(0.2)
        assert states["OpenAIKeyFormatIssue"]["state"] == "active", states
        assert not states["OpenAIKeyFormatIssue"]["inhibitedBy"]
        assert states["OpenAIKeyInvalid"]["state"] == "active"
    finally:
        process.stop()
