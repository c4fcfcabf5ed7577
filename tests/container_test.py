"""The real Dockerfile, built and run: podman builds it on a stand-in for its production base
(Debian bookworm made here by debootstrap: scripts/standin-base.sh) and runs the image as
deploy/README.md documents it, read-only, against the simulator on loopback.

What this proves and what it cannot: see "What the container test proves" in deploy/README.md.
Runs as root with the runc runtime and host networking, within this machine's ulimits; nothing
is pulled from a registry (`--pull=never`). In CI a missing tool fails; elsewhere it skips.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from exporter.simulator.scenarios import make_key
from tests.conftest import require_tool
from tests.harness import (
    assert_no_secret,
    free_port,
    start_simulator_process,
    wait_http,
    write_config,
)
from tests.image_spec import ImageSpec, read_spec
from tests.support.deploy import REPO
from tests.support.metrics import parse_metrics

# The first run makes the stand-in with debootstrap (about a minute) and builds without cache.
pytestmark = pytest.mark.timeout(1500)

STANDIN_SCRIPT = REPO / "scripts" / "standin-base.sh"
IMAGE = "localhost/openai-key-exporter:container-test"
# pip in the build stage trusts this bundle: on these machines it holds the CA of the proxy that
# intercepts package downloads. Passed as a build secret, so it never lands in the image.
CA_BUNDLE = Path(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt")
RUNTIME = ["--runtime", "runc"]
RUN_FLAGS = [
    *RUNTIME,
    "--network=host",
    # The machine's own limits: runc cannot give a container more than its caller has.
    "--ulimit=nofile=1024:1024",
    "--ulimit=nproc=4096:4096",
]
COMPOSE_FILE = REPO / "deploy" / "compose" / "compose.yaml"
CONFIG_IN_CONTAINER = "/etc/openai-key-exporter/config.yml"
KEYS_IN_CONTAINER = "/etc/openai-key-exporter/keys"
MAX_IMAGE_BYTES = 250_000_000
STOP_WITHIN_S = 5.0


def require_root() -> None:
    if os.geteuid() == 0:
        return
    message = "the container test needs root (debootstrap, and podman with the runc runtime)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def hardening() -> list[str]:
    """The compose exporter's own restrictions, as podman flags: the image runs here as the
    stack runs it (deploy/README.md's `docker run` adds --read-only and --cap-drop ALL too).
    Its user is left out on purpose: the image's own USER is what is under test."""
    service = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))["services"]["exporter"]
    flags = ["--read-only"] if service.get("read_only") else []
    flags += [f"--cap-drop={capability}" for capability in service.get("cap_drop", [])]
    flags += [f"--security-opt={option}" for option in service.get("security_opt", [])]
    assert "--read-only" in flags, "compose.yaml's exporter no longer runs read-only"
    return flags


