"""Web config: the verdicts of `promtool check web-config`, enforced by a real TLS server."""

from __future__ import annotations

import contextlib
import logging
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import bcrypt
import httpx
import pytest
import trustme
from aiohttp import web

from exporter.webconfig import (
    WebConfig,
    WebConfigError,
    WebConfigWatcher,
    auth_middleware,
    install_response_headers,
    load_web_config,
    ssl_context,
)
from exporter.webconfig import tls as web_tls
from exporter.webconfig import watcher as web_watcher
from tests.conftest import require_tool

TESTDATA = Path(__file__).parent / "testdata" / "web-config"
EXAMPLE = Path(__file__).parents[1] / "examples" / "web-config.yml"
CASES = sorted(path.name for path in TESTDATA.glob("*.yml"))
# Fields newer exporter-toolkit versions know and the promtool under test may not.
NEWER_TOOLKIT_FIELDS = ("client_allowed_sans",)
FAKE_HASH = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi"


@dataclass
class Pki:
    ca: trustme.CA
    other_ca: trustme.CA
    client: trustme.LeafCert


def write_key_pair(cert: trustme.LeafCert, directory: Path, crt: str, key: str) -> None:
    cert.cert_chain_pems[0].write_to_path(str(directory / crt))
    cert.private_key_pem.write_to_path(str(directory / key))


def make_pki(directory: Path) -> Pki:
    """The files the testdata configs name, made fresh: nothing secret is committed."""
    ca, other_ca = trustme.CA(), trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    for crt, key in (("server.crt", "server.key"), ("web-server.crt", "web-server.key")):
        write_key_pair(server, directory, crt, key)
    ca.cert_pem.write_to_path(str(directory / "ca.crt"))
    ca.cert_pem.write_to_path(str(directory / "client-ca.crt"))
    other_ca.issue_cert("localhost").private_key_pem.write_to_path(str(directory / "other.key"))
    (directory / "garbage.pem").write_text("this is not PEM\n")
    return Pki(ca=ca, other_ca=other_ca, client=ca.issue_cert("client.example.org"))


@pytest.fixture(scope="module")
def cases_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("web-config")
    for name in CASES:
        shutil.copy(TESTDATA / name, directory / name)
    shutil.copy(EXAMPLE, directory / "example-web-config.yml")
    make_pki(directory)
    return directory


def expected_error(path: Path) -> str:
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith("# error: "), f"{path.name}: first line must be '# error: ...'"
    return first_line.removeprefix("# error: ")


# --- what is accepted and refused ------------------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_testdata_verdict_and_message(cases_dir: Path, name: str) -> None:
    path = cases_dir / name
    if name.endswith(".good.yml"):
        config = load_web_config(str(path))
        # what loads must also serve: OpenSSL takes the versions, ciphers and curves
        assert (ssl_context(config) is None) == (config.tls_server_config is None)
        return
    assert name.endswith(".bad.yml"), f"{name}: name it *.good.yml or *.bad.yml"
    with pytest.raises(WebConfigError) as raised:
        load_web_config(str(path))
    message = str(raised.value)
    assert message.startswith(str(path)), message
    assert expected_error(path) in message
    assert "$2y$" not in message
    assert "(" in message, f"the message must say how to fix it: {message}"


