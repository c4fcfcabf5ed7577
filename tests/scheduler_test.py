"""When each key is probed: the delay after a result, and the stable spread of first runs."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.classify import Result
from exporter.config import KeyConfig, RealtimeSettings
from exporter.keys import KeySource, SourceKind
from exporter.result import ProbeResult
from exporter.scheduler import MAX_FIRST_RUN_SPREAD, first_run_offset, next_delay

REPO = Path(__file__).resolve().parent.parent
KEY = KeyConfig(
    name="web",
    source=KeySource(SourceKind.ENV, "OPENAI_API_KEY"),
    interval=60.0,
    retry_interval=10.0,
    probes=("rest", "realtime"),
    realtime=RealtimeSettings(interval=300.0),
)


def result(kind: Result, probe: str = "rest", retry_after: float | None = None) -> ProbeResult:
    return ProbeResult(probe=probe, result=kind, retry_after=retry_after)


# next_delay --------------------------------------------------------------------------------


@pytest.mark.parametrize("probe", ["rest", "realtime"])
def test_healthy_keeps_the_regular_interval(probe: str) -> None:
    assert next_delay(KEY, result(Result.OK, probe), 0) is None


@pytest.mark.parametrize(
    "kind",
    [
        Result.INVALID_API_KEY,
        Result.ACCOUNT_DEACTIVATED,
        Result.SERVER_ERROR,
        Result.TIMEOUT,
        Result.CONNECTION_ERROR,
        Result.TLS_ERROR,
        Result.KEY_MISSING,
        Result.KEY_MALFORMED,
        Result.MODEL_NOT_FOUND,
        Result.OTHER,
    ],
)
def test_a_first_failure_is_looked_at_again_after_the_retry_interval(kind: Result) -> None:
    assert next_delay(KEY, result(kind), 1) == 10.0
    assert next_delay(KEY, result(kind, "realtime"), 1) == 10.0


@pytest.mark.parametrize("failures", [2, 3, 50])
def test_a_confirmed_failure_costs_no_more_than_a_healthy_key(failures: int) -> None:
    """Only the first failure gets the quick second look: a revoked key, or one whose
    Realtime session is refused, must not open a session every 10 s for ever."""
    assert next_delay(KEY, result(Result.INVALID_API_KEY), failures) is None
    assert next_delay(KEY, result(Result.API_SHAPE_RETIRED, "realtime"), failures) is None


def test_the_retry_is_never_later_than_the_interval() -> None:
    slow_retry = replace(KEY, interval=5.0, retry_interval=30.0)
    assert next_delay(slow_retry, result(Result.SERVER_ERROR), 1) == 5.0
    # The Realtime probe has its own, longer interval: the retry interval fits in it.
    assert next_delay(slow_retry, result(Result.SERVER_ERROR, "realtime"), 1) == 30.0
    short_realtime = replace(slow_retry, realtime=RealtimeSettings(interval=20.0))
    assert next_delay(short_realtime, result(Result.TIMEOUT, "realtime"), 1) == 20.0


def test_rate_limited_waits_as_long_as_openai_asks() -> None:
    assert next_delay(KEY, result(Result.RATE_LIMITED, retry_after=37.0), 1) == 37.0
    assert next_delay(KEY, result(Result.RATE_LIMITED, "realtime", retry_after=37.0), 3) == 37.0
    # Longer than the interval: still honoured (the scheduler pushes the regular run back).
    assert next_delay(KEY, result(Result.RATE_LIMITED, retry_after=120.0), 1) == 120.0


def test_a_bogus_retry_after_is_bounded() -> None:
    """`retry-after: 31536000` must not stop probing for a year: at most 15 minutes."""
    assert next_delay(KEY, result(Result.RATE_LIMITED, retry_after=31536000.0), 1) == 900.0


def test_rate_limited_never_sooner_than_the_retry_interval() -> None:
    assert next_delay(KEY, result(Result.RATE_LIMITED, retry_after=0.0), 1) == 10.0
    assert next_delay(KEY, result(Result.RATE_LIMITED, retry_after=2.5), 1) == 10.0


def test_rate_limited_without_retry_after_waits_the_interval() -> None:
    """No hint from OpenAI: probing sooner would only spend the limit faster."""
    assert next_delay(KEY, result(Result.RATE_LIMITED), 1) is None


def test_insufficient_quota_is_not_retried() -> None:
    """Retrying never brings credit back; each retry would only add a request."""
    assert next_delay(KEY, result(Result.INSUFFICIENT_QUOTA), 1) is None
    assert next_delay(KEY, result(Result.INSUFFICIENT_QUOTA, "realtime"), 1) is None
    assert next_delay(KEY, result(Result.INSUFFICIENT_QUOTA, retry_after=37.0), 1) is None


@given(
    kind=st.sampled_from(Result),
    probe=st.sampled_from(["rest", "realtime"]),
    retry_after=st.none() | st.floats(0, 86400),
    interval=st.floats(1, 86400),
    retry_interval=st.floats(0.5, 86400),
    failures=st.integers(0, 10),
)
def test_delay_is_bounded(
    kind: Result,
    probe: str,
    retry_after: float | None,
    interval: float,
    retry_interval: float,
    failures: int,
) -> None:
    config = replace(KEY, interval=interval, retry_interval=retry_interval)
    delay = next_delay(config, result(kind, probe, retry_after), failures)
    if delay is None:
        return
    assert delay >= min(retry_interval, config.interval_for(probe))
    assert delay <= max(config.interval_for(probe), 900.0)


# first_run_offset --------------------------------------------------------------------------


def test_offset_is_stable() -> None:
    """The same key starts at the same point after a restart: no herd, no drift."""
    assert first_run_offset("web", "rest", 60) == first_run_offset("web", "rest", 60)
    offsets = {first_run_offset("web", probe, 60) for probe in ("rest", "realtime")}
    assert len(offsets) == 2  # a key's two probes do not start together
    assert first_run_offset("web", "rest", 60) != first_run_offset("worker", "rest", 60)


def test_offset_survives_a_restart() -> None:
    """Another process, with another hash seed, puts the key at the same offset."""
    code = "from exporter.scheduler import first_run_offset as f; print(repr(f('web', 'rest', 60)))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert float(done.stdout) == first_run_offset("web", "rest", 60)


@given(
    name=st.text(min_size=1, max_size=128),
    probe=st.sampled_from(["rest", "realtime"]),
    interval=st.floats(0.001, 7 * 86400),
)
def test_offset_is_within_the_first_interval_and_a_minute(
    name: str, probe: str, interval: float
) -> None:
    offset = first_run_offset(name, probe, interval)
    assert 0 <= offset < min(interval, MAX_FIRST_RUN_SPREAD)


def test_offset_scales_with_a_short_interval() -> None:
    long = first_run_offset("web", "rest", 3600)
    assert first_run_offset("web", "rest", 30) == pytest.approx(long / 2)
    assert first_run_offset("web", "rest", 60) == pytest.approx(long)


@pytest.mark.parametrize("interval", [10.0, 60.0, 300.0])
def test_offsets_spread_evenly(interval: float) -> None:
    """10,000 keys fill the spread roughly uniformly: no bucket holds a crowd."""
    spread = min(interval, MAX_FIRST_RUN_SPREAD)
    buckets = 20
    counts = [0] * buckets
    for i in range(10_000):
        offset = first_run_offset(f"team-{i}", "rest", interval)
        counts[int(offset / spread * buckets)] += 1
    expected = 10_000 / buckets
    chi_square = sum((count - expected) ** 2 / expected for count in counts)
    # 19 degrees of freedom: 43.8 is the 0.999 quantile; the offsets are fixed, so is this.
    assert chi_square < 43.8, counts
    assert min(counts) > expected * 0.8 and max(counts) < expected * 1.2, counts
