"""When each key is probed: its own interval, a stable start offset, sooner after a failure,
later after a 429. Nothing else ever triggers an upstream request."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import heapq
import itertools
import logging
from typing import Protocol

from exporter.classify import Result
from exporter.config import Config, KeyConfig
from exporter.result import ProbeResult

log = logging.getLogger("exporter.scheduler")

MAX_FIRST_RUN_SPREAD = 60.0
MAX_RETRY_AFTER = 900.0  # the first round is spread over the interval, at most this long
# New probes started per second, at most, when a round of them begins (a start, a reload that
# adds keys): 100 keys with both probes are all answered within about two seconds of the start,
# while each new probe's TLS handshake leaves the loop room enough to time the others' answers
# to the millisecond (the timing row of docs/performance.md).
FIRST_ROUND_RATE = 100.0


def first_round_spread(probes: int) -> float:
    """Seconds over which a round of `probes` new probes is spread: only what the rate needs."""
    return min(probes / FIRST_ROUND_RATE, MAX_FIRST_RUN_SPREAD)


def first_run_offset(
    name: str, probe: str, interval: float, spread: float = MAX_FIRST_RUN_SPREAD
) -> float:
    """A stable offset in [0, min(interval, spread)): restarts keep keys apart, never in lockstep.

    The key keeps its place in the round (the same fraction of it after a restart); `spread`
    comes from first_round_spread, so a small fleet's first results come in seconds.
    """
    digest = hashlib.sha256(f"{name}\0{probe}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return fraction * min(interval, spread, MAX_FIRST_RUN_SPREAD)


def next_delay(config: KeyConfig, result: ProbeResult, consecutive_failures: int) -> float | None:
    """Seconds until the next probe when it must differ from the regular interval."""
    interval = config.interval_for(result.probe)
    if result.result is Result.RATE_LIMITED:
        if result.retry_after is None:
            return None  # no hint: the regular interval, never sooner, spends the limit least
        # Honoured, but bounded: a bogus `retry-after: 31536000` must not stop probing.
        return min(max(result.retry_after, config.retry_interval), max(interval, MAX_RETRY_AFTER))
    if result.healthy or result.result is Result.INSUFFICIENT_QUOTA:
        return None  # retrying never fixes a quota
    if consecutive_failures == 1:
        # One quick second look confirms a real break in seconds and clears a blip as fast;
        # after that, a broken key costs no more than a healthy one.
        return min(config.retry_interval, interval)
    return None


class ProbeRuns(Protocol):
    """All the scheduler needs from whoever runs the probes (exporter.runner.ProbeRunner)."""

    async def run(self, config: KeyConfig, probe: str) -> ProbeResult:
        """Probe `config`'s key once with `probe`, record the result, and return it."""
        ...

    def forget(self, name: str) -> None:
        """The key `name` was removed or changed: drop what the probers keep for it."""
        ...

    def consecutive_failures(self, name: str, probe: str) -> int:
        """Failures in a row of this key and probe, as recorded (0 when unknown)."""
        ...