def promtool_verdict(promtool: str, path: Path) -> tuple[bool, str]:
    result = subprocess.run(
        [promtool, "check", "web-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.returncode == 0, result.stdout + result.stderr


def our_verdict(path: Path) -> tuple[bool, str]:
    try:
        load_web_config(str(path))
    except WebConfigError as error:
        return False, str(error)
    return True, ""


@pytest.mark.parametrize(
    "name", [*CASES, "example-web-config.yml", "does-not-exist.yml", "examples/web-config.yml"]
)
def test_promtool_agrees(cases_dir: Path, name: str) -> None:
    """The example in place is refused by both (its certificate files are not there)."""
    promtool = require_tool("promtool")
    path = EXAMPLE if name == "examples/web-config.yml" else cases_dir / name
    promtool_accepts, promtool_output = promtool_verdict(promtool, path)
    we_accept, our_error = our_verdict(path)
    if we_accept and not promtool_accepts:
        newer = [f for f in NEWER_TOOLKIT_FIELDS if f"field {f} not found" in promtool_output]
        assert newer, f"promtool refuses what we accept:\n{promtool_output}"
        return
    assert we_accept == promtool_accepts, f"promtool: {promtool_output}\nours: {our_error}"


def test_example_is_accepted_next_to_its_files(cases_dir: Path) -> None:
    config = load_web_config(str(cases_dir / "example-web-config.yml"))
    assert config.tls_server_config is not None
    assert tuple(sorted(config.basic_auth_users)) == ("prometheus",)
    assert ssl_context(config) is not None


def test_defaults_and_relative_paths(cases_dir: Path) -> None:
    config = load_web_config(str(cases_dir / "tls.good.yml"))
    tls = config.tls_server_config
    assert tls is not None
    assert tls.cert_file == str(cases_dir / "server.crt")
    assert (tls.min_version, tls.max_version, tls.client_auth_type) == (
        "TLS12",
        "TLS13",
        "NoClientCert",
    )
    assert tls.prefer_server_cipher_suites is True
    assert config.http_server_config.http2 is True
    assert load_web_config(str(cases_dir / "tls-settings-without-cert.good.yml")) == WebConfig(
        source=str(cases_dir / "tls-settings-without-cert.good.yml")
    )
    assert ssl_context(load_web_config(str(cases_dir / "empty.good.yml"))) is None


def test_secrets_stay_out_of_errors_and_repr(cases_dir: Path) -> None:
    config = load_web_config(str(cases_dir / "basic-auth.good.yml"))
    assert tuple(sorted(config.basic_auth_users)) == ("alice", "bob")
    assert FAKE_HASH not in repr(config)
    broken = cases_dir / "broken-yaml-with-hash.yml"
    broken.write_text(f"basic_auth_users:\n  alice: {FAKE_HASH}\n   bob: [{FAKE_HASH}\n")
    with pytest.raises(WebConfigError) as raised:
        load_web_config(str(broken))
    assert "invalid YAML" in str(raised.value)
    assert "$2y$" not in str(raised.value)


# --- a real server ---------------------------------------------------------------------------


async def ok(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


@contextlib.asynccontextmanager
async def running_server(watcher: WebConfigWatcher) -> AsyncIterator[str]:
    app = web.Application(middlewares=[auth_middleware(watcher)])
    install_response_headers(app, watcher)
    app.router.add_get("/metrics", ok)
    app.router.add_get("/-/healthy", ok)
    context = ssl_context(watcher.config)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    try:
        port = runner.addresses[0][1]
        yield f"{'https' if context else 'http'}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def client_context(
    ca: trustme.CA,
    cert: trustme.LeafCert | None = None,
    max_version: ssl.TLSVersion | None = None,
) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if cert is not None:
        cert.configure_cert(context)
    if max_version is not None:
        context.maximum_version = max_version
    return context


async def get(
    url: str, context: ssl.SSLContext | bool = False, auth: tuple[str, str] | None = None
) -> httpx.Response:
    async with httpx.AsyncClient(verify=context, timeout=10) as client:
        return await client.get(url, auth=auth)


def hash_password(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path)


def write_config(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


TLS_SERVER = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
HEADERS = (
    "http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
    "    X-Content-Type-Options: nosniff\n    Content-Security-Policy: ''\n"
)


def users_yaml(**passwords: str) -> str:
    lines = "".join(f"  {user}: {hash_password(pw)}\n" for user, pw in passwords.items())
    return f"basic_auth_users:\n{lines}"


async def test_basic_auth_over_tls(tmp_path: Path, pki: Pki) -> None:
    path = write_config(tmp_path / "web.yml", TLS_SERVER + HEADERS + users_yaml(alice="s3cret"))
    trust = client_context(pki.ca)
    async with running_server(WebConfigWatcher(path)) as base:
        assert (await get(f"{base}/metrics", trust, ("alice", "s3cret"))).status_code == 200
        for auth in (("alice", "wrong"), ("mallory", "s3cret"), None):
            response = await get(f"{base}/metrics", trust, auth)
            assert response.status_code == 401, auth
            assert response.headers["WWW-Authenticate"].startswith('Basic realm="')
            assert response.headers["X-Frame-Options"] == "deny"
        healthy = await get(f"{base}/-/healthy", trust)
        assert healthy.status_code == 200
        assert healthy.headers["X-Content-Type-Options"] == "nosniff"
        assert "Content-Security-Policy" not in healthy.headers  # blank means unset
        missing = await get(f"{base}/nothing-here", trust, ("alice", "s3cret"))
        assert missing.status_code == 404
        assert missing.headers["X-Frame-Options"] == "deny"


async def test_without_web_config_everything_is_open_over_http() -> None:
    watcher = WebConfigWatcher(None)
    assert ssl_context(watcher.config) is None
    async with running_server(watcher) as base:
        assert base.startswith("http://")
        assert (await get(f"{base}/metrics")).status_code == 200


async def test_client_certificate_required(tmp_path: Path, pki: Pki) -> None:
    path = write_config(
        tmp_path / "web.yml",
        TLS_SERVER + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n",
    )
    async with running_server(WebConfigWatcher(path)) as base:
        with pytest.raises(httpx.TransportError):
            await get(f"{base}/metrics", client_context(pki.ca))
        stranger = pki.other_ca.issue_cert("client.example.org")
        with pytest.raises(httpx.TransportError):
            await get(f"{base}/metrics", client_context(pki.ca, stranger))
        response = await get(f"{base}/metrics", client_context(pki.ca, pki.client))
        assert response.status_code == 200


async def test_client_allowed_sans(tmp_path: Path, pki: Pki) -> None:
    path = write_config(
        tmp_path / "web.yml",
        TLS_SERVER + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
        "  client_allowed_sans: [prometheus.example.org]\n",
    )
    async with running_server(WebConfigWatcher(path)) as base:
        allowed = pki.ca.issue_cert("prometheus.example.org")
        assert (await get(f"{base}/metrics", client_context(pki.ca, allowed))).status_code == 200
        refused = await get(f"{base}/-/healthy", client_context(pki.ca, pki.client))
        assert refused.status_code == 403


async def test_min_version_respected(tmp_path: Path, pki: Pki) -> None:
    path = write_config(tmp_path / "web.yml", TLS_SERVER + "  min_version: TLS13\n")
    async with running_server(WebConfigWatcher(path)) as base:
        with pytest.raises(httpx.TransportError):
            await get(f"{base}/metrics", client_context(pki.ca, max_version=ssl.TLSVersion.TLSv1_2))
        assert (await get(f"{base}/metrics", client_context(pki.ca))).status_code == 200


async def test_file_changes_apply_without_restart_and_broken_files_are_ignored(
    tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_config(tmp_path / "web.yml", TLS_SERVER + users_yaml(alice="s3cret"))
    watcher = WebConfigWatcher(path, check_interval_seconds=0)
    trust = client_context(pki.ca)
    async with running_server(watcher) as base:
        assert (await get(f"{base}/metrics", trust, ("bob", "hunter2"))).status_code == 401
        write_config(tmp_path / "web.yml", TLS_SERVER + users_yaml(alice="s3cret", bob="hunter2"))
        assert (await get(f"{base}/metrics", trust, ("bob", "hunter2"))).status_code == 200

        broken = users_yaml(alice="s3cret", bob="hunter2") + "  carol: plaintext-password\n"
        with caplog.at_level(logging.ERROR, logger="exporter.webconfig"):
            write_config(tmp_path / "web.yml", TLS_SERVER + broken)
            assert (await get(f"{base}/metrics", trust, ("bob", "hunter2"))).status_code == 200
            assert (await get(f"{base}/metrics", trust, ("alice", "s3cret"))).status_code == 200
        errors = [record.getMessage() for record in caplog.records]
        assert len(errors) == 1, errors  # reported once, not on every request
        assert "basic_auth_users.carol" in errors[0]
        assert "keeping the previous web config" in errors[0]
        assert "plaintext-password" not in errors[0]
        assert "$2b$" not in errors[0]


def test_watcher_checks_at_most_once_per_interval(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not read again before the interval has passed, and read again once it has (the
    watcher's clock is a fake one the test moves on)."""
    now = [1000.0]
    monkeypatch.setattr(web_watcher, "time", SimpleNamespace(monotonic=lambda: now[0]))
    path = write_config(tmp_path / "web.yml", users_yaml(alice="s3cret"))
    watcher = WebConfigWatcher(path, check_interval_seconds=3600)
    write_config(tmp_path / "web.yml", users_yaml(alice="s3cret", bob="hunter2"))
    now[0] += 3599
    assert tuple(sorted(watcher.config.basic_auth_users)) == ("alice",)
    now[0] += 1
    assert tuple(sorted(watcher.config.basic_auth_users)) == ("alice", "bob")
    write_config(tmp_path / "web.yml", users_yaml(carol="s3cret"))
    now[0] += 3599
    assert tuple(sorted(watcher.config.basic_auth_users)) == (
        "alice",
        "bob",
    )  # the interval starts again
    now[0] += 1
    assert tuple(sorted(watcher.config.basic_auth_users)) == ("carol",)
    with pytest.raises(WebConfigError):
        WebConfigWatcher(str(tmp_path / "missing.yml"))
    with pytest.raises(WebConfigError):
        WebConfigWatcher(str(tmp_path / "missing.yml"))


async def test_bcrypt_runs_once_per_credentials(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[bytes] = []
    real_checkpw = bcrypt.checkpw

    def counting_checkpw(password: bytes, hashed: bytes) -> bool:
        calls.append(password)
        return real_checkpw(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting_checkpw)
    path = write_config(tmp_path / "web.yml", TLS_SERVER + users_yaml(alice="s3cret"))
    watcher = WebConfigWatcher(path, check_interval_seconds=0)
    trust = client_context(pki.ca)
    async with running_server(watcher) as base:
        for _ in range(3):
            assert (await get(f"{base}/metrics", trust, ("alice", "s3cret"))).status_code == 200
        assert len(calls) == 1
        for _ in range(2):  # failures are not cached, and unknown users cost a bcrypt too
            assert (await get(f"{base}/metrics", trust, ("alice", "nope"))).status_code == 401
            assert (await get(f"{base}/metrics", trust, ("eve", "s3cret"))).status_code == 401
        assert len(calls) == 5
        # a new hash for alice must be checked again, even with the same password
        write_config(tmp_path / "web.yml", TLS_SERVER + users_yaml(alice="s3cret"))
        assert (await get(f"{base}/metrics", trust, ("alice", "s3cret"))).status_code == 200
        assert len(calls) == 6


async def test_certificate_files_reread_on_new_handshake(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(web_tls, "RELOAD_CHECK_INTERVAL_SECONDS", 0.0)
    path = write_config(tmp_path / "web.yml", TLS_SERVER)
    async with running_server(WebConfigWatcher(path)) as base:
        assert (await get(f"{base}/metrics", client_context(pki.ca))).status_code == 200
        write_key_pair(pki.other_ca.issue_cert("127.0.0.1"), tmp_path, "server.crt", "server.key")
        assert (await get(f"{base}/metrics", client_context(pki.other_ca))).status_code == 200
        with pytest.raises(httpx.TransportError):
            await get(f"{base}/metrics", client_context(pki.ca))
        # a half-written pair keeps the last good certificate
        (tmp_path / "server.key").write_text("not a key\n")
        assert (await get(f"{base}/metrics", client_context(pki.other_ca))).status_code == 200
