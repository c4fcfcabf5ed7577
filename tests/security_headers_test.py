"""`http_server_config.headers` on every response of the running exporter, streamed /metrics too."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import httpx
import pytest

from exporter.simulator import make_key
from tests.harness import (
    Process,
    start_exporter_process,
    start_simulator_process,
    write_config,
    write_key,
)

PASSWORD = "headers-everywhere"
WANTED = {
    "X-Frame-Options": "deny",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'",
    "Strict-Transport-Security": "max-age=31536000",
}


@pytest.fixture(scope="module")
def exporter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp_path = tmp_path_factory.mktemp("headers")
    simulator, base_url = start_simulator_process(tmp_path)
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    headers = "".join(f'    {name}: "{value}"\n' for name, value in WANTED.items())
    web_config = tmp_path / "web.yml"
    web_config.write_text(
        f"http_server_config:\n  headers:\n{headers}basic_auth_users:\n  prometheus: {hashed}\n"
    )
    key = write_key(tmp_path, "prod", make_key("ok", seed="headers"))
    config = write_config(
        tmp_path / "config.yml", base_url, [{"name": "prod", "api_key_file": str(key)}]
    )
    process: Process | None = None
    try:
        process, url = start_exporter_process(
            config,
            tmp_path,
            "--web.config.file",
            str(web_config),
            "--web.enable-lifecycle",
            wait_ready=False,  # /-/ready needs basic auth here; the tests wait for it
        )
        with httpx.Client(auth=("prometheus", PASSWORD), timeout=10) as client:
            for _ in range(300):
                if client.get(f"{url}/-/ready").status_code == 200:
                    break
                time.sleep(0.1)
        yield url
    finally:
        if process is not None:
            process.stop()
        simulator.stop()


def assert_headers(response: httpx.Response) -> None:
    for name, value in WANTED.items():
        assert response.headers.get(name) == value, (
            response.request.method,
            response.request.url,
            response.status_code,
            name,
        )


@pytest.mark.parametrize(
    ("method", "path", "encoding", "status"),
    [
        ("GET", "/", "identity", 200),
        ("GET", "/metrics", "identity", 200),  # streamed
        ("GET", "/metrics", "gzip", 200),  # streamed, gzipped pieces
        ("GET", "/-/healthy", "identity", 200),
        ("GET", "/-/ready", "identity", 200),
        ("POST", "/-/reload", "identity", 200),
        ("GET", "/runbook", "identity", 200),
        ("GET", "/runbook/fr", "identity", 200),
        ("GET", "/no-such-page", "identity", 404),
        ("POST", "/metrics", "identity", 405),
    ],
)
def test_every_route_carries_the_configured_headers(
    exporter: str, method: str, path: str, encoding: str, status: int
) -> None:
    response = httpx.request(
        method,
        f"{exporter}{path}",
        auth=("prometheus", PASSWORD),
        headers={"Accept-Encoding": encoding},
        timeout=10,
    )
    assert response.status_code == status, response.text[:300]
    assert_headers(response)
    if path == "/metrics" and status == 200:
        assert response.headers.get("Content-Encoding", "identity") == encoding
        assert "openai_probe_success" in response.text  # httpx un-gzips: the body is whole


def test_a_refused_request_carries_them_too(exporter: str) -> None:
    for auth in (None, ("prometheus", "wrong")):
        response = httpx.get(f"{exporter}/metrics", auth=auth, timeout=10)
        assert response.status_code == 401
        assert_headers(response)


def test_a_config_file_without_headers_adds_none(tmp_path: Path) -> None:
    simulator, base_url = start_simulator_process(tmp_path)
    key = write_key(tmp_path, "prod", make_key("ok", seed="headers"))
    config = write_config(
        tmp_path / "config.yml", base_url, [{"name": "prod", "api_key_file": str(key)}]
    )
    process, url = start_exporter_process(config, tmp_path, wait_ready=False)
    try:
        response = httpx.get(f"{url}/metrics", timeout=10)
        assert response.status_code == 200
        assert not set(WANTED) & set(response.headers)
    finally:
        process.stop()
        simulator.stop()
