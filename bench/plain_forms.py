"""Each mechanism the exporter hand-wrote for speed or memory, measured against its plain form at
the realistic cadence: 10,000 keys with both probes (REST every 60 s, Realtime every 300 s) and a
scrape every 15 s, as a Prometheus makes them.

    .venv/bin/python -m bench.plain_forms [--keys 10000] [--repeats 5] [--rounds 3]

The exporter's own store, result type, renderer and scrape code are measured, fed synthetic
results shaped like a healthy key's (no network): every 15 s of simulated time, the quarter of
the keys whose REST probe falls due and the twentieth whose Realtime probe does get a new result,
then the scrapes are timed (CPU, `time.process_time`). Python memory is read with tracemalloc;
resident memory in fresh subprocesses (the configuration's strings; the scrape buffer over a
real loopback aiohttp server). The plain forms are written here, never in exporter/; each
form's exposition is checked to hold the same samples as ours. The cyclic collector is off
inside a timed section and runs before it, so its pauses are charged to neither form.

A row's verdict: `gain` when every sample of ours beats every sample of the plain form and the
medians differ by 5 % or more; `loss` the other way round; `noise` otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import gzip
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Protocol

from aiohttp import web
from prometheus_client import generate_latest

import exporter.result
import exporter.state
from bench.measure import Scraper, memory_mib
from bench.processes import Simulator, write_fleet
from exporter.classify import Result
from exporter.config import DEFAULT_REALTIME_MODEL
from exporter.connection_hygiene import ScrapeLimiter
from exporter.metrics import (
    CONTENT_TYPE,
    FAMILIES,
    ExporterMetrics,
    MetricsRenderer,
    render_key,
    render_latency,
)
from exporter.models import ModelStatus
from exporter.result import ProbeResult
from exporter.server import _stream
from exporter.state import KeyIdentity, KeyState, LatencyHistogram, StateStore
from tests.harness import Process

REST_INTERVAL = 60.0
REALTIME_INTERVAL = 300.0
SCRAPE_INTERVAL = 15.0
REST_SHARE = round(REST_INTERVAL / SCRAPE_INTERVAL)  # a key's REST probe: 1 scrape in 4
REALTIME_SHARE = round(REALTIME_INTERVAL / SCRAPE_INTERVAL)  # its Realtime probe: 1 in 20
FRESH_EVERY = 10  # as the REST probe: one probe in ten opens its own connection
SCRAPES_SERVED = 20  # per server process in the scrape-buffer rows
GAIN = 1.05  # medians this far apart, with no overlap of the samples, read as a difference


# --- the fleet: the exporter's own store, fed healthy results on the realistic schedule --------


Listener = Callable[[KeyState], None]


class Fleet:
    """N keys with both probes in a real StateStore; its listeners can be added at any time."""

    def __init__(self, keys: int, seed: int = 18) -> None:
        self.names = [f"bench-{index:05d}" for index in range(keys)]
        self.random = random.Random(seed)
        self.now = 1_800_000_000.0
        self.tick = 0
        self.listeners: list[Listener] = []
        self.store = StateStore()
        self.store.subscribe(self._notify)
        self.store.configure({name: ("rest", "realtime") for name in self.names})
        self.identities = {
            name: KeyIdentity(
                fingerprint=f"sk-proj-{index:04d}...{index % 9973:04d}",
                kind="project",
                value_digest=self.random.randbytes(16),
            )
            for index, name in enumerate(self.names)
        }
        # The model list's statuses are shared tuples in the exporter too (exporter/models.py).
        self.models = (ModelStatus(DEFAULT_REALTIME_MODEL, True, None),)

    def _notify(self, state: KeyState) -> None:
        for listener in self.listeners:
            listener(state)

    def fill(self) -> None:
        """The first round: every key's REST probe (on a fresh connection) and Realtime probe."""
        for index, name in enumerate(self.names):
            self._record(name, self._rest(index, fresh=True))
            self._record(name, self._realtime())

    def advance(self) -> int:
        """15 s of probes: the keys whose REST or Realtime probe falls due. Returns how many."""
        self.now += SCRAPE_INTERVAL
        self.tick += 1
        rest_slot, realtime_slot = self.tick % REST_SHARE, self.tick % REALTIME_SHARE
        done = 0
        for index, name in enumerate(self.names):
            if index % REST_SHARE == rest_slot:
                fresh = (index + self.tick // REST_SHARE) % FRESH_EVERY == 0
                self._record(name, self._rest(index, fresh))
                done += 1
            if index % REALTIME_SHARE == realtime_slot:
                self._record(name, self._realtime())
                done += 1
        return done

    def _record(self, name: str, result: ProbeResult) -> None:
        self.store.record(name, self.identities[name], result, read_at=result.started_at)

    def _started(self) -> float:
        return self.now + self.random.uniform(0, SCRAPE_INTERVAL)

    def _rest(self, index: int, fresh: bool) -> ProbeResult:
        uniform = self.random.uniform
        phases = {"first_byte": uniform(0.08, 0.3), "transfer": uniform(0.0002, 0.002)}
        if fresh:
            phases = {"connect": uniform(0.005, 0.02), "tls": uniform(0.02, 0.05), **phases}
        return ProbeResult(
            probe="rest",
            result=Result.OK,
            duration=sum(phases.values()),
            phases=phases,
            http_status=200,
            request_id=f"req_{self.random.getrandbits(128):032x}",
            ratelimit={
                "limit_requests": 10_000.0,
                "remaining_requests": float(self.random.randint(9_000, 9_999)),
                "limit_tokens": 30_000_000.0,
                "remaining_tokens": float(self.random.randint(29_000_000, 29_999_999)),
            },
            started_at=self._started(),
            models=self.models,
        )

    def _realtime(self) -> ProbeResult:
        uniform = self.random.uniform
        phases = {
            "connect": uniform(0.05, 0.2),
            "session_created": uniform(0.1, 0.4),
            "session_updated": uniform(0.05, 0.2),
        }
        return ProbeResult(
            probe="realtime",
            result=Result.OK,
            duration=sum(phases.values()),
            phases=phases,
            http_status=101,
            close_code=1000,
            started_at=self._started(),
        )


# --- the plain forms -------------------------------------------------------------------------


class Exposition(Protocol):
    def update(self, state: KeyState) -> None: ...


def plain_text(renderer: Exposition) -> list[bytes]:
    """A plain scrape's blocks: ours inflated from the held pieces, the plain form joined."""
    if isinstance(renderer, MetricsRenderer):
        return list(renderer.scrape().plain())
    assert isinstance(renderer, PlainRenderer)
    return renderer.render_parts()


def consumed(renderer: Exposition) -> int:
    """A plain scrape's bytes, each block dropped once counted, as the server sends them."""
    if isinstance(renderer, MetricsRenderer):
        return sum(map(len, renderer.scrape().plain()))
    return sum(map(len, plain_text(renderer)))


class PlainRenderer:
    """Segments' plain form: each key's rendering kept as its own bytes, the exposition joined
    family by family at each scrape."""

    def __init__(self, metrics: ExporterMetrics, latency: Mapping[str, LatencyHistogram]) -> None:
        self._metrics = metrics
        self._latency = latency
        self._keys: dict[str, list[bytes]] = {}

    def update(self, state: KeyState) -> None:
        self._keys[state.name] = render_key(state)

    def render_parts(self) -> list[bytes]:
        parts: list[bytes] = []
        columns = zip(*self._keys.values(), strict=True)
        for family, column in zip(FAMILIES, columns, strict=False):
            block = b"".join(column)
            if block:
                parts += (family.header, block)
        parts += (render_latency(self._latency), generate_latest(self._metrics.registry))
        return parts


def streamed_gzip(parts: list[bytes]) -> list[bytes]:
    """The held pieces' plain form for gzip: one streaming compressor over every block."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # level 1 as gzip_body.LEVEL; gzip wrapper
    body = [compressor.compress(part) for part in parts]
    body.append(compressor.flush())
    return body


class PlainCounts(dict[str, float]):
    """A plain dict, with the one method the renderer calls on counts (no extra memory)."""

    __slots__ = ()

    def pairs(self) -> list[tuple[str, float]]:
        return list(self.items())


_EMPTY = PlainCounts()


def _plain_readings(values: Mapping[str, float]) -> Mapping[str, float]:
    return PlainCounts(values) if values else _EMPTY


def _plain_incremented(counts: Mapping[str, float], name: str) -> PlainCounts:
    fresh = PlainCounts(counts)
    fresh[name] = fresh.get(name, 0.0) + 1
    return fresh


@contextmanager
def readings_form(form: str) -> Iterator[None]:
    """Results and counts made inside are Readings (ours) or plain dicts (plain)."""
    if form == "ours":
        yield
        return
    # The names the store and the result type call, replaced where they look them up.
    patches = (
        (exporter.result, "readings", _plain_readings),
        (exporter.state, "incremented", _plain_incremented),
    )
    saved = [(module, name, getattr(module, name)) for module, name, _ in patches]
    for module, name, plain in patches:
        setattr(module, name, plain)
    try:
        yield
    finally:
        for module, name, ours in saved:
            setattr(module, name, ours)


# --- rows --------------------------------------------------------------------------------------


@dataclass
class Row:
    mechanism: str
    measured: str
    unit: str
    ours: list[float] = field(default_factory=list)
    plain: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        ours = statistics.median(self.ours)
        return statistics.median(self.plain) / ours if ours else float("nan")

    @property
    def verdict(self) -> str:
        if max(self.ours) < min(self.plain) and self.ratio >= GAIN:
            return "gain"
        if max(self.plain) < min(self.ours) and self.ratio <= 1 / GAIN:
            return "loss"
        return "noise"

    def cells(self) -> list[str]:
        return [
            self.mechanism,
            f"{self.measured} ({self.unit})",
            _spread(self.ours),
            _spread(self.plain),
            f"{self.ratio:.2f}x",
            str(min(len(self.ours), len(self.plain))),
            self.verdict,
        ]


def _spread(values: list[float]) -> str:
    middle = statistics.median(values)
    if len(values) == 1 or min(values) == max(values):
        return f"{middle:.2f}"
    return f"{middle:.2f} ({min(values):.2f}-{max(values):.2f})"


HEADER = ["Mechanism", "Measured", "Ours", "Plain", "Plain / ours", "Samples", "Verdict"]


def table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def _cpu_ms(action: Callable[[], object]) -> float:
    """CPU of `action` alone: a collection owed by earlier work is made before, untimed."""
    gc.collect()
    with _no_collections():
        started = time.process_time()
        action()
        return (time.process_time() - started) * 1000


@contextmanager
def _no_collections() -> Iterator[None]:
    """The cyclic collector off: its pauses fall where allocations trip it, on whichever form
    runs then, not on the one that owes them. Both forms are measured without it."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class TimedListener:
    """A store listener whose CPU time adds up, so joins made during updates count."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.ms = 0.0

    def __call__(self, state: KeyState) -> None:
        started = time.process_time()
        self.listener(state)
        self.ms += (time.process_time() - started) * 1000


# --- 1: the scrape's CPU, the deflated segments ------------------------------------------


@dataclass
class ScrapeCpu:
    rows: list[Row]
    plain_parts: list[bytes]  # the exposition as a plain scrape of ours sends it
    gzip_parts: list[bytes]  # the gzip body as our scrape sends it


def scrape_cpu(keys: int, repeats: int, log: Callable[[str], None]) -> ScrapeCpu:
    fleet = Fleet(keys)
    metrics = ExporterMetrics()
    latency = fleet.store.latency
    ours_gzip = MetricsRenderer(metrics, latency)
    plain_gzip = PlainRenderer(metrics, latency)
    ours_plain = MetricsRenderer(metrics, latency)
    plain_plain = PlainRenderer(metrics, latency)
    timed = {
        "gzip ours": TimedListener(ours_gzip.update),
        "gzip plain": TimedListener(plain_gzip.update),
        "ours": TimedListener(ours_plain.update),
        "plain": TimedListener(plain_plain.update),
    }
    fleet.listeners += timed.values()
    fleet.fill()

    def ours_gzip_scrape() -> list[bytes]:
        return ours_gzip.scrape().gzipped()

    def plain_gzip_scrape() -> list[bytes]:
        return streamed_gzip(plain_gzip.render_parts())

    gzip_row = Row("deflated segments", "CPU per gzip scrape, joins left to it", "ms")
    tick_row = Row(
        "deflated segments", "CPU per 15 s: updates (render_key, joins) + one gzip scrape", "ms"
    )
    scrape_row = Row(
        "deflated segments", "CPU per plain scrape, joins left to it (inflated / joined)", "ms"
    )
    for repeat in range(-1, repeats):  # the first 15 s warms every cache up, not counted
        for listener in timed.values():
            listener.ms = 0.0
        gc.collect()
        with _no_collections():
            fleet.advance()
        scrapes: dict[str, Callable[[], object]] = {
            "gzip ours": ours_gzip_scrape,
            "gzip plain": plain_gzip_scrape,
            "ours": partial(consumed, ours_plain),
            "plain": partial(consumed, plain_plain),
        }
        order = list(scrapes) if repeat % 2 else list(reversed(scrapes))
        spent = {name: _cpu_ms(scrapes[name]) for name in order}
        if repeat < 0:
            continue
        gzip_row.ours.append(spent["gzip ours"])
        gzip_row.plain.append(spent["gzip plain"])
        scrape_row.ours.append(spent["ours"])
        scrape_row.plain.append(spent["plain"])
        tick_row.ours.append(timed["gzip ours"].ms + spent["gzip ours"])
        tick_row.plain.append(timed["gzip plain"].ms + spent["gzip plain"])
        log(
            f"  15 s #{repeat + 1}: gzip scrape {spent['gzip ours']:.1f} / "
            f"{spent['gzip plain']:.1f} ms, plain scrape {spent['ours']:.1f} / "
            f"{spent['plain']:.1f} ms"
        )
    gzip_body = ours_gzip_scrape()
    plain_body = plain_text(ours_plain)
    # Every form says the same: the keys' samples (all but the exporter-wide part) identical.
    samples = {
        "segments": _key_samples(b"".join(plain_body)),
        "plain renderer": _key_samples(b"".join(plain_plain.render_parts())),
        "held pieces": _key_samples(gzip.decompress(b"".join(gzip_body))),
        "streamed gzip": _key_samples(gzip.decompress(b"".join(plain_gzip_scrape()))),
    }
    different = [form for form, text in samples.items() if text != samples["segments"]]
    assert not different, f"{different} differ from the segments' exposition"
    size = Row("deflated segments", "gzip body", "MB")
    size.ours.append(sum(map(len, gzip_body)) / 1e6)
    size.plain.append(sum(map(len, plain_gzip_scrape())) / 1e6)
    rows = [gzip_row, size, tick_row, scrape_row]
    return ScrapeCpu(rows, plain_body, gzip_body)


def _key_samples(exposition: bytes) -> bytes:
    return exposition.split(b"# HELP openai_probe_latency_seconds")[0]


# --- 2, 3: Python memory (tracemalloc) -------------------------------------------------------


def _traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def memory_rows(keys: int, log: Callable[[str], None]) -> list[Row]:
    """Memory held by the store (Readings or dicts) and by the exposition (segments or per-key
    bytes), and a scrape's transient peak, each form built alone under tracemalloc."""
    store_row = Row("Readings", f"store after 15 s, {keys} keys x 2 probes (tracemalloc)", "MiB")
    held_row = Row("deflated segments", "exposition held when a scrape comes (tracemalloc)", "MiB")
    peak_row = Row(
        "deflated segments", "a plain scrape's transient peak above held (tracemalloc)", "MiB"
    )
    tracemalloc.start()
    try:
        fleets: dict[str, Fleet] = {}
        for form in ("ours", "plain"):
            before = _traced()
            with readings_form(form):
                fleet = Fleet(keys)
                fleet.fill()
                fleet.advance()
            held = (_traced() - before) / 2**20
            getattr(store_row, form).append(held)
            fleets[form] = fleet
            log(f"  store, {form}: {held:.1f} MiB")
        del fleets["plain"]
        fleet = fleets["ours"]
        metrics = ExporterMetrics()
        for form in ("ours", "plain"):
            before = _traced()
            renderer: Exposition = (
                MetricsRenderer(metrics, fleet.store.latency)
                if form == "ours"
                else PlainRenderer(metrics, fleet.store.latency)
            )
            for state in fleet.store.states():
                renderer.update(state)
            consumed(renderer)
            fleet.listeners[:] = [renderer.update]
            fleet.advance()
            consumed(renderer)
            fleet.advance()
            held = _traced()  # 15 s of probes after a scrape, when the next one comes
            tracemalloc.reset_peak()
            consumed(renderer)
            peak = tracemalloc.get_traced_memory()[1] - held
            getattr(held_row, form).append((held - before) / 2**20)
            getattr(peak_row, form).append(peak / 2**20)
            log(
                f"  exposition, {form}: held {(held - before) / 2**20:.1f} MiB, peak {peak / 2**20:.1f}"
            )
            fleet.listeners.clear()
            del renderer
        gzip_row = _gzip_peaks(fleet, log)
    finally:
        tracemalloc.stop()
    return [store_row, held_row, peak_row, gzip_row]


def _gzip_peaks(fleet: Fleet, log: Callable[[str], None]) -> Row:
    """A gzip scrape's transient peak, each form after its own 15 s of probes (so each joins
    and deflates what changed)."""
    row = Row("deflated segments", "a gzip scrape's transient peak above held (tracemalloc)", "MiB")
    metrics = ExporterMetrics()
    ours = MetricsRenderer(metrics, fleet.store.latency)
    plain = PlainRenderer(metrics, fleet.store.latency)
    for state in fleet.store.states():
        ours.update(state)
        plain.update(state)
    scrapes: dict[str, Callable[[], list[bytes]]] = {
        "ours": lambda: ours.scrape().gzipped(),
        "plain": lambda: streamed_gzip(plain.render_parts()),
    }
    for form in ("ours", "plain"):
        scrapes[form]()
        fleet.listeners[:] = [ours.update if form == "ours" else plain.update]
        fleet.advance()
        held = _traced()
        tracemalloc.reset_peak()
        body = scrapes[form]()
        peak = (tracemalloc.get_traced_memory()[1] - held) / 2**20
        del body
        getattr(row, form).append(peak)
        log(f"  gzip scrape, {form}: peak {peak:.1f} MiB")
    fleet.listeners.clear()
    return row


# --- 3: Readings' CPU ------------------------------------------------------------------------


def readings_cpu(keys: int, repeats: int, log: Callable[[str], None]) -> list[Row]:
    tick_row = Row("Readings", "CPU per 15 s of results: made, recorded, rendered, joined", "ms")
    render_row = Row("Readings", f"CPU to render all {keys} keys (render_key)", "ms")
    fleets: dict[str, Fleet] = {}
    for form in ("ours", "plain"):
        with readings_form(form):
            fleet = Fleet(keys)
            renderer = MetricsRenderer(ExporterMetrics(), fleet.store.latency)
            fleet.listeners.append(renderer.update)
            fleet.fill()
            fleets[form] = fleet
    for repeat in range(repeats):
        for form in ("ours", "plain") if repeat % 2 else ("plain", "ours"):
            fleet = fleets[form]
            with readings_form(form):
                getattr(tick_row, form).append(_cpu_ms(fleet.advance))
                getattr(render_row, form).append(_cpu_ms(partial(_render_all, fleet)))
    log(f"  15 s of results: {_spread(tick_row.ours)} / {_spread(tick_row.plain)} ms")
    return [tick_row, render_row]


def _render_all(fleet: Fleet) -> None:
    for state in fleet.store.states():
        render_key(state)


# --- 4: copied YAML strings (resident memory after loading, fresh processes) -----------------

_LOAD_CONFIG = """
import gc, os, sys
import exporter.config as config
from bench.measure import memory_mib
if sys.argv[2] == "plain":
    config._owned = lambda text: text  # the parser's own strings
before = memory_mib(os.getpid(), "VmRSS")
loaded = config.load_config(sys.argv[1])
gc.collect()
after = memory_mib(os.getpid(), "VmRSS")
print(f"{before} {after} {len(loaded.keys)}")
"""


def config_rows(keys: int, rounds: int, workdir: Path, log: Callable[[str], None]) -> list[Row]:
    directory = workdir / "config"
    nowhere = Simulator(Process([], workdir / "unused.log"), "http://127.0.0.1:9")
    fleet = write_fleet(
        directory, keys, nowhere, None, REST_INTERVAL, REALTIME_INTERVAL, ("rest", "realtime")
    )
    after = Row("copied YAML strings", f"VmRSS after loading {keys} keys + gc", "MiB")
    grown = Row("copied YAML strings", "VmRSS growth over before loading", "MiB")
    for round_index in range(rounds):
        for form in ("ours", "plain") if round_index % 2 else ("plain", "ours"):
            run = subprocess.run(
                [sys.executable, "-c", _LOAD_CONFIG, str(fleet.config_file), form],
                capture_output=True,
                text=True,
                timeout=300,
                check=True,
            )
            before_mib, after_mib, loaded = run.stdout.split()
            assert int(loaded) == keys, run.stdout
            getattr(after, form).append(float(after_mib))
            getattr(grown, form).append(float(after_mib) - float(before_mib))
            log(f"  config {form}: {float(after_mib):.1f} MiB after load")
    return [after, grown]


# --- 5: the scrape buffer over a loopback aiohttp server (fresh processes) -------------------

SERVING_FORMS = ("ours", "joined", "each")


def write_parts(path: Path, parts: list[bytes]) -> None:
    """Blocks as lengths (one line) then their bytes, for a server process to read back."""
    with path.open("wb") as handle:
        handle.write(" ".join(str(len(part)) for part in parts).encode() + b"\n")
        for part in parts:
            handle.write(part)


def read_parts(path: Path) -> list[bytes]:
    with path.open("rb") as handle:
        lengths = [int(length) for length in handle.readline().split()]
        return [handle.read(length) for length in lengths]


def serve(form: str, parts_file: Path) -> None:
    """A /metrics of the given blocks, sent by exporter.server's _stream (ours) or a plain form:
    one joined body (joined) or each block written as it is (each). Prints its port when up."""
    parts = read_parts(parts_file)
    limiter = ScrapeLimiter(0)

    async def metrics(request: web.Request) -> web.StreamResponse:
        if form == "joined":
            return web.Response(body=b"".join(parts), headers={"Content-Type": CONTENT_TYPE})
        if form == "each":
            response = web.StreamResponse(headers={"Content-Type": CONTENT_TYPE})
            response.content_length = sum(map(len, parts))
            await response.prepare(request)
            for part in parts:
                await response.write(part)
            await response.write_eof()
            return response
        scrape = limiter.enter()
        assert scrape is not None
        with scrape:
            return await _stream(request, parts, sum(map(len, parts)), scrape)

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        gc.collect()
        _reset_peak_rss()
        print(f"{port} {memory_mib(os.getpid(), 'VmRSS')}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def serving_rows(
    kinds: dict[str, list[bytes]], rounds: int, workdir: Path, log: Callable[[str], None]
) -> list[Row]:
    rows: list[Row] = []
    for kind, parts in kinds.items():
        parts_file = workdir / f"{kind}.parts"
        write_parts(parts_file, parts)
        size = sum(map(len, parts)) / 1e6
        what = f"{kind} exposition, {size:.1f} MB in {len(parts)} blocks"
        latency = {
            form: Row("scrape buffer", f"p50 of {SCRAPES_SERVED} scrapes, {what}", "ms")
            for form in SERVING_FORMS[1:]
        }
        peak = {
            form: Row("scrape buffer", f"peak RSS above served state, {what}", "MiB")
            for form in SERVING_FORMS[1:]
        }
        for round_index in range(rounds):
            forms = SERVING_FORMS if round_index % 2 == 0 else tuple(reversed(SERVING_FORMS))
            measured: dict[str, tuple[float, float]] = {}
            for form in forms:
                measured[form] = _serve_and_scrape(form, parts_file)
                log(
                    f"  {kind} {form}: p50 {measured[form][0]:.1f} ms, peak +{measured[form][1]:.1f} MiB"
                )
            for form in SERVING_FORMS[1:]:
                latency[form].ours.append(measured["ours"][0])
                latency[form].plain.append(measured[form][0])
                peak[form].ours.append(measured["ours"][1])
                peak[form].plain.append(measured[form][1])
        for form in SERVING_FORMS[1:]:
            label = "one joined body" if form == "joined" else "each block written"
            for row in (latency[form], peak[form]):
                row.mechanism = f"scrape buffer vs {label}"
                rows.append(row)
    return rows


def _reset_peak_rss() -> None:
    """VmHWM starts again from the current VmRSS (proc(5), clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")


def _serve_and_scrape(form: str, parts_file: Path) -> tuple[float, float]:
    """(p50 ms, VmHWM - VmRSS when ready, MiB) of one server process over its scrapes."""
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.plain_forms", "--serve", form, str(parts_file)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port, ready_rss = server.stdout.readline().split()
        scraper = Scraper(f"http://127.0.0.1:{port}/metrics")
        scraper.scrape()  # the connection and the first buffers, not counted
        seconds = sorted(scraper.scrape()[0] for _ in range(SCRAPES_SERVED))
        scraper.close()
        peak = memory_mib(server.pid, "VmHWM") - float(ready_rss)
    finally:
        server.terminate()
        server.wait(10)
    return statistics.median(seconds) * 1000, peak


# --- the run ---------------------------------------------------------------------------------


def run(keys: int, repeats: int, rounds: int, log: Callable[[str], None]) -> list[Row]:
    started = time.monotonic()
    log(f"scrape CPU at the realistic cadence, {keys} keys")
    scrapes = scrape_cpu(keys, repeats, log)
    log("Readings' CPU")
    readings = readings_cpu(keys, repeats, log)
    log("Python memory (tracemalloc)")
    memory = memory_rows(keys, log)
    with tempfile.TemporaryDirectory(prefix="plain-forms-") as work:
        workdir = Path(work)
        log("copied YAML strings (fresh processes)")
        config = config_rows(keys, rounds, workdir, log)
        log("scrape buffer over loopback aiohttp (fresh processes)")
        kinds = {"plain": scrapes.plain_parts, "gzipped": scrapes.gzip_parts}
        serving = serving_rows(kinds, rounds, workdir, log)
    store, held, peak, gzip_peak = memory
    rows = [*scrapes.rows, held, gzip_peak, peak, store, *readings, *config, *serving]
    log(f"done in {time.monotonic() - started:.0f} s")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.plain_forms", description=__doc__)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5, help="15 s periods timed (CPU rows)")
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per form")
    parser.add_argument("--serve", nargs=2, metavar=("FORM", "PARTS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve[0], Path(args.serve[1]))
        return 0

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    rows = run(args.keys, args.repeats, args.rounds, log)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
