"""When each key is probed: its own interval, a stable start offset, sooner after a failure,
later after a 429. Nothing else ever triggers an upstream request."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from datetime import UTC, datetime, timedelta

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from exporter.classify import Result
from exporter.config import Config, KeyConfig
from exporter.runner import ProbeRunner
from exporter.state import ProbeResult

log = logging.getLogger("exporter.scheduler")
logging.getLogger("apscheduler").setLevel(logging.WARNING)

MAX_FIRST_RUN_SPREAD = 60.0
MAX_RETRY_AFTER = 900.0  # the first round is spread over the interval, at most this long


def first_run_offset(name: str, probe: str, interval: float) -> float:
    """A stable offset in [0, min(interval, 60s)): restarts keep keys apart, never in lockstep."""
    digest = hashlib.sha256(f"{name}\0{probe}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return fraction * min(interval, MAX_FIRST_RUN_SPREAD)


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


class ProbeScheduler:
    def __init__(self, runner: ProbeRunner) -> None:
        self.runner = runner
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._configs: dict[str, KeyConfig] = {}

    @staticmethod
    def _job_id(name: str, probe: str) -> str:
        return f"{name}\x00{probe}"

    def apply(self, config: Config) -> None:
        """Match the jobs to the configuration; unchanged keys keep their schedule."""
        wanted = {key.name: key for key in config.keys}
        for name, old in list(self._configs.items()):
            if wanted.get(name) != old:
                for probe in old.probes:
                    self._remove(name, probe)
                del self._configs[name]
                for prober in self.runner.probers.values():
                    prober.forget(name)
        now = datetime.now(UTC)
        for name, key in wanted.items():
            if name in self._configs:
                continue
            self._configs[name] = key
            for probe in key.probes:
                interval = key.interval_for(probe)
                offset = first_run_offset(name, probe, interval)
                start = now + timedelta(seconds=offset)
                self._scheduler.add_job(
                    self._run,
                    trigger=IntervalTrigger(seconds=interval, start_date=start, timezone=UTC),
                    args=(name, probe),
                    id=self._job_id(name, probe),
                    max_instances=1,
                    coalesce=True,
                    misfire_grace_time=None,
                    next_run_time=start,
                )

    def _remove(self, name: str, probe: str) -> None:
        with contextlib.suppress(JobLookupError):
            self._scheduler.remove_job(self._job_id(name, probe))

    async def _run(self, name: str, probe: str) -> None:
        config = self._configs.get(name)
        if config is None:
            return
        try:
            result = await self.runner.run(config, probe)
        except asyncio.CancelledError:
            # Shutdown cancels the probes in flight; apscheduler would log that as a job error.
            return
        state = self.runner.store.get(name)
        failures = (
            state.probes[probe].consecutive_failures if state and probe in state.probes else 0
        )
        delay = next_delay(config, result, failures)
        if delay is None or self._configs.get(name) is not config:
            return
        job = self._scheduler.get_job(self._job_id(name, probe))
        if job is None:
            return
        soon = datetime.now(UTC) + timedelta(seconds=delay)
        regular = job.next_run_time
        if result.result is Result.RATE_LIMITED:
            soon = max(soon, regular) if regular else soon
        elif regular is not None and regular <= soon:
            return
        job.modify(next_run_time=soon)

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