class ProbeScheduler:
    """Every key's probes on one timer: a heap of due times, one asyncio timer for the earliest.

    One entry per key and probe is a tuple of a few words, and a run costs a heap pop and push,
    so building the schedule of 10,000 keys takes no time from the first round's early probes
    (why not a scheduling library: bench/NOTES.md). A key and probe is never run twice at once.
    """

    def __init__(self, runner: ProbeRuns) -> None:
        self.runner = runner
        self._configs: dict[str, KeyConfig] = {}
        self._due: list[_Entry] = []  # heap; entries of removed or changed keys are skipped
        self._sequence = itertools.count()  # orders entries due at the same time
        self._zero: float | None = None  # loop time the first round's offsets count from
        self._unstarted: list[tuple[float, str, str, KeyConfig]] = []  # offset, name, probe, config
        self._timer: asyncio.TimerHandle | None = None
        self._running: set[asyncio.Task[None]] = set()
        # A key and probe is probed once at a time: a reload that changes a key while its probe
        # runs parks the new schedule here (its due time) until that probe ends.
        self._in_flight: set[tuple[str, str]] = set()
        self._parked: dict[tuple[str, str], tuple[float, KeyConfig]] = {}

    def apply(self, config: Config) -> None:
        """Match the schedule to the configuration; unchanged keys keep their schedule."""
        wanted = {key.name: key for key in config.keys}
        for name, old in list(self._configs.items()):
            if wanted.get(name) != old:
                del self._configs[name]  # its entries are skipped when they come due
                self.runner.forget(name)
        added = [key for name, key in wanted.items() if name not in self._configs]
        spread = first_round_spread(sum(len(key.probes) for key in added))
        for key in added:
            name = key.name
            self._configs[name] = key
            for probe in key.probes:
                offset = first_run_offset(name, probe, key.interval_for(probe), spread)
                if self._zero is None:
                    self._unstarted.append((offset, name, probe, key))
                    continue
                when = asyncio.get_running_loop().time() + offset
                if (name, probe) in self._in_flight:
                    self._parked[(name, probe)] = (when, key)
                else:
                    self._push(when, name, probe, key)
        self._arm()

    def start(self) -> None:
        """Start the first round now: each key at its offset from this moment."""
        self._zero = asyncio.get_running_loop().time()
        for offset, name, probe, key in self._unstarted:
            if self._configs.get(name) is key:
                self._due.append((self._zero + offset, next(self._sequence), name, probe, key))
        self._unstarted.clear()
        heapq.heapify(self._due)
        self._arm()

    def shutdown(self) -> None:
        self._zero = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in self._running:
            task.cancel()
        self._parked.clear()

    def _push(self, when: float, name: str, probe: str, key: KeyConfig) -> None:
        heapq.heappush(self._due, (when, next(self._sequence), name, probe, key))

    def _arm(self) -> None:
        """Keep one timer, set for the earliest entry."""
        if self._zero is None or not self._due:
            return
        when = self._due[0][0]
        if self._timer is not None:
            if self._timer.when() <= when:
                return
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._due and self._due[0][0] <= now:
            when, _, name, probe, key = heapq.heappop(self._due)
            if self._configs.get(name) is not key:
                continue  # removed or changed by a reload since it was scheduled
            if (name, probe) in self._in_flight:
                self._parked[(name, probe)] = (when, key)  # runs when the probe in flight ends
                continue
            self._in_flight.add((name, probe))
            task = loop.create_task(self._run(when, name, probe, key))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            task.add_done_callback(functools.partial(self._landed, (name, probe)))
        self._arm()

    def _landed(self, slot: tuple[str, str], _: asyncio.Task[None]) -> None:
        """A probe ended: the schedule a reload parked meanwhile may start."""
        self._in_flight.discard(slot)
        parked = self._parked.pop(slot, None)
        if parked is None or self._zero is None:
            return
        when, key = parked
        name, probe = slot
        if self._configs.get(name) is not key:
            return  # changed or removed again since it was parked
        self._push(max(when, asyncio.get_running_loop().time()), name, probe, key)
        self._arm()

    async def _run(self, when: float, name: str, probe: str, config: KeyConfig) -> None:
        result: ProbeResult | None = None
        try:
            result = await self.runner.run(config, probe)
        except asyncio.CancelledError:
            return  # shutdown cancels the probes in flight
        except Exception as error:  # the key's next run must still come
            # The type only: a message could quote what was read from the key's source.
            log.error(
                "probe run failed; the key stays scheduled",
                extra={"fields": {"key": name, "probe": probe, "error": type(error).__name__}},
            )
        if self._zero is None or self._configs.get(name) is not config:
            return
        now = asyncio.get_running_loop().time()
        interval = config.interval_for(probe)
        regular = when + interval
        while regular <= now:  # a probe slower than its interval skips the runs it overlapped
            regular += interval
        failures = self.runner.consecutive_failures(name, probe)
        delay = next_delay(config, result, failures) if result is not None else None
        following = regular
        if result is not None and delay is not None:
            soon = now + delay
            if result.result is Result.RATE_LIMITED:
                following = max(soon, regular)
            else:
                following = min(soon, regular)
        self._push(following, name, probe, config)
        self._arm()


_Entry = tuple[float, int, str, str, KeyConfig]  # due (loop time), sequence, name, probe, config
