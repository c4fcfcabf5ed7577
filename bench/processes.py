"""The processes a benchmark runs: simulators (TLS and plain), exporters with N keys, blackbox."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme
import yaml

from exporter.simulator import key_id, make_key
from tests.harness import Process, free_port, wait_http, write_key

BLACKBOX = "prometheus-blackbox-exporter"


@dataclass(frozen=True)
class Certificates:
    ca_file: Path
    cert_file: Path
    key_file: Path


def throwaway_certificates(directory: Path) -> Certificates:
    """A trustme CA and a loopback server certificate; the exporter trusts the CA via tls.ca_file."""
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    paths = Certificates(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    ca.cert_pem.write_to_path(str(paths.ca_file))
    server.cert_chain_pems[0].write_to_path(str(paths.cert_file))
    server.private_key_pem.write_to_path(str(paths.key_file))
    return paths


@dataclass
class Simulator:
    process: Process
    url: str  # https://127.0.0.1:PORT or http://...

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"


def start_simulator(workdir: Path, certificates: Certificates | None) -> Simulator:
    port = free_port()
    args = [sys.executable, "-m", "exporter", "simulate", "--web.listen-address"]
    args.append(f"127.0.0.1:{port}")
    scheme = "http"
    if certificates is not None:
        args += ["--tls.cert-file", str(certificates.cert_file)]
        args += ["--tls.key-file", str(certificates.key_file)]
        scheme = "https"
    process = Process(args, workdir / f"simulator-{scheme}-{port}.log").start()
    url = f"{scheme}://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:  # wait_http cannot verify our CA; a plain TCP-level check via the stats page
        try:
            _get_json(url, "/_sim/stats", certificates)
            break
        except OSError:
            if time.monotonic() > deadline or process.popen is None or process.popen.poll():
                raise
            time.sleep(0.1)
    return Simulator(process, url)


def _get_json(url: str, path: str, certificates: Certificates | None) -> object:
    import httpx

    verify: object = True
    if certificates is not None:
        import ssl

        verify = ssl.create_default_context(cafile=str(certificates.ca_file))
    try:
        response = httpx.get(url + path, verify=verify, timeout=60.0)  # type: ignore[arg-type]
    except httpx.HTTPError as error:
        raise OSError(str(error)) from error
    response.raise_for_status()
    return response.json()


SimulatorStats = dict[str, dict[str, Any]]  # key id -> counters and request times


def simulator_stats(simulator: Simulator, certificates: Certificates | None) -> SimulatorStats:
    """Per key id: rest_requests, realtime_sessions and their monotonic times."""
    document = _get_json(simulator.url, "/_sim/stats", certificates)
    assert isinstance(document, dict)
    keys: SimulatorStats = document["keys"]
    return keys


@dataclass
class Fleet:
    """N generated keys in files and the exporter configuration that probes them."""

    names: list[str]
    keys: list[str]
    config_file: Path

    def key_ids(self) -> dict[str, str]:
        return {key_id(key): name for name, key in zip(self.names, self.keys, strict=True)}


def write_fleet(
    directory: Path,
    count: int,
    simulator: Simulator,
    certificates: Certificates | None,
    interval: float,
    realtime_interval: float,
    probes: tuple[str, ...],
    scenario: str = "ok",
    arg: int | None = None,
    timeout: float = 5.0,
) -> Fleet:
    directory.mkdir(parents=True, exist_ok=True)
    names = [f"bench-{index:05d}" for index in range(count)]
    keys = [make_key(scenario, arg, seed=f"{directory.name}-{index}") for index in range(count)]
    defaults: dict[str, object] = {
        "base_url": simulator.base_url,
        "interval": f"{interval:g}s",
        "timeout": f"{min(timeout, interval):g}s",
        "retry_interval": f"{interval:g}s",
        "probes": list(probes),
        "realtime": {"interval": f"{realtime_interval:g}s"},
    }
    if certificates is not None:
        defaults["tls"] = {"ca_file": str(certificates.ca_file)}
    entries = [
        {"name": name, "api_key_file": str(write_key(directory, name, key))}
        for name, key in zip(names, keys, strict=True)
    ]
    config_file = directory / "config.yml"
    config_file.write_text(yaml.safe_dump({"defaults": defaults, "keys": entries}, sort_keys=False))
    return Fleet(names, keys, config_file)


# The exporter with every probe on a fresh connection: same code, one constant changed.
_FRESH_EVERY_PROBE = (
    "import sys, exporter.probes.rest as rest; rest.FRESH_CONNECTION_EVERY = 1; "
    "from exporter.cli import main; sys.exit(main(sys.argv[1:]))"
)


@dataclass
class Exporter:
    process: Process
    url: str
    launched: float  # time.monotonic() just before the process was started
    healthy_after: float  # seconds from launch to /-/healthy answering

    @property
    def pid(self) -> int:
        assert self.process.popen is not None
        return self.process.popen.pid


def start_exporter(
    workdir: Path, fleet: Fleet, fresh_every_probe: bool = False, log_level: str = "warn"
) -> Exporter:
    port = free_port()
    launcher = ["-c", _FRESH_EVERY_PROBE] if fresh_every_probe else ["-m", "exporter"]
    args = [sys.executable, *launcher, "--config.file", str(fleet.config_file)]
    args += ["--web.listen-address", f"127.0.0.1:{port}", "--log.level", log_level]
    url = f"http://127.0.0.1:{port}"
    launched = time.monotonic()
    process = Process(args, workdir / f"exporter-{port}.log").start()
    wait_http(f"{url}/-/healthy", timeout=120.0, process=process)
    return Exporter(process, url, launched, time.monotonic() - launched)


def wait_ready(exporter: Exporter, timeout: float) -> None:
    wait_http(f"{exporter.url}/-/ready", timeout=timeout, process=exporter.process)


@dataclass
class Blackbox:
    process: Process
    url: str

    @property
    def pid(self) -> int:
        assert self.process.popen is not None
        return self.process.popen.pid


def start_blackbox(
    workdir: Path, binary: str, certificates: Certificates, modules: dict[str, str]
) -> Blackbox:
    """blackbox_exporter with one http module per bearer token (module name -> key)."""
    config = {
        "modules": {
            name: {
                "prober": "http",
                "timeout": "5s",
                "http": {
                    "method": "GET",
                    "valid_status_codes": [200],
                    "preferred_ip_protocol": "ip4",
                    "headers": {"Authorization": f"Bearer {key}"},
                    "tls_config": {"ca_file": str(certificates.ca_file)},
                },
            }
            for name, key in modules.items()
        }
    }
    config_file = workdir / "blackbox.yml"
    config_file.write_text(yaml.safe_dump(config))
    port = free_port()
    process = Process(
        [binary, f"--config.file={config_file}", f"--web.listen-address=127.0.0.1:{port}"],
        workdir / f"blackbox-{port}.log",
    ).start()
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/-/healthy", process=process)
    return Blackbox(process, url)
