"""The exporter process itself behind --web.config.file: TLS, basic auth, client certificates."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import httpx
import pytest
import trustme

from exporter.simulator import make_key
from tests.harness import (
    Process,
    exporter_command,
    free_port,
    start_simulator_process,
    write_config,
    write_key,
)

PASSWORD = "scrape-me-please"


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    process, base_url = start_simulator_process(tmp_path_factory.mktemp("sim"))
    yield base_url
    process.stop()


def start(tmp_path: Path, simulator: str, web_config: str) -> tuple[Process, str, trustme.CA]:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.cert_chain_pems[0].write_to_path(str(tmp_path / "server.crt"))
    for blob in server.cert_chain_pems[1:]:
        blob.write_to_path(str(tmp_path / "server.crt"), append=True)
    server.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    ca.cert_pem.write_to_path(str(tmp_path / "client-ca.crt"))
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    (tmp_path / "web.yml").write_text(web_config.format(hash=hashed))
    key = write_key(tmp_path, "prod", make_key("ok", seed="web"))
    config = write_config(
        tmp_path / "config.yml", simulator, [{"name": "prod", "api_key_file": str(key)}]
    )
    port = free_port()
    args = ["--config.file", str(config), "--web.listen-address", f"127.0.0.1:{port}"]
    process = Process(
        exporter_command(*args, "--web.config.file", str(tmp_path / "web.yml")),
        tmp_path / "exporter.log",
    ).start()
    url = f"https://127.0.0.1:{port}"
    # A client certificate is harmless where none is asked for, and needed where one is.
    context = ca_context(ca, ca.issue_cert("prometheus.monitoring.svc"))
    deadline = time.monotonic() + 30
    while True:
        assert process.popen is not None and process.popen.poll() is None, process.output()
        try:
            if httpx.get(f"{url}/-/healthy", verify=context, timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, process.output()
        time.sleep(0.1)
    return process, url, ca


def ca_context(ca: trustme.CA, client: trustme.LeafCert | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if client is not None:
        client.configure_cert(context)
    return context


BASIC = """
tls_server_config:
  cert_file: server.crt
  key_file: server.key
basic_auth_users:
  prometheus: {hash}
"""


def test_tls_and_basic_auth_guard_everything_but_health(simulator: str, tmp_path: Path) -> None:
    process, url, ca = start(tmp_path, simulator, BASIC)
    try:
        context = ca_context(ca)
        auth = ("prometheus", PASSWORD)
        assert httpx.get(f"{url}/metrics", verify=context, auth=auth).status_code == 200
        for path in ("/metrics", "/", "/-/ready"):
            anonymous = httpx.get(f"{url}{path}", verify=context)
            assert anonymous.status_code == 401, path
            assert anonymous.headers["WWW-Authenticate"].startswith("Basic")
            wrong = httpx.get(f"{url}{path}", verify=context, auth=("prometheus", "nope"))
            assert wrong.status_code == 401, path
        assert httpx.get(f"{url}/-/healthy", verify=context).status_code == 200
        body = httpx.get(f"{url}/metrics", verify=context, auth=auth).text
        assert 'openai_key_info{key="prod"' in body
        with pytest.raises(httpx.ConnectError):  # an untrusting client refuses the certificate
            httpx.get(f"{url}/-/healthy")
        with pytest.raises(httpx.HTTPError):  # and plain HTTP gets no answer
            httpx.get(url.replace("https", "http") + "/-/healthy", timeout=3)
    finally:
        process.stop()
    assert PASSWORD not in process.output()


CLIENT_CERT = """
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: client-ca.crt
"""


def test_a_required_client_certificate(simulator: str, tmp_path: Path) -> None:
    process, url, ca = start(tmp_path, simulator, CLIENT_CERT)
    try:
        client = ca.issue_cert("prometheus.monitoring.svc")
        ok = httpx.get(f"{url}/metrics", verify=ca_context(ca, client))
        assert ok.status_code == 200
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{url}/metrics", verify=ca_context(ca))
        stranger = trustme.CA().issue_cert("prometheus.monitoring.svc")
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{url}/metrics", verify=ca_context(ca, stranger))
    finally:
        process.stop()


def test_a_broken_web_config_stops_the_start_with_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "web.yml").write_text("tls_server_config:\n  cert_file: nowhere.crt\n")
    port = free_port()
    process = Process(
        exporter_command(
            "--web.listen-address",
            f"127.0.0.1:{port}",
            "--web.config.file",
            str(tmp_path / "web.yml"),
        ),
        tmp_path / "exporter.log",
    ).start()
    assert process.popen is not None
    assert process.popen.wait(30) == 1
    assert "web.yml" in process.output() and "key_file" in process.output()
