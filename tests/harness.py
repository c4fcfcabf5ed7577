"""Start the simulator and the exporter as real processes on loopback, and wait for them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx
import yaml

from exporter.redaction import redact
from exporter.simulator.scenarios import SCENARIO_PATTERN
from tests.support.secrets import assert_no_piece

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Process:
    """A child process whose output goes to a file the test can read."""

    args: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                self.args, stdout=log, stderr=subprocess.STDOUT, env=environment, cwd=REPO
            )
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.popen is None or self.popen.poll() is not None:
            return self.popen.returncode if self.popen else None
        self.popen.terminate()
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait(timeout)

    def signal(self, signum: int) -> None:
        assert self.popen is not None
        self.popen.send_signal(signum)


def wait_http(
    url: str, status: int = 200, timeout: float = 30.0, process: Process | None = None
) -> httpx.Response:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if process is not None and process.popen is not None and process.popen.poll() is not None:
            raise AssertionError(f"process exited {process.popen.returncode}:\n{process.output()}")
        try:
            response = httpx.get(url, timeout=2.0)
            if response.status_code == status:
                return response
            last = response.status_code
        except httpx.HTTPError as error:
            last = error
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer {status} within {timeout}s (last: {last})")


def exporter_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "exporter", *args]


def start_simulator_process(tmp_path: Path) -> tuple[Process, str]:
    """The simulator as its own process; returns it and its base URL (`http://.../v1`)."""
    port = free_port()
    process = Process(
        exporter_command("simulate", "--web.listen-address", f"127.0.0.1:{port}"),
        tmp_path / f"simulator-{port}.log",
    ).start()
    wait_http(f"http://127.0.0.1:{port}/_sim/stats", process=process)
    return process, f"http://127.0.0.1:{port}/v1"


def start_exporter_process(
    config_path: Path | None,
    tmp_path: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    wait_ready: bool = True,
) -> tuple[Process, str]:
    """The exporter as its own process; returns it and its root URL (`http://127.0.0.1:PORT`)."""
    port = free_port()
    args = ["--web.listen-address", f"127.0.0.1:{port}", *extra]
    if config_path is not None:
        args = ["--config.file", str(config_path), *args]
    process = Process(
        exporter_command(*args), tmp_path / f"exporter-{port}.log", env=env or {}
    ).start()
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/-/healthy", process=process)
    if wait_ready:
        wait_http(f"{url}/-/ready", process=process)
    return process, url


def write_key(directory: Path, name: str, key: str) -> Path:
    path = directory / f"{name}.key"
    path.write_text(key + "\n")
    path.chmod(0o600)
    return path


def write_config(
    path: Path,
    base_url: str,
    keys: list[dict[str, Any]],
    interval: str = "2s",
    timeout: str = "1s",
    probes: tuple[str, ...] = ("rest", "realtime"),
    realtime_interval: str | None = None,
    retry_interval: str = "1s",
    **defaults: Any,
) -> Path:
    config = {
        "defaults": {
            "base_url": base_url,
            "interval": interval,
            "timeout": timeout,
            "retry_interval": retry_interval,
            "probes": list(probes),
            "realtime": {"interval": realtime_interval or interval},
            **defaults,
        },
        "keys": keys,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def random_parts(key: str) -> list[str]:
    """What of a simulator key is secret: the padding after `sim--<scenario>--`, which
    outputs may legitimately name; split at line breaks a malformed key carries."""
    match = SCENARIO_PATTERN.search(key)
    secret = key[match.end() :] if match else key
    return [part for part in re.split(r"[\r\n]", secret) if part]


def assert_no_secret(text: str, keys: list[str], where: str) -> None:
    """Neither a whole key nor any 12 characters of its random part appear in `text`."""
    for key in keys:
        assert key not in text, f"{where} holds a whole key ({redact(key)})"
        assert key.strip() not in text, f"{where} holds a whole key ({redact(key)})"
        assert_no_piece(text, random_parts(key), where, f"key {redact(key)}")


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy one direction of a forwarded TCP connection, then pass the end of it on."""
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()


class LoopbackRelay:
    """A TCP server on loopback whose connections each open one upstream and are piped to it.

    `connect_upstream` reads what it needs from the client and returns the upstream's ends;
    closing cancels every connection still open.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> Self:
        self._server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def connect_upstream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        raise NotImplementedError

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        upstream: asyncio.StreamWriter | None = None
        try:
            up_reader, upstream = await self.connect_upstream(reader, writer)
            await asyncio.gather(pipe(reader, upstream), pipe(up_reader, writer))
        except (OSError, ValueError, asyncio.IncompleteReadError):
            pass
        finally:
            for end in (writer, upstream):
                if end is not None:
                    end.close()
            self._tasks.discard(task)
