"""Runs every benchmark phase, prints one table and writes it to docs/performance.md."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import itertools
import math
import os
import platform
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.measure import (
    GZIP,
    Hammer,
    Scraper,
    ScrapeSeries,
    cpu_seconds,
    label,
    loopback_floor,
    median,
    memory_mib,
    parse_samples,
    percentile,
    scrape_series,
)
from bench.processes import (
    BLACKBOX,
    Certificates,
    Exporter,
    Fleet,
    Simulator,
    SimulatorStats,
    simulator_stats,
    start_blackbox,
    start_exporter,
    start_simulator,
    throwaway_certificates,
    wait_ready,
    write_fleet,
)
from exporter.scheduler import first_round_spread, first_run_offset
from exporter.simulator import key_id, make_key

REPO = Path(__file__).resolve().parent.parent
INJECTED_DELAY_MS = 50


@dataclass(frozen=True)
class FleetSize:
    keys: int
    interval: float  # REST
    realtime_interval: float


@dataclass(frozen=True)
class Profile:
    fleets: tuple[FleetSize, ...]
    scrape_count: int
    scrape_seconds: float
    idle_scrapes: int  # scrapes after a Prometheus-like pause, each way, at the largest fleet
    idle_pause: float
    hammer_clients: int
    hammer_seconds: float
    cpu_keys: int
    cpu_interval: float
    cpu_window_intervals: int  # 10 so the default mode's one-in-ten fresh connection is counted
    cpu_rounds: int
    timing_keys: int
    timing_interval: float
    timing_floor_probes: int  # the lean client's requests, one after another


FULL = Profile(
    fleets=(FleetSize(100, 10, 10), FleetSize(1000, 10, 10), FleetSize(10_000, 60, 300)),
    scrape_count=200,
    scrape_seconds=15,
    idle_scrapes=3,
    idle_pause=15,
    hammer_clients=100,
    hammer_seconds=30,
    cpu_keys=50,
    cpu_interval=2,
    cpu_window_intervals=10,
    cpu_rounds=5,
    timing_keys=1000,
    timing_interval=30,
    timing_floor_probes=200,
)
SMOKE = Profile(
    fleets=(FleetSize(20, 2, 2),),
    scrape_count=20,
    scrape_seconds=2,
    idle_scrapes=1,
    idle_pause=1,
    hammer_clients=4,
    hammer_seconds=2,
    cpu_keys=20,
    cpu_interval=1,
    cpu_window_intervals=2,
    cpu_rounds=1,
    timing_keys=20,
    timing_interval=2,
    timing_floor_probes=20,
)


@dataclass
class FleetResult:
    size: FleetSize
    healthy_after: float
    ready_after: float
    scrape_p50_ms: float
    scrape_p99_ms: float
    scrape_count: int
    body_bytes: int
    peak_rss_mib: float
    floor_p50_ms: float = float("nan")
    gzip: ScrapeSeries | None = None  # the same scrapes, asking for gzip as Prometheus does
    idle: tuple[float, list[float], list[float]] | None = None  # pause s; ms: plain, gzip
    late_p50: float = float("nan")
    late_p99: float = float("nan")
    late_max: float = float("nan")
    first_round_peak_per_s: int = 0
    first_round_mean_per_s: float = 0.0
    hammer_scrapes: int = 0
    hammer_errors: int = 0
    hammer_late_p99: float = float("nan")
    hammer_peak_rss_mib: float = float("nan")
    requests_per_interval: tuple[int, int] | None = None
    shortest_gap: float = float("nan")


@dataclass
class CpuResult:
    rounds: dict[str, list[float]] = field(default_factory=dict)  # mode -> CPU s per 1000

    def add(self, mode: str, value: float) -> None:
        self.rounds.setdefault(mode, []).append(value)

    def median(self, mode: str) -> float:
        return median(self.rounds.get(mode, []))

    def ratios(self, mode: str) -> list[float]:
        """Ours over blackbox's, round by round: each pair measured minutes apart at most,
        so a slower spell of the VM weighs on both sides of the same ratio."""
        return [
            ours / theirs
            for ours, theirs in zip(self.rounds.get(mode, []), self.rounds["blackbox"], strict=True)
        ]


@dataclass(frozen=True)
class Timed:
    """One probe's duration beside the simulator's own time for the same request."""

    measured: float  # seconds, as the client reports it
    answered: float  # the simulator's: request arrived -> answer written (NaN: not found)


@dataclass
class TimingResult:
    ours_reused: list[Timed] = field(default_factory=list)
    ours_fresh: list[Timed] = field(default_factory=list)  # as reported
    ours_fresh_handshake: list[float] = field(default_factory=list)  # its connect + tls phases
    ours_first_byte: list[Timed] = field(default_factory=list)  # the reused probe's phase
    blackbox: list[Timed] = field(default_factory=list)
    blackbox_after_handshake: list[Timed] = field(default_factory=list)
    lean: list[Timed] = field(default_factory=list)  # bench's socket client, reused connection
    # the simulator's own lateness: (woken, written) - (arrival + injected), by whether the
    # answer was its key's first (on a new TLS connection, beside other handshakes) or not
    simulator_woke: dict[bool, list[float]] = field(default_factory=dict)
    simulator_written: dict[bool, list[float]] = field(default_factory=dict)


@dataclass
class Context:
    workdir: Path
    certificates: Certificates
    blackbox_binary: str
    log: Callable[[str], None]
    counter: Iterator[int] = field(default_factory=lambda: iter(range(1_000_000)))

    def directory(self, name: str) -> Path:
        return self.workdir / f"{name}-{next(self.counter)}"


@contextmanager
def running(*processes: object) -> Iterator[None]:
    try:
        yield
    finally:
        for process in processes:
            process.process.stop()  # type: ignore[attr-defined]


# --- 1, 4, 5, 6: fleets of N keys ------------------------------------------------------------


def run_fleet(context: Context, size: FleetSize, profile: Profile, hammer: bool) -> FleetResult:
    context.log(
        f"fleet of {size.keys} keys (REST every {size.interval:g}s, Realtime every "
        f"{size.realtime_interval:g}s, plain HTTP)"
    )
    simulator = start_simulator(context.workdir, None)
    with running(simulator):
        fleet = write_fleet(
            context.directory(f"fleet{size.keys}"),
            size.keys,
            simulator,
            None,
            size.interval,
            size.realtime_interval,
            ("rest", "realtime"),
        )
        exporter = start_exporter(context.workdir, fleet)
        with running(exporter):
            spread = min(size.interval, first_round_spread(2 * size.keys))
            wait_ready(exporter, timeout=spread + 300)
            ready_after = time.monotonic() - exporter.launched
            series = scrape_series(
                exporter.url + "/metrics", profile.scrape_count, profile.scrape_seconds, 0.05
            )
            result = FleetResult(
                size,
                exporter.healthy_after,
                ready_after,
                series.p50_ms,
                series.p99_ms,
                len(series.seconds),
                series.size,
                memory_mib(exporter.pid),
            )
            result.gzip = scrape_series(
                exporter.url + "/metrics", profile.scrape_count, profile.scrape_seconds, 0.05, GZIP
            )
            result.floor_p50_ms = loopback_floor(series.size, 10).p50_ms
            if size is profile.fleets[-1]:
                result.idle = _idle_scrapes(exporter.url + "/metrics", profile)
            context.log(
                f"  healthy {exporter.healthy_after:.2f}s, ready {ready_after:.1f}s, "
                f"scrape p50 {series.p50_ms:.1f} ms p99 {series.p99_ms:.1f} ms, "
                f"{series.size / 1e6:.2f} MB, peak RSS {result.peak_rss_mib:.0f} MiB"
            )
            window: tuple[float, float] | None = None
            if hammer:
                window = _hammer(context, exporter, size, profile, result)
            stats = simulator_stats(simulator, None)
        _punctuality(fleet, size, stats, exporter, result, window)
    return result


def _idle_scrapes(url: str, profile: Profile) -> tuple[float, list[float], list[float]]:
    """Scrapes each `idle_pause` seconds, as Prometheus makes them: every segment that a probe
    changed since the previous scrape is joined (and deflated, with gzip) by this one."""
    plain = scrape_series(url, profile.idle_scrapes, math.inf, profile.idle_pause)
    packed = scrape_series(url, profile.idle_scrapes, math.inf, profile.idle_pause, GZIP)
    return (
        profile.idle_pause,
        [s * 1000 for s in plain.seconds],
        [s * 1000 for s in packed.seconds],
    )


def _hammer(
    context: Context, exporter: Exporter, size: FleetSize, profile: Profile, result: FleetResult
) -> tuple[float, float]:
    context.log(f"  {profile.hammer_clients} scrapers for {profile.hammer_seconds:g}s")
    started = time.monotonic()
    hammer = Hammer(exporter.url + "/metrics", profile.hammer_clients, profile.hammer_seconds)
    hammer.run()
    result.hammer_scrapes, result.hammer_errors = hammer.scrapes, hammer.errors
    result.hammer_peak_rss_mib = memory_mib(exporter.pid)
    # Count each key's requests over one whole interval that contains the hammering.
    end = started + max(size.interval, profile.hammer_seconds)
    time.sleep(max(0.0, end + 1.0 - time.monotonic()))
    context.log(
        f"  {hammer.scrapes} scrapes ({hammer.errors} failed), "
        f"peak RSS {result.hammer_peak_rss_mib:.0f} MiB"
    )
    return started, end


def _punctuality(
    fleet: Fleet,
    size: FleetSize,
    stats: SimulatorStats,
    exporter: Exporter,
    result: FleetResult,
    window: tuple[float, float] | None,
) -> None:
    """Lateness of every request against its schedule: first_run_offset + k * interval.

    The exporter's own zero (the moment it added its jobs) is not visible from outside, so it is
    taken as the earliest (arrival - offset): lateness is relative to the most punctual probe.
    """
    names = fleet.key_ids()
    round_spread = first_round_spread(2 * len(names))  # every key has both probes
    expected: list[tuple[float, float, list[float]]] = []  # offset, interval, arrival times
    for identifier, entry in stats.items():
        name = names.get(identifier)
        if name is None:
            continue
        for probe, times_field, interval in (
            ("rest", "rest_request_times", size.interval),
            ("realtime", "realtime_session_times", size.realtime_interval),
        ):
            times = entry[times_field]
            if times:
                expected.append(
                    (first_run_offset(name, probe, interval, round_spread), interval, times)
                )
    if not expected:
        return
    zero = min(times[0] - offset for offset, _, times in expected)
    lateness: list[float] = []
    in_window: list[float] = []
    for offset, interval, times in expected:
        for index, arrival in enumerate(times):
            late = arrival - (zero + offset + index * interval)
            lateness.append(late)
            if window and window[0] <= arrival < window[1]:
                in_window.append(late)
    result.late_p50 = percentile(lateness, 0.5)
    result.late_p99 = percentile(lateness, 0.99)
    result.late_max = max(lateness)
    result.hammer_late_p99 = percentile(in_window, 0.99)
    firsts = [
        entry["rest_request_times"][0] for entry in stats.values() if entry["rest_request_times"]
    ]
    per_second = Counter(int(arrival - zero) for arrival in firsts)
    result.first_round_peak_per_s = max(per_second.values())
    result.first_round_mean_per_s = len(firsts) / min(size.interval, round_spread)
    gaps = [
        later - earlier
        for entry in stats.values()
        for earlier, later in itertools.pairwise(entry["rest_request_times"])
    ]
    result.shortest_gap = min(gaps) if gaps else float("nan")
    if window:
        # Each request counted at the time it was scheduled for (the nearest of its key's
        # schedule), so a probe a fraction of a second late at the window's edge is not counted
        # in the window after its own; a request off the schedule still adds to its slot.
        counts = []
        for identifier, entry in stats.items():
            name = names.get(identifier)
            if name is None:
                continue
            base = zero + first_run_offset(name, "rest", size.interval, round_spread)
            slots = [
                base + round((arrival - base) / size.interval) * size.interval
                for arrival in entry["rest_request_times"]
            ]
            counts.append(sum(1 for slot in slots if window[0] <= slot < window[0] + size.interval))
        missing = len(names) - len(counts)
        result.requests_per_interval = (0 if missing else min(counts), max(counts))


# --- 2: CPU per probe, ours and blackbox's alternately ---------------------------------------


def cpu_rounds(context: Context, profile: Profile, simulator: Simulator) -> CpuResult:
    result = CpuResult()
    blackbox_key = make_key("ok", seed="blackbox")
    blackbox = start_blackbox(
        context.workdir, context.blackbox_binary, context.certificates, {"ok": blackbox_key}
    )
    with running(blackbox):
        for round_index in range(profile.cpu_rounds):
            for mode in ("rest_reuse", "blackbox", "rest_fresh", "realtime"):
                if mode == "blackbox":
                    value = _cpu_blackbox(blackbox.url, blackbox.pid, simulator, profile)
                else:
                    value = _cpu_ours(context, profile, simulator, mode)
                result.add(mode, value)
                context.log(f"  round {round_index + 1} {mode}: {value:.3f} CPU s per 1000 probes")
    return result


def _cpu_ours(context: Context, profile: Profile, simulator: Simulator, mode: str) -> float:
    probe = "realtime" if mode == "realtime" else "rest"
    fleet = write_fleet(
        context.directory(f"cpu-{mode}"),
        profile.cpu_keys,
        simulator,
        context.certificates,
        profile.cpu_interval,
        profile.cpu_interval,
        (probe,),
    )
    exporter = start_exporter(context.workdir, fleet, fresh_every_probe=mode == "rest_fresh")
    with running(exporter):
        wait_ready(exporter, timeout=profile.cpu_interval + 60)
        time.sleep(profile.cpu_interval / 2)
        ids = fleet.key_ids()
        counted = "realtime_sessions" if probe == "realtime" else "rest_requests"

        def probes_so_far() -> int:
            stats = simulator_stats(simulator, context.certificates)
            return sum(entry[counted] for identifier, entry in stats.items() if identifier in ids)

        before_probes, before_cpu = probes_so_far(), cpu_seconds(exporter.pid)
        time.sleep(profile.cpu_interval * profile.cpu_window_intervals)
        after_cpu, after_probes = cpu_seconds(exporter.pid), probes_so_far()
    return (after_cpu - before_cpu) / max(1, after_probes - before_probes) * 1000


@dataclass(frozen=True)
class BlackboxProbe:
    module: str
    success: bool  # probe_success
    duration: float  # probe_duration_seconds
    phases: dict[str, float]  # probe_http_duration_seconds by phase (connect, tls, ...)


async def drive_blackbox(
    url: str, modules: list[str], target: str, rate: float, count: int
) -> list[BlackboxProbe]:
    """`count` probes at `rate` per second, through `modules` in turn."""
    results: list[BlackboxProbe] = []
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:

        async def one(module: str) -> None:
            response = await client.get(f"{url}/probe", params={"target": target, "module": module})
            samples = parse_samples(response.text)
            phases = {
                label(labels, "phase"): seconds
                for labels, seconds in samples.get("probe_http_duration_seconds", {}).items()
            }
            results.append(
                BlackboxProbe(
                    module,
                    samples.get("probe_success", {}).get("", 0.0) == 1.0,
                    samples.get("probe_duration_seconds", {}).get("", 0.0),
                    phases,
                )
            )

        started = time.monotonic()
        tasks = []
        for index in range(count):
            await asyncio.sleep(max(0.0, started + index / rate - time.monotonic()))
            tasks.append(asyncio.create_task(one(modules[index % len(modules)])))
        await asyncio.gather(*tasks)
    return results


def _cpu_blackbox(url: str, pid: int, simulator: Simulator, profile: Profile) -> float:
    rate = profile.cpu_keys / profile.cpu_interval
    count = int(rate * profile.cpu_interval * profile.cpu_window_intervals)
    before = cpu_seconds(pid)
    results = asyncio.run(drive_blackbox(url, ["ok"], f"{simulator.base_url}/models", rate, count))
    after = cpu_seconds(pid)
    succeeded = sum(1 for probe in results if probe.success)
    if succeeded < count:
        raise RuntimeError(f"blackbox: {count - succeeded} of {count} probes failed")
    return (after - before) / count * 1000


# --- 3: timing accuracy ----------------------------------------------------------------------


def timing(context: Context, profile: Profile, simulator: Simulator) -> TimingResult:
    context.log(f"timing: {profile.timing_keys} keys answered after {INJECTED_DELAY_MS} ms, TLS")
    result = TimingResult()
    fleet = write_fleet(
        context.directory("timing"),
        profile.timing_keys,
        simulator,
        context.certificates,
        profile.timing_interval,
        profile.timing_interval,
        ("rest",),
        "slow",
        INJECTED_DELAY_MS,
    )
    exporter = start_exporter(context.workdir, fleet)
    rounds: list[dict[str, dict[str, float]]] = []
    with running(exporter):
        wait_ready(exporter, timeout=profile.timing_interval + 60)
        time.sleep(0.5)
        scraper = Scraper(exporter.url + "/metrics")
        rounds.append(parse_samples(scraper.scrape(keep=True)[2].decode()))
        time.sleep(profile.timing_interval)
        rounds.append(parse_samples(scraper.scrape(keep=True)[2].decode()))
        scraper.close()
    blackbox_keys = {
        f"slow-{index:04d}": make_key("slow", INJECTED_DELAY_MS, seed=f"blackbox-{index}")
        for index in range(profile.timing_keys)
    }
    blackbox = start_blackbox(
        context.workdir, context.blackbox_binary, context.certificates, blackbox_keys
    )
    with running(blackbox):
        rate = profile.timing_keys / profile.timing_interval
        probes = asyncio.run(
            drive_blackbox(
                blackbox.url,
                list(blackbox_keys),
                f"{simulator.base_url}/models",
                rate,
                profile.timing_keys,
            )
        )
    lean_key = make_key("slow", INJECTED_DELAY_MS, seed="lean-client")
    lean = _lean_client(simulator, context.certificates, lean_key, profile.timing_floor_probes)
    stats = simulator_stats(simulator, context.certificates)
    lean_entry = stats.get(key_id(lean_key))
    result.lean = [
        Timed(seconds, _answered(lean_entry, index)) for index, seconds in enumerate(lean)
    ]
    ids = {name: identifier for identifier, name in fleet.key_ids().items()}
    _ours_timing(result, rounds, stats, ids)
    _blackbox_timing(result, probes, stats, blackbox_keys)
    injected = INJECTED_DELAY_MS / 1000
    for entry in stats.values():
        for index, (arrived, woke, written) in enumerate(entry["rest_answer_times"]):
            result.simulator_woke.setdefault(index == 0, []).append(woke - arrived - injected)
            result.simulator_written.setdefault(index == 0, []).append(written - arrived - injected)
    return result


def _lean_client(
    simulator: Simulator, certificates: Certificates, key: str, count: int
) -> list[float]:
    """The same GET from the leanest client Python has, one after another on one connection:
    what any Python prober on this machine pays, the floor under ours."""
    context = ssl.create_default_context(cafile=str(certificates.ca_file))
    client = Scraper(
        f"{simulator.base_url}/models", headers={"Authorization": f"Bearer {key}"}, context=context
    )
    seconds = []
    try:
        for _ in range(count):
            seconds.append(client.scrape()[0])
            time.sleep(0.01)
    finally:
        client.close()
    return seconds


def _answered(entry: dict[str, Any] | None, index: int) -> float:
    """The simulator's arrival-to-written time for a key's request number `index` (0-based)."""
    if entry is None or index >= len(entry["rest_request_times"]):
        return float("nan")
    arrival = entry["rest_request_times"][index]
    for arrived, _, written in entry["rest_answer_times"]:
        if arrived == arrival:
            return float(written - arrived)
    return float("nan")


def _ours_timing(
    result: TimingResult,
    rounds: list[dict[str, dict[str, float]]],
    stats: SimulatorStats,
    ids: dict[str, str],
) -> None:
    """The first probe of each key opened its connection (TCP and TLS), the second reused it."""
    for wanted, samples in enumerate(rounds, start=1):
        requests = samples["openai_probe_requests_total"]
        phases: dict[str, dict[str, float]] = {}
        for labels, seconds in samples["openai_probe_phase_duration_seconds"].items():
            phases.setdefault(label(labels, "key"), {})[label(labels, "phase")] = seconds
        for labels, seconds in samples["openai_probe_duration_seconds"].items():
            if requests.get(labels) != wanted:
                continue  # not exactly this key's first (second) probe
            name = label(labels, "key")
            answered = _answered(stats.get(ids.get(name, "")), wanted - 1)
            if wanted == 1:
                handshake = phases.get(name, {})
                if "connect" in handshake and "tls" in handshake:
                    result.ours_fresh.append(Timed(seconds, answered))
                    result.ours_fresh_handshake.append(handshake["connect"] + handshake["tls"])
            else:
                result.ours_reused.append(Timed(seconds, answered))
                if "first_byte" in phases.get(name, {}):
                    result.ours_first_byte.append(Timed(phases[name]["first_byte"], answered))


def _blackbox_timing(
    result: TimingResult,
    probes: list[BlackboxProbe],
    stats: SimulatorStats,
    keys: dict[str, str],
) -> None:
    """One key per blackbox probe, so each probe finds its own answer in the simulator's stats."""
    for probe in probes:
        if not probe.success:
            continue
        answered = _answered(stats.get(key_id(keys[probe.module])), 0)
        result.blackbox.append(Timed(probe.duration, answered))
        if "connect" in probe.phases and "tls" in probe.phases:
            after = probe.duration - probe.phases["connect"] - probe.phases["tls"]
            result.blackbox_after_handshake.append(Timed(after, answered))


