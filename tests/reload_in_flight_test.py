"""A reload that changes a key while its probe is in flight never starts a second probe of that
key: the exporter as a real process, reloaded by SIGHUP mid-probe, behind a loopback proxy that
counts the requests of each key in flight at the upstream."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from exporter.scheduler import first_run_offset
from exporter.simulator import make_key
from tests.harness import (
    start_exporter_process,
    start_simulator_process,
    write_config,
    write_key,
)
from tests.support.loopback_app import served_on_loopback

SLOW_MS = 3000  # each answer takes this long: every reload below lands mid-probe
INTERVAL = 5.0
NAME = "key1"  # its first-run offset (0.92 s at 5 s) is shorter than a probe


class CountingProxy:
    """Forwards `/v1/*` to the simulator and counts the requests of each key still unanswered."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream  # http://host:port, without /v1
        self.in_flight: Counter[str] = Counter()
        self.most_in_flight: Counter[str] = Counter()
        self.answered: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> CountingProxy:
        self._thread.start()
        assert self._ready.wait(10), "the counting proxy did not start"
        return self

    def stop(self) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def now_in_flight(self, token: str) -> int:
        with self.lock:
            return self.in_flight[token]

    def _serve(self) -> None:
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with aiohttp.ClientSession() as session:

            async def forward(request: web.Request) -> web.Response:
                token = request.headers.get("Authorization", "")
                with self.lock:
                    self.in_flight[token] += 1
                    self.most_in_flight[token] = max(
                        self.most_in_flight[token], self.in_flight[token]
                    )
                try:
                    async with session.get(
                        self.upstream + request.path_qs, headers={"Authorization": token}
                    ) as answer:
                        body = await answer.read()
                        return web.Response(
                            status=answer.status,
                            body=body,
                            content_type=answer.content_type,
                        )
                finally:
                    with self.lock:
                        self.in_flight[token] -= 1
                        self.answered[token] += 1

            app = web.Application()
            app.router.add_get("/v1/{tail:.*}", forward)
            async with served_on_loopback(app) as port:
                self.port = port
                self._ready.set()
                await self._stop.wait()


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[CountingProxy]:
    simulator, base_url = start_simulator_process(tmp_path)
    counting = CountingProxy(base_url.removesuffix("/v1")).start()
    try:
        yield counting
    finally:
        counting.stop()
        simulator.stop()


def test_a_reload_mid_probe_never_probes_the_key_twice_at_once(
    proxy: CountingProxy, tmp_path: Path
) -> None:
    assert first_run_offset(NAME, "rest", INTERVAL) < SLOW_MS / 1000 - 1.0
    key = make_key("slow", SLOW_MS, seed="in-flight")
    key_file = write_key(tmp_path, NAME, key)
    token = f"Bearer {key}"
    config = tmp_path / "config.yml"

    def configure(timeout: str) -> None:
        write_config(
            config,
            f"http://127.0.0.1:{proxy.port}/v1",
            [{"name": NAME, "api_key_file": str(key_file), "timeout": timeout}],
            interval=f"{INTERVAL:g}s",
            timeout="4s",
            probes=("rest",),
        )

    configure("4s")
    exporter, _ = start_exporter_process(config, tmp_path)
    try:
        deadline = time.monotonic() + 15
        while proxy.now_in_flight(token) == 0:
            assert time.monotonic() < deadline, "the first probe never reached the upstream"
            time.sleep(0.02)
        # Each reload changes the key (its timeout) while a probe of it is unanswered.
        reloads_mid_probe = 0
        for timeout in ["4500ms", "4s"] * 4:
            configure(timeout)
            if proxy.now_in_flight(token) > 0:
                reloads_mid_probe += 1
            exporter.signal(signal.SIGHUP)
            time.sleep(1.5)
        # The new schedule started once the probe ended: probing went on after the reloads.
        answered = proxy.answered[token]
        deadline = time.monotonic() + 15
        while proxy.answered[token] < answered + 1:
            assert time.monotonic() < deadline, "no probe after the reloads"
            time.sleep(0.05)
    finally:
        exporter.stop()
    assert reloads_mid_probe >= 3, f"only {reloads_mid_probe} reloads landed mid-probe"
    assert proxy.answered[token] >= 3, proxy.answered
    assert proxy.most_in_flight[token] == 1, (
        f"{proxy.most_in_flight[token]} requests of one key in flight at once"
    )
    assert "configuration reloaded" in exporter.output()
