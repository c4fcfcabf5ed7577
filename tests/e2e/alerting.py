"""Real Prometheus and Alertmanager on loopback, fed the project's rules and Alertmanager example
in a fast test variant, and a webhook receiver that records every notification."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from tests.harness import REPO, Process, free_port, wait_http

RULES_GENERATOR = REPO / "alerts" / "generate.py"
ALERTMANAGER_EXAMPLE = REPO / "alerts" / "alertmanager.example.yml"
# The generated rules select `job=~".*openai-key-exporter.*"`.
SCRAPE_JOB = "openai-key-exporter"


@dataclass(frozen=True)
class Delivery:
    """One alert as a webhook notification carried it."""

    receiver: str
    notification_status: str  # the whole group's: "resolved" only when all of it is
    status: str  # this alert's
    labels: dict[str, str]
    annotations: dict[str, str]

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def key(self) -> str:
        return self.labels.get("key", "")


class WebhookReceiver:
    """An HTTP server in a thread that keeps every Alertmanager webhook payload it is sent."""

    def __init__(self) -> None:
        self._payloads: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver._payloads.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the deliveries are the record; no access log on stderr

        return Handler

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def payloads(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._payloads)

    def deliveries(self) -> list[Delivery]:
        return [
            Delivery(
                receiver=payload["receiver"],
                notification_status=payload["status"],
                status=alert["status"],
                labels=alert["labels"],
                annotations=alert["annotations"],
            )
            for payload in self.payloads()
            for alert in payload["alerts"]
        ]


def fast_rules(path: Path, for_scale: float, eval_interval: str = "1s") -> Path:
    """The project's rules from its generator, with every `for:` multiplied by `for_scale`."""
    result = subprocess.run(
        [
            sys.executable,
            str(RULES_GENERATOR),
            "--for-scale",
            str(for_scale),
            "--eval-interval",
            eval_interval,
            "--output",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"alerts/generate.py failed:\n{result.stdout}{result.stderr}"
    return path


def _routes(route: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield route
    for child in route.get("routes", []):
        yield from _routes(child)


def fast_alertmanager_config(
    path: Path,
    webhook_url: str,
    group_wait: str = "1s",
    group_interval: str = "1s",
    repeat_interval: str = "1h",
) -> Path:
    """alerts/alertmanager.example.yml with short timers and every webhook sent to `webhook_url`.

    Routes, receivers and inhibit rules are kept as they are: they are what the test proves.
    """
    config = yaml.safe_load(ALERTMANAGER_EXAMPLE.read_text(encoding="utf-8"))
    for route in _routes(config["route"]):
        for setting, value in (
            ("group_wait", group_wait),
            ("group_interval", group_interval),
            ("repeat_interval", repeat_interval),
        ):
            if setting in route or route is config["route"]:
                route[setting] = value
    webhooks = [
        webhook
        for receiver in config["receivers"]
        for webhook in receiver.get("webhook_configs", [])
    ]
    assert webhooks, f"{ALERTMANAGER_EXAMPLE} has no webhook receiver to point at the test"
    for webhook in webhooks:
        webhook["url"] = webhook_url
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def start_alertmanager(binary: str, config: Path, workdir: Path) -> tuple[Process, str]:
    """Alertmanager with clustering off; returns it and its root URL."""
    port = free_port()
    process = Process(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={workdir / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        workdir / "alertmanager.log",
    ).start()
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/-/ready", process=process)
    return process, url


def start_prometheus(
    binary: str,
    workdir: Path,
    exporter_url: str,
    alertmanager_url: str,
    rules: Path,
    scrape_interval: str = "1s",
) -> tuple[Process, str]:
    """Prometheus scraping the exporter every `scrape_interval` and evaluating `rules` (every
    second, unless a group sets its own interval); returns its URL."""
    config = workdir / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": scrape_interval, "evaluation_interval": "1s"},
                "rule_files": [str(rules)],
                "alerting": {
                    "alertmanagers": [
                        {"static_configs": [{"targets": [alertmanager_url.split("//")[1]]}]}
                    ]
                },
                "scrape_configs": [
                    {
                        "job_name": SCRAPE_JOB,
                        "static_configs": [{"targets": [exporter_url.split("//")[1]]}],
                    }
                ],
            },
            sort_keys=False,
        ),
        encoding="utf-8",
    )
    port = free_port()
    process = Process(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        workdir / "prometheus.log",
    ).start()
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/-/ready", process=process)
    return process, url
