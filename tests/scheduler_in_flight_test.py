"""One probe of a key at a time, whatever reloads do meanwhile (the scheduler on a virtual clock)."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter

import pytest

from exporter.classify import Result
from exporter.config import Config, KeyConfig
from exporter.result import ProbeResult
from exporter.scheduler import ProbeScheduler, first_round_spread, first_run_offset
from tests.support.fake_runner import StoreBackedRunner
from tests.support.key_config import key_config
from tests.support.virtual_clock import run_virtual

PROBE_SECONDS = 3.0


def key(name: str, **changes: object) -> KeyConfig:
    defaults = {"interval": 5.0, "retry_interval": 1.0, "timeout": 4.0, "probes": ("rest",)}
    return key_config(name, **(defaults | changes))


class SlowRunner(StoreBackedRunner):
    """Each probe takes PROBE_SECONDS; counts the probes of each key running at once."""

    def __init__(self) -> None:
        super().__init__()
        self.running: Counter[str] = Counter()
        self.most_running: Counter[str] = Counter()
        self.starts: list[tuple[str, float, float]] = []  # name, loop time, the config's timeout

    async def run(self, config: KeyConfig, probe: str) -> ProbeResult:
        self.starts.append((config.name, asyncio.get_running_loop().time(), config.timeout))
        self.running[config.name] += 1
        self.most_running[config.name] = max(
            self.most_running[config.name], self.running[config.name]
        )
        try:
            await asyncio.sleep(PROBE_SECONDS)
        finally:
            self.running[config.name] -= 1
        return self.record(config, ProbeResult("rest", Result.OK))


def test_a_changed_key_waits_for_its_probe_in_flight() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        runner = SlowRunner()
        runner.store.configure({"k": ("rest",)})
        scheduler = ProbeScheduler(runner)  # type: ignore[arg-type]
        scheduler.apply(Config(keys=(key("k"),), source="test"))
        scheduler.start()
        offset = first_run_offset("k", "rest", 5.0, first_round_spread(1))  # one new probe
        await asyncio.sleep(offset + 0.5)  # the first probe is running
        assert runner.running["k"] == 1
        changed = key("k", timeout=3.5)
        scheduler.apply(Config(keys=(changed,), source="test"))
        reloaded_at = loop.time()
        await asyncio.sleep(20)
        scheduler.shutdown()
        assert runner.most_running["k"] == 1
        # The changed key's first probe: its offset from the reload, or the old probe's end if later.
        first_new = next(when for name, when, timeout in runner.starts if timeout == 3.5)
        assert first_new == pytest.approx(max(reloaded_at + offset, offset + PROBE_SECONDS))
        assert [t for _, _, t in runner.starts] == [4.0] + [3.5] * (len(runner.starts) - 1)

    run_virtual(scenario())


def test_reloads_every_second_during_probes_never_overlap_them() -> None:
    async def scenario() -> None:
        runner = SlowRunner()
        runner.store.configure({"k": ("rest",), "other": ("rest",)})
        scheduler = ProbeScheduler(runner)  # type: ignore[arg-type]
        scheduler.apply(Config(keys=(key("k"), key("other")), source="test"))
        scheduler.start()
        for second in range(40):
            await asyncio.sleep(1.0)
            timeout = 4.0 if second % 2 else 3.5
            scheduler.apply(Config(keys=(key("k", timeout=timeout), key("other")), source="test"))
        scheduler.shutdown()
        assert runner.most_running == Counter({"k": 1, "other": 1})
        # The unchanged key kept its interval throughout.
        other = [when for name, when, _ in runner.starts if name == "other"]
        gaps = [later - earlier for earlier, later in itertools.pairwise(other)]
        assert len(gaps) >= 6 and gaps == pytest.approx([5.0] * len(gaps))

    run_virtual(scenario())


def test_a_key_removed_and_added_back_mid_probe_waits_too() -> None:
    async def scenario() -> None:
        runner = SlowRunner()
        runner.store.configure({"k": ("rest",)})
        scheduler = ProbeScheduler(runner)  # type: ignore[arg-type]
        scheduler.apply(Config(keys=(key("k"),), source="test"))
        scheduler.start()
        await asyncio.sleep(first_run_offset("k", "rest", 5.0, first_round_spread(1)) + 0.1)
        scheduler.apply(Config(keys=(), source="test"))
        scheduler.apply(Config(keys=(key("k"),), source="test"))
        await asyncio.sleep(12)
        scheduler.shutdown()
        assert runner.most_running["k"] == 1
        assert len(runner.starts) >= 2

    run_virtual(scenario())
