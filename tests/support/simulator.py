"""The bundled simulator for tests: in-process (on the test's loop or its own thread) and over TLS as a process."""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from exporter.simulator import RunningSimulator, start_simulator
from tests.harness import (
    Process,
    exporter_command,
    free_port,
)
from tests.support.tls import Tls


class SimulatorThread:
    """The simulator in-process but on its own thread and event loop, so that the test's loop
    sees only the exporter's tasks and sockets, and sync tests (hypothesis) can use it too."""

    def __init__(self, host: str = "127.0.0.1", ssl_context: object = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        future: Future[RunningSimulator] = asyncio.run_coroutine_threadsafe(
            start_simulator(host, 0, ssl_context),
            self._loop,  # type: ignore[arg-type]
        )
        self.simulator = future.result(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.simulator.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@contextmanager
def simulator_in_thread(ssl_context: object = None) -> Iterator[RunningSimulator]:
    """The simulator on its own thread and loop (SimulatorThread) for the block's length."""
    thread = SimulatorThread(ssl_context=ssl_context)
    try:
        yield thread.simulator
    finally:
        thread.close()


def start_tls_simulator_process(tmp_path: Path, tls: Tls) -> tuple[Process, str]:
    port = free_port()
    process = Process(
        exporter_command(
            "simulate",
            "--web.listen-address",
            f"127.0.0.1:{port}",
            "--tls.cert-file",
            str(tls.cert_file),
            "--tls.key-file",
            str(tls.key_file),
        ),
        tmp_path / f"tls-simulator-{port}.log",
    ).start()
    context = ssl.create_default_context(cafile=str(tls.ca_file))
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"https://127.0.0.1:{port}/_sim/stats", verify=context, timeout=2)
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline or (process.popen and process.popen.poll() is not None):
                raise AssertionError(f"TLS simulator did not start:\n{process.output()}") from None
            time.sleep(0.1)
    return process, f"https://127.0.0.1:{port}/v1"


@pytest.fixture
async def simulator() -> AsyncIterator[RunningSimulator]:
    running = await start_simulator()
    try:
        yield running
    finally:
        await running.close()
