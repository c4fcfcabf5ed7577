"""The schedule itself on an event loop with a virtual clock (the scheduler reads only loop.time()
and sets only call_at timers): first round from start(), intervals, retries, reloads, to the
microsecond and in milliseconds of real time."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable

import pytest

from exporter.classify import Result
from exporter.config import Config, KeyConfig
from exporter.result import ProbeResult
from exporter.scheduler import ProbeScheduler, first_round_spread, first_run_offset
from tests.support.fake_runner import StoreBackedRunner
from tests.support.key_config import key_config
from tests.support.virtual_clock import run_virtual

INTERVAL = 0.6
SLACK = 1e-6  # the clock is virtual: times are exact but for float rounding


def key(name: str, **changes: object) -> KeyConfig:
    defaults = {"interval": INTERVAL, "retry_interval": 0.15, "probes": ("rest",)}
    return key_config(name, **(defaults | changes))


class FakeRunner(StoreBackedRunner):
    """Records when each key ran; its answer comes from `answer` (healthy by default)."""

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[tuple[str, float]] = []
        self.answer: Callable[[str, int], ProbeResult] = lambda name, count: ProbeResult(
            "rest", Result.OK
        )

    async def run(self, config: KeyConfig, probe: str) -> ProbeResult:
        self.runs.append((config.name, asyncio.get_running_loop().time()))
        count = sum(1 for name, _ in self.runs if name == config.name)
        return self.record(config, self.answer(config.name, count))

    def times(self, name: str) -> list[float]:
        return [when for run_name, when in self.runs if run_name == name]


def scheduler_for(runner: FakeRunner, *keys: KeyConfig) -> ProbeScheduler:
    runner.store.configure({k.name: k.probes for k in keys})
    scheduler = ProbeScheduler(runner)  # type: ignore[arg-type]
    scheduler.apply(Config(keys=keys, source="test"))
    return scheduler


def test_first_round_counts_from_start_and_then_keeps_the_interval() -> None:
    async def scenario() -> None:
        runner = FakeRunner()
        names = [f"k{index}" for index in range(6)]
        scheduler = scheduler_for(runner, *(key(name) for name in names))
        await asyncio.sleep(0.3)  # applied long before it starts: nothing runs yet
        assert runner.runs == []
        zero = asyncio.get_running_loop().time()
        scheduler.start()
        await asyncio.sleep(2.5 * INTERVAL)
        scheduler.shutdown()
        for name in names:
            times = runner.times(name)
            offset = first_run_offset(name, "rest", INTERVAL, first_round_spread(len(names)))
            assert abs(times[0] - (zero + offset)) < SLACK, (name, times[0] - zero, offset)
            gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
            assert gaps and all(abs(gap - INTERVAL) < SLACK for gap in gaps), (name, gaps)

    run_virtual(scenario())


def test_a_first_failure_is_retried_soon_and_a_rate_limit_waits_for_retry_after() -> None:
    async def scenario() -> None:
        runner = FakeRunner()

        def answer(name: str, count: int) -> ProbeResult:
            if name == "broken":
                return ProbeResult("rest", Result.INVALID_API_KEY)
            if name == "limited" and count == 1:
                return ProbeResult("rest", Result.RATE_LIMITED, retry_after=1.0)
            return ProbeResult("rest", Result.OK)

        runner.answer = answer
        scheduler = scheduler_for(runner, key("broken"), key("limited"))
        scheduler.start()
        await asyncio.sleep(2.5)
        scheduler.shutdown()
        broken = runner.times("broken")
        # One quick look after the first failure, then the regular interval from there.
        assert abs(broken[1] - broken[0] - 0.15) < SLACK, broken
        assert all(abs(b - a - INTERVAL) < SLACK for a, b in itertools.pairwise(broken[1:]))
        limited = runner.times("limited")
        # retry-after (1 s) is longer than the interval: the next probe waits for it.
        assert abs(limited[1] - limited[0] - 1.0) < SLACK, limited

    run_virtual(scenario())


def test_a_reload_keeps_unchanged_keys_and_drops_removed_ones() -> None:
    async def scenario() -> None:
        runner = FakeRunner()
        kept, removed = key("kept"), key("removed")
        scheduler = scheduler_for(runner, kept, removed)
        scheduler.start()
        await asyncio.sleep(1.5 * INTERVAL)
        before = len(runner.times("kept"))
        runner.store.configure({"kept": ("rest",), "added": ("rest",)})
        scheduler.apply(Config(keys=(kept, key("added")), source="test"))
        reloaded_at = asyncio.get_running_loop().time()
        await asyncio.sleep(2 * INTERVAL)
        scheduler.shutdown()
        removed_runs = runner.times("removed")
        assert removed_runs and all(when < reloaded_at for when in removed_runs)
        kept_runs = runner.times("kept")
        # Not restarted by the reload: still one run per interval, no extra run at the reload.
        gaps = [later - earlier for earlier, later in itertools.pairwise(kept_runs)]
        assert len(kept_runs) > before and all(abs(gap - INTERVAL) < SLACK for gap in gaps)
        added = runner.times("added")
        offset = first_run_offset("added", "rest", INTERVAL, first_round_spread(1))
        assert added and abs(added[0] - (reloaded_at + offset)) < SLACK

    run_virtual(scenario())


def test_shutdown_cancels_the_probes_in_flight_and_runs_nothing_more() -> None:
    async def scenario() -> None:
        started = asyncio.Event()
        cancelled = asyncio.Event()

        class SlowRunner(FakeRunner):
            async def run(self, config: KeyConfig, probe: str) -> ProbeResult:
                self.runs.append((config.name, asyncio.get_running_loop().time()))
                started.set()
                try:
                    await asyncio.sleep(30)
                except asyncio.CancelledError:
                    cancelled.set()
                    raise
                return ProbeResult("rest", Result.OK)

        runner = SlowRunner()
        scheduler = scheduler_for(runner, key("slow", interval=0.05))
        scheduler.start()
        await asyncio.wait_for(started.wait(), 5)
        scheduler.shutdown()
        await asyncio.wait_for(cancelled.wait(), 5)
        count = len(runner.runs)
        await asyncio.sleep(0.3)
        assert len(runner.runs) == count == 1

    run_virtual(scenario())


def test_a_run_that_raises_keeps_the_key_scheduled_and_logs_no_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        runner = FakeRunner()

        def answer(name: str, count: int) -> ProbeResult:
            if count == 1:
                raise OSError("sk-proj-should-not-be-logged")
            return ProbeResult("rest", Result.OK)

        runner.answer = answer
        scheduler = scheduler_for(runner, key("flaky"))
        scheduler.start()
        await asyncio.sleep(first_run_offset("flaky", "rest", INTERVAL) + 2.2 * INTERVAL)
        scheduler.shutdown()
        times = runner.times("flaky")
        assert len(times) >= 3, times  # the failed run was followed by the regular ones
        assert abs(times[1] - times[0] - INTERVAL) < SLACK, times

    with caplog.at_level(logging.ERROR, logger="exporter.scheduler"):
        run_virtual(scenario())
    assert "probe run failed" in caplog.text
    assert "sk-proj" not in caplog.text