# --- the report ------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    model = "unknown"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    blackbox = subprocess.run(
        [BLACKBOX_PATH[0], "--version"], capture_output=True, text=True, check=False
    )
    version = (
        (blackbox.stdout or blackbox.stderr).splitlines()[0] if blackbox.returncode == 0 else "?"
    )
    return {
        "CPU": model,
        "Cores": str(os.cpu_count()),
        "Memory": f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB",
        "Python": platform.python_version(),
        "Kernel": platform.release(),
        "blackbox_exporter": version,
        "Date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


BLACKBOX_PATH = [BLACKBOX]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def table(
    fleets: list[FleetResult], cpu: CpuResult, timing_result: TimingResult
) -> list[tuple[str, str, str, str]]:
    scrapes, fleet_rest = _fleet_rows(fleets)
    return scrapes + _cpu_rows(cpu) + _timing_rows(timing_result) + fleet_rest


def _cpu_rows(cpu: CpuResult) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    if not cpu.rounds:
        return rows
    reuse, fresh = cpu.median("rest_reuse"), cpu.median("rest_fresh")
    blackbox, realtime = cpu.median("blackbox"), cpu.median("realtime")
    rounds = len(cpu.rounds.get("blackbox", []))
    fresh_ratio, reuse_ratio = median(cpu.ratios("rest_fresh")), median(cpu.ratios("rest_reuse"))

    def each(mode: str) -> str:
        return ", ".join(f"{ratio:.2f}" for ratio in cpu.ratios(mode))

    rows += [
        (
            f"2. CPU s / 1000 REST probes, TLS, blackbox (median of {rounds})",
            "reference",
            f"{blackbox:.3f}",
            "",
        ),
        (
            "2. CPU s / 1000 REST probes, TLS, ours, fresh connection each",
            "-",  # reported: what one in FRESH_CONNECTION_EVERY probes costs
            f"{fresh:.3f}; {fresh_ratio:.2f}x, the median of each round's ratio "
            f"({each('rest_fresh')})",
            "",
        ),
        (
            "2. CPU s / 1000 REST probes, TLS, ours, default reuse",
            "<= 0.6x blackbox",
            f"{reuse:.3f}; {reuse_ratio:.2f}x, the median of each round's ratio "
            f"({each('rest_reuse')})",
            _verdict(reuse_ratio <= 0.6),
        ),
        ("2. CPU s / 1000 Realtime probes, TLS, ours", "-", f"{realtime:.3f}", ""),
    ]
    return rows


def _handshake_included(timing_result: TimingResult) -> bool:
    """Whether our first probe's duration contains its connect and tls phases.

    The simulator's answer time (arrival to written) lies inside any client's time for that
    request, so a duration that comes out shorter than it once the handshake is taken away
    never held the handshake.
    """
    slack = [
        probe.measured - handshake - probe.answered
        for probe, handshake in zip(
            timing_result.ours_fresh, timing_result.ours_fresh_handshake, strict=True
        )
        if probe.answered >= 0
    ]
    return not slack or median(slack) >= 0


def _timing_rows(timing_result: TimingResult) -> list[tuple[str, str, str, str]]:
    """The issue's figure (measured - injected) with its verdict, then what it is made of."""
    rows: list[tuple[str, str, str, str]] = []
    if not timing_result.blackbox and not timing_result.ours_reused:
        return rows
    fresh, handshakes = timing_result.ours_fresh, timing_result.ours_fresh_handshake
    # The delay is injected into the answer; a fresh connection's connect and TLS are real time
    # before the request, measured as phases of their own. The verdict is on the request each
    # probe timed; the whole first probe, handshake included, is shown beside it.
    if _handshake_included(timing_result):
        request_name = "ours, first probe's request (its duration minus its connect and tls phases)"
        request = [
            Timed(p.measured - h, p.answered) for p, h in zip(fresh, handshakes, strict=True)
        ]
        whole_name, whole = "ours, first probe whole (fresh connection, connect and tls in)", fresh
    else:
        request_name = (
            "ours, first probe (fresh connection; its duration leaves out connect and tls)"
        )
        request = fresh
        whole_name = "ours, first probe plus its connect and tls phases (as blackbox times a probe)"
        whole = [Timed(p.measured + h, p.answered) for p, h in zip(fresh, handshakes, strict=True)]
    clients = (
        ("ours, reused connection (second probe)", timing_result.ours_reused, True),
        (request_name, request, True),
        (whole_name, whole, False),
        ("ours, first_byte phase of the second probe", timing_result.ours_first_byte, False),
        (
            "blackbox probe_duration_seconds (fresh connection each)",
            timing_result.blackbox,
            False,
        ),
        (
            "blackbox minus its connect and tls phases",
            timing_result.blackbox_after_handshake,
            False,
        ),
        ("bench's lean socket client, reused connection (floor)", timing_result.lean, False),
    )
    injected = INJECTED_DELAY_MS / 1000
    for name, timed, target in clients:
        values = [probe.measured - injected for probe in timed]
        p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
        rows.append(
            (
                f"3. measured - injected {INJECTED_DELAY_MS} ms, {name} (n={len(values)})",
                "p50 <= 1 ms, p99 <= 5 ms" if target else "-",
                f"p50 {_ms(p50)}, p99 {_ms(p99)}",
                _verdict(p50 <= 0.001 and p99 <= 0.005) if target else "",
            )
        )
    for first, which in ((False, "later answers"), (True, "first answer of each key")):
        woke = timing_result.simulator_woke.get(first, [])
        written = timing_result.simulator_written.get(first, [])
        rows.append(
            (
                f"3. the simulator's own lateness: answer written - (arrival + "
                f"{INJECTED_DELAY_MS} ms), {which} (n={len(written)})",
                "-",
                f"p50 {_ms(percentile(written, 0.5))}, p99 {_ms(percentile(written, 0.99))} "
                f"(of which waking: p50 {_ms(percentile(woke, 0.5))}, "
                f"p99 {_ms(percentile(woke, 0.99))})",
                "",
            )
        )
    for name, timed, _ in clients:
        values = [probe.measured - probe.answered for probe in timed if probe.answered >= 0]
        rows.append(
            (
                f"3. the client's own error: measured - the simulator's answer time, {name} "
                f"(n={len(values)})",
                "-",
                f"p50 {_ms(percentile(values, 0.5))}, p99 {_ms(percentile(values, 0.99))}",
                "",
            )
        )
    return rows


def _fleet_rows(
    fleets: list[FleetResult],
) -> tuple[list[tuple[str, str, str, str]], list[tuple[str, str, str, str]]]:
    """Rows of phase 1, then rows of phases 4 to 6."""
    rows: list[tuple[str, str, str, str]] = []
    if not fleets:
        return rows, []
    largest = fleets[-1]
    for fleet in fleets:
        n = f"{fleet.size.keys:,} keys"
        rows.append(
            (
                f"1. /metrics latency, {n} ({fleet.scrape_count} scrapes)",
                "-",
                f"p50 {fleet.scrape_p50_ms:.1f} ms, p99 {fleet.scrape_p99_ms:.1f} ms, "
                f"{fleet.body_bytes / 1e6:.2f} MB (loopback floor for as many bytes: p50 "
                f"{fleet.floor_p50_ms:.1f} ms)",
                "",
            )
        )
        if fleet.gzip is not None:
            # The bound is on the scrape Prometheus makes: it always asks for gzip, and the
            # exposition is held deflated (a plain scrape inflates it, see bench/NOTES.md).
            target = "p50 <= 20 ms, p99 <= 50 ms" if fleet is largest else "-"
            ok = fleet.gzip.p50_ms <= 20 and fleet.gzip.p99_ms <= 50
            rows.append(
                (
                    f"1. /metrics latency gzipped (Accept-Encoding: gzip, as Prometheus asks), {n}",
                    target,
                    f"p50 {fleet.gzip.p50_ms:.1f} ms, p99 {fleet.gzip.p99_ms:.1f} ms, "
                    f"{fleet.gzip.size / 1e6:.2f} MB sent",
                    _verdict(ok) if fleet is largest else "",
                )
            )
        if fleet.idle is not None:
            pause, plain, packed = fleet.idle
            rows.append(
                (
                    f"1. /metrics latency after {pause:g} s without a scrape, {n} "
                    f"(median of {len(plain)})",
                    "-",
                    f"plain {median(plain):.1f} ms (max {max(plain):.1f}), gzipped "
                    f"{median(packed):.1f} ms (max {max(packed):.1f})",
                    "",
                )
            )
    first = rows
    rows = []
    rows += [
        (
            f"4. probe start lateness, {largest.size.keys:,} keys / {largest.size.interval:g}s "
            "(whole run)",
            "p99 <= 1 s",
            f"p50 {largest.late_p50:.3f} s, p99 {largest.late_p99:.3f} s, max {largest.late_max:.3f} s",
            _verdict(largest.late_p99 <= 1.0),
        ),
        (
            "4. lateness while scrapers hammer",
            "p99 <= 1 s",
            f"p99 {largest.hammer_late_p99:.3f} s",
            _verdict(largest.hammer_late_p99 <= 1.0),
        ),
    ]
    if largest.requests_per_interval is not None:
        low, high = largest.requests_per_interval
        rows.append(
            (
                f"4. upstream requests per key in the interval of the hammering, by the time "
                f"each was scheduled for "
                f"({largest.hammer_scrapes} scrapes, {largest.hammer_errors} failed)",
                "exactly 1",
                f"min {low}, max {high}; shortest gap {largest.shortest_gap:.2f} s",
                _verdict(low == high == 1),
            )
        )
    for fleet in fleets:
        target = "<= 100 MB" if fleet is largest else "-"
        rows.append(
            (
                f"5. peak RSS, {fleet.size.keys:,} keys (sequential scrapes)",
                target,
                f"{fleet.peak_rss_mib:.0f} MiB",
                _verdict(fleet.peak_rss_mib * 1.048576 <= 100) if fleet is largest else "",
            )
        )
    if largest.requests_per_interval is not None:
        rows.append(
            (
                f"5. peak RSS, {largest.size.keys:,} keys, after the hammering",
                "-",
                f"{largest.hammer_peak_rss_mib:.0f} MiB",
                "",
            )
        )
    for fleet in fleets:
        target = "<= 5 s" if fleet is largest else "-"
        rows.append(
            (
                f"6. launch to /-/healthy, {fleet.size.keys:,} keys",
                target,
                f"{fleet.healthy_after:.2f} s",
                _verdict(fleet.healthy_after <= 5) if fleet is largest else "",
            )
        )
    rows.append(
        (
            f"6. first round: busiest second, {largest.size.keys:,} keys",
            "spread, not at once",
            f"{largest.first_round_peak_per_s} probes (mean {largest.first_round_mean_per_s:.0f}/s)",
            _verdict(largest.first_round_peak_per_s <= 3 * largest.first_round_mean_per_s + 5),
        )
    )
    return first, rows


def render_table(rows: list[tuple[str, str, str, str]]) -> str:
    header = ("Measure", "Target", "Result", "")
    lines = ["| " + " | ".join(header) + " |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def write_report(path: Path, rows: list[tuple[str, str, str, str]], profile_name: str) -> None:
    description = "\n".join(f"- {name}: {value}" for name, value in machine().items())
    notes_file = REPO / "bench" / "NOTES.md"
    notes = notes_file.read_text() if notes_file.exists() else ""
    path.write_text(
        "# Performance\n\n"
        "Measured by `.venv/bin/python -m bench` (see bench/README.md); this file is its output"
        f" ({profile_name} profile).\n\n"
        f"## Machine\n\n{description}\n\n## Results\n\n{render_table(rows)}\n\n{notes}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny and fast: 20 keys, seconds")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "performance.md")
    parser.add_argument("--blackbox", default=shutil.which(BLACKBOX) or f"/usr/bin/{BLACKBOX}")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument(
        "--only",
        choices=("cpu", "timing", "fleets"),
        action="append",
        help="run only these phases (repeatable); the report then holds only their rows",
    )
    parser.add_argument(
        "--keys",
        type=int,
        action="append",
        help="run only the fleets of these sizes (repeatable), e.g. --keys 10000",
    )
    args = parser.parse_args(argv)
    if not os.path.exists(args.blackbox):
        print(
            f"{args.blackbox} not found (install prometheus-blackbox-exporter or pass "
            "--blackbox PATH)",
            file=sys.stderr,
        )
        return 2
    BLACKBOX_PATH[0] = args.blackbox
    profile = SMOKE if args.smoke else FULL
    if args.keys:
        chosen = tuple(size for size in profile.fleets if size.keys in args.keys)
        if not chosen:
            print(
                f"--keys: the profile's fleets are {[s.keys for s in profile.fleets]}",
                file=sys.stderr,
            )
            return 2
        profile = dataclasses.replace(profile, fleets=chosen)
    phases = set(args.only or ("cpu", "timing", "fleets"))
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", flush=True)

    log(f"work directory {workdir}")
    context = Context(workdir, throwaway_certificates(workdir), args.blackbox, log)
    failures: list[str] = []
    try:
        cpu, timing_result = CpuResult(), TimingResult()
        if phases & {"cpu", "timing"}:
            tls = start_simulator(workdir, context.certificates)
            with running(tls):
                if "cpu" in phases:
                    log("CPU per probe, TLS: ours and blackbox's alternately")
                    cpu = cpu_rounds(context, profile, tls)
                if "timing" in phases:
                    timing_result = timing(context, profile, tls)
        fleets: list[FleetResult] = []
        for size in profile.fleets if "fleets" in phases else ():
            try:
                fleets.append(run_fleet(context, size, profile, size is profile.fleets[-1]))
            except (AssertionError, OSError, RuntimeError) as error:  # report, keep the rest
                log(f"  fleet of {size.keys} keys failed: {error}")
                failures.append(f"fleet of {size.keys:,} keys failed: {error}")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    rows = table(fleets, cpu, timing_result)
    rows += [
        ("(phase failed)", "-", failure.replace("|", "/")[:300], "MISSED") for failure in failures
    ]
    print(render_table(rows))
    write_report(args.output, rows, "smoke" if args.smoke else "full")
    log(f"wrote {args.output}")
    return 0