def podman(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [require_tool("podman"), *args], capture_output=True, text=True, timeout=timeout
    )
    if check:
        assert result.returncode == 0, (
            f"podman {' '.join(args)} exited {result.returncode}:\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def image_id(reference: str) -> str | None:
    result = podman("image", "inspect", "--format", "{{.Id}}", reference, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def remove_older_build_stages(base: str) -> None:
    """Each build leaves its build stage untagged, as podman's layer cache for the next build:
    keep the newest only, so that runs do not pile them up."""
    dangling = podman(
        "images", "--quiet", "--sort=created", "--filter=dangling=true", f"--filter=since={base}"
    ).stdout.split()
    for stale in dangling[1:]:
        podman("rmi", stale, check=False)


@dataclass(frozen=True)
class Built:
    base: str
    spec: ImageSpec
    config: dict[str, Any]
    healthcheck: dict[str, Any]
    size: int
    build_seconds: float


@pytest.fixture(scope="module")
def built() -> Built:
    require_root()
    for tool in ("podman", "runc", "debootstrap"):
        require_tool(tool)
    standin = subprocess.run(
        [str(STANDIN_SCRIPT)], capture_output=True, text=True, timeout=1200, cwd=REPO
    )
    assert standin.returncode == 0, f"{STANDIN_SCRIPT.name} failed:\n{standin.stderr[-4000:]}"
    base = standin.stdout.strip().splitlines()[-1]
    assert CA_BUNDLE.is_file(), f"{CA_BUNDLE} (the CA bundle pip trusts in the build) is missing"
    previous = image_id(IMAGE)
    started = time.monotonic()
    # podman hands the host's *_proxy variables to RUN steps (--http-proxy, on by default)
    # without storing them in the image.
    podman(
        "build",
        *RUNTIME,
        "--network=host",
        "--pull=never",
        "--format=docker",  # the OCI format drops HEALTHCHECK
        f"--secret=id=pip_cert,src={CA_BUNDLE}",
        f"--build-arg=BASE_IMAGE={base}",
        f"--tag={IMAGE}",
        str(REPO),
        timeout=1200,
    )
    build_seconds = time.monotonic() - started
    current = image_id(IMAGE)
    if previous and previous != current:
        podman("rmi", previous, check=False)  # the last run's image, now untagged
    remove_older_build_stages(base)
    (inspected,) = json.loads(podman("image", "inspect", IMAGE).stdout)
    return Built(
        base,
        read_spec(),
        inspected["Config"],
        inspected.get("Healthcheck") or {},
        int(inspected["Size"]),
        build_seconds,
    )


@dataclass
class Container:
    name: str
    url: str
    keys: list[str]

    def inspect(self) -> dict[str, Any]:
        (inspected,) = json.loads(podman("container", "inspect", self.name).stdout)
        result: dict[str, Any] = inspected
        return result

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def exec(
        self, *command: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        flags = [f"--env={name}={value}" for name, value in (env or {}).items()]
        return podman("exec", *flags, self.name, *command, check=False)


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    process, base_url = start_simulator_process(tmp_path_factory.mktemp("simulator"))
    yield base_url
    process.stop()


@pytest.fixture(scope="module")
def mounts(tmp_path_factory: pytest.TempPathFactory, simulator: str, built: Built) -> Path:
    """A config and one key file per scenario, readable by the image's user only, as a
    Kubernetes secret with fsGroup or a Docker secret gives them."""
    directory = tmp_path_factory.mktemp("mounts")
    keys = directory / "keys"
    keys.mkdir()
    entries = []
    for name, scenario in (("working", "ok"), ("revoked", "invalid_api_key")):
        path = keys / name
        path.write_text(make_key(scenario) + "\n")
        os.chown(path, built.spec.uid, built.spec.gid)
        path.chmod(0o400)
        entries.append({"name": name, "api_key_file": f"{KEYS_IN_CONTAINER}/{name}"})
    config = write_config(directory / "config.yml", simulator, entries, interval="2s")
    config.chmod(0o444)
    return directory


def start_container(built: Built, mounts: Path) -> Container:
    port = free_port()
    name = f"openai-key-exporter-test-{os.getpid()}-{port}"
    podman(
        "run",
        "--detach",
        f"--name={name}",
        *RUN_FLAGS,
        *hardening(),
        # The listen address moves off 10077 (host networking, shared machine), so the health
        # check follows it, as deploy/README.md says.
        f"--env=HEALTHCHECK_URL=http://127.0.0.1:{port}/-/healthy",
        f"--volume={mounts / 'config.yml'}:{CONFIG_IN_CONTAINER}:ro",
        f"--volume={mounts / 'keys'}:{KEYS_IN_CONTAINER}:ro",
        IMAGE,
        f"--config.file={CONFIG_IN_CONTAINER}",
        f"--web.listen-address=127.0.0.1:{port}",
    )
    keys = [(mounts / "keys" / name).read_text().strip() for name in ("working", "revoked")]
    container = Container(name, f"http://127.0.0.1:{port}", keys)
    try:
        wait_http(f"{container.url}/-/healthy", timeout=60)
    except AssertionError as error:
        logs = container.logs()
        podman("rm", "--force", "--time=0", name, check=False)
        raise AssertionError(f"{error}\ncontainer log:\n{logs}") from None
    return container


@pytest.fixture(scope="module")
def exporter(built: Built, mounts: Path) -> Iterator[Container]:
    container = start_container(built, mounts)
    yield container
    podman("rm", "--force", "--time=0", container.name, check=False)


def wait_for_samples(url: str, wanted: dict[str, float], timeout: float = 45.0) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = httpx.get(f"{url}/metrics", timeout=5).text
        samples = parse_metrics(text)
        if all(samples.get(series) == value for series, value in wanted.items()):
            return text
        time.sleep(0.5)
    missing = {s: v for s, v in wanted.items() if parse_metrics(text).get(s) != v}
    raise AssertionError(f"/metrics lacks {missing} after {timeout}s:\n{text[-3000:]}")


def test_built_image_is_what_the_dockerfile_says(built: Built) -> None:
    spec, config = built.spec, built.config
    assert config["User"] == f"{spec.uid}:{spec.gid}"
    assert config["Entrypoint"] == spec.entrypoint
    assert set(config["ExposedPorts"]) == {f"{port}/tcp" for port in spec.exposed_ports}
    assert built.healthcheck["Test"] == ["CMD", *spec.healthcheck.command]
    assert built.healthcheck["Interval"] == spec.healthcheck.interval_s * 10**9
    assert built.healthcheck["Timeout"] == spec.healthcheck.timeout_s * 10**9
    assert built.healthcheck["Retries"] == spec.healthcheck.retries
    assert f"HEALTHCHECK_URL={spec.healthcheck_url}" in config["Env"]
    # BASE_IMAGE reached both stages: the label names the base this image was built on.
    assert config["Labels"]["org.opencontainers.image.base.name"] == built.base


def test_image_size_is_printed(built: Built, capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print(
            f"\n{IMAGE}: {built.size / 1e6:.1f} MB (built in {built.build_seconds:.0f} s "
            f"on the stand-in {built.base})"
        )
    assert built.size < MAX_IMAGE_BYTES, f"the image grew to {built.size / 1e6:.1f} MB"


def test_serves_health_and_probe_results_against_the_simulator(exporter: Container) -> None:
    assert httpx.get(f"{exporter.url}/-/healthy", timeout=5).status_code == 200
    wait_http(f"{exporter.url}/-/ready", timeout=30)
    text = wait_for_samples(
        exporter.url,
        {
            'openai_probe_result{key="working",probe="rest",result="ok"}': 1,
            'openai_probe_result{key="working",probe="realtime",result="ok"}': 1,
            'openai_probe_result{key="revoked",probe="rest",result="invalid_api_key"}': 1,
            'openai_key_valid{key="working"}': 1,
        },
    )
    assert_no_secret(text, exporter.keys, "/metrics of the container")
    assert_no_secret(exporter.logs(), exporter.keys, "the container's log")


def test_runs_as_the_images_non_root_user(built: Built, exporter: Container) -> None:
    pid = exporter.inspect()["State"]["Pid"]
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    # Real, effective, saved and filesystem ids of the exporter process itself (pid 1 inside).
    assert fields["Uid"].split() == [str(built.spec.uid)] * 4
    assert fields["Gid"].split() == [str(built.spec.gid)] * 4
    assert built.spec.uid != 0
    assert fields["CapEff"].strip() == "0000000000000000"


def test_root_filesystem_is_read_only(exporter: Container) -> None:
    assert exporter.inspect()["HostConfig"]["ReadonlyRootfs"] is True
    attempt = exporter.exec("python", "-c", "open('/opt/openai-key-exporter/written', 'w')")
    assert attempt.returncode != 0 and "Read-only file system" in attempt.stderr, attempt


def test_passes_its_own_healthcheck(built: Built, exporter: Container) -> None:
    result = podman("healthcheck", "run", exporter.name, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert exporter.inspect()["State"]["Health"]["Status"] == "healthy"
    # The same command fails where nothing answers: the check is not green by construction.
    closed = f"http://127.0.0.1:{free_port()}/-/healthy"
    failing = exporter.exec(*built.spec.healthcheck.command, env={"HEALTHCHECK_URL": closed})
    assert failing.returncode != 0, failing


def test_build_secret_stays_out_of_the_image(built: Built, exporter: Container) -> None:
    """The CA bundle pip trusted in the build was mounted for that step only."""
    assert not any(item.startswith("PIP_CERT=") for item in built.config["Env"])
    assert exporter.exec("test", "-e", "/run/secrets/pip_cert").returncode != 0
    history = podman("image", "history", "--no-trunc", "--format={{.CreatedBy}}", IMAGE).stdout
    assert CA_BUNDLE.read_text(errors="replace")[-200:] not in history


def test_runs_debians_python_and_trusts_the_public_roots(exporter: Container) -> None:
    result = exporter.exec(
        "python",
        "-c",
        "import ssl, sys; "
        "print(sys.base_prefix, sys.version_info[:2] >= (3, 11), "
        "ssl.create_default_context().cert_store_stats()['x509_ca'])",
    )
    assert result.returncode == 0, result.stderr
    prefix, recent_enough, roots = result.stdout.split()
    assert prefix == "/usr", f"the venv's interpreter is {prefix}, not Debian's python3"
    assert recent_enough == "True"
    # ca-certificates: the probes verify api.openai.com against these.
    assert int(roots) > 100, result.stdout


def test_standin_is_the_production_bases_release(built: Built, exporter: Container) -> None:
    release = exporter.exec("sh", "-c", ". /etc/os-release && echo $ID $VERSION_CODENAME")
    assert release.returncode == 0, release.stderr
    distribution, codename = release.stdout.split()
    production = built.spec.base_image_default  # debian:bookworm-slim@sha256:...
    assert production.startswith(f"{distribution}:{codename}-"), (production, release.stdout)


def test_stops_within_seconds_on_sigterm(built: Built, mounts: Path) -> None:
    container = start_container(built, mounts)
    try:
        started = time.monotonic()
        podman("kill", "--signal=TERM", container.name)
        waited = podman("wait", container.name, timeout=60)
        elapsed = time.monotonic() - started
        # Exit 0 is a clean shutdown; a runtime's SIGKILL would show as 137.
        assert waited.stdout.strip() == "0", container.logs()
        assert elapsed < STOP_WITHIN_S, f"took {elapsed:.1f}s to stop on SIGTERM"
        assert "shutting down" in container.logs()
    finally:
        podman("rm", "--force", "--time=0", container.name, check=False)


def test_check_command_prints_the_checklist(
    built: Built, mounts: Path, exporter: Container
) -> None:
    """`docker run --rm IMAGE check`, as deploy/README.md shows it: exit 1 (a key is revoked)."""
    result = podman(
        "run",
        "--rm",
        *RUN_FLAGS,
        *hardening(),
        f"--volume={mounts / 'config.yml'}:{CONFIG_IN_CONTAINER}:ro",
        f"--volume={mounts / 'keys'}:{KEYS_IN_CONTAINER}:ro",
        IMAGE,
        "check",
        f"--config.file={CONFIG_IN_CONTAINER}",
        "--color=never",
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "working" in result.stdout and "revoked" in result.stdout, result.stdout
    assert_no_secret(result.stdout + result.stderr, exporter.keys, "the check output")


def test_demo_runs_read_only_with_a_tmpfs(built: Built) -> None:
    """`docker run --rm --read-only --tmpfs /tmp IMAGE demo`, as deploy/README.md shows it."""
    port = free_port()
    name = f"openai-key-exporter-demo-test-{os.getpid()}-{port}"
    podman(
        "run",
        "--detach",
        f"--name={name}",
        *RUN_FLAGS,
        *hardening(),
        "--tmpfs=/tmp",
        IMAGE,
        "demo",
        f"--web.listen-address=127.0.0.1:{port}",
    )
    try:
        try:
            wait_http(f"http://127.0.0.1:{port}/-/healthy", timeout=60)
        except AssertionError as error:
            logs = podman("logs", name, check=False)
            raise AssertionError(f"{error}\n{logs.stdout}{logs.stderr}") from None
        wait_for_samples(
            f"http://127.0.0.1:{port}",
            {
                'openai_probe_result{key="prod",probe="rest",result="ok"}': 1,
                # the demo's admin key lists every key but this one
                'openai_probe_result{key="revoked",probe="rest",result="key_revoked"}': 1,
            },
        )
    finally:
        podman("rm", "--force", "--time=0", name, check=False)


def test_standin_script_is_cached(built: Built) -> None:
    """The second call reuses the image made for the first: the debootstrap cost is paid once."""
    started = time.monotonic()
    again = subprocess.run([str(STANDIN_SCRIPT)], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().splitlines()[-1] == built.base
    assert time.monotonic() - started < 30
