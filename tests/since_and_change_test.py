"""Since when a key has had its result, and when its value last changed in its source:
openai_probe_result_since_timestamp_seconds and openai_key_last_change_timestamp_seconds."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx

from exporter.classify import Result
from exporter.keys import KeyReading, change_time, value_digest
from exporter.result import ProbeResult
from exporter.simulator import make_key
from exporter.state import KeyIdentity, StateStore
from tests.conftest import require_tool
from tests.harness import (
    assert_no_secret,
    start_exporter_process,
    start_simulator_process,
    write_config,
    write_key,
)
from tests.support.metrics import parse_metrics


def _result(result: Result, started_at: float) -> ProbeResult:
    return ProbeResult("rest", result, duration=0.1, started_at=started_at)


def test_since_is_the_start_of_the_first_probe_of_the_current_class() -> None:
    store = StateStore()
    store.configure({"k": ("rest",)})
    identity = KeyIdentity("sk-...abcd", "project", value_digest=b"one")
    for started, result in ((100.0, Result.OK), (160.0, Result.OK)):
        store.record("k", identity, _result(result, started), read_at=started)
    state = store.get("k")
    assert state is not None and state.rest is not None
    assert (state.rest.result_since, state.rest.result_probes) == (100.0, 2)
    store.record("k", identity, _result(Result.INVALID_API_KEY, 220.0), read_at=220.0)
    store.record("k", identity, _result(Result.INVALID_API_KEY, 230.0), read_at=230.0)
    assert (state.rest.result_since, state.rest.result_probes) == (220.0, 2)
    # Another failing class is another cause: its own since.
    store.record("k", identity, _result(Result.TIMEOUT, 290.0), read_at=290.0)
    assert (state.rest.result_since, state.rest.result_probes) == (290.0, 1)


def test_last_change_is_set_at_the_first_read_and_when_the_value_changes() -> None:
    store = StateStore()
    store.configure({"k": ("rest",)})
    state = store.get("k")
    assert state is not None and state.key_changed_at is None
    old = KeyIdentity("sk-...abcd", "project", value_digest=value_digest("sk-old"))
    new = KeyIdentity("sk-...abcd", "project", value_digest=value_digest("sk-new"))
    store.record("k", old, _result(Result.OK, 10.0), lambda _: 5.0, read_at=10.0)
    assert state.key_changed_at == 5.0  # first read: the source's own time
    store.record("k", old, _result(Result.OK, 70.0), lambda _: 99.0, read_at=70.0)
    assert state.key_changed_at == 5.0  # same value, same fingerprint: unchanged
    store.record("k", new, _result(Result.OK, 130.0), lambda _: 125.0, read_at=130.0)
    assert state.key_changed_at == 125.0  # same fingerprint, other value: a change
    # A probe that read the old value before the new one was recorded is not a change back.
    store.record("k", old, _result(Result.OK, 131.0), lambda _: 999.0, read_at=128.0)
    assert state.key_changed_at == 125.0
    assert state.identity.value_digest == new.value_digest


def test_change_time_prefers_the_files_mtime_when_it_is_believable() -> None:
    reading = KeyReading("x", modified_at=1000.0)
    assert change_time(reading, None, now=2000.0) == 1000.0
    assert change_time(reading, 900.0, now=2000.0) == 1000.0
    # A file moved in with an old mtime, or a clock in the future: when it was noticed.
    assert change_time(reading, 1500.0, now=2000.0) == 2000.0
    assert change_time(KeyReading("x", modified_at=3000.0), None, now=2000.0) == 2000.0
    assert change_time(KeyReading("x"), None, now=2000.0) == 2000.0  # environment variable


def test_the_digest_is_salted_and_never_the_key() -> None:
    key = make_key("ok", seed="digest")
    digest = value_digest(key)
    assert digest == value_digest(key) and digest != value_digest(key + "x")
    assert key.encode() not in digest and value_digest(None) != value_digest("")
    assert "value_digest" not in repr(KeyIdentity(value_digest=digest))


def _scrape(url: str) -> tuple[str, dict[str, float]]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return text, parse_metrics(text)


def _wait(url: str, condition: str, timeout: float = 30.0) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        _, samples = _scrape(url)
        if condition in samples and samples[condition] == 1:
            return samples
        assert time.monotonic() < deadline, f"{condition} never became 1"
        time.sleep(0.2)


def test_a_rotated_key_file_moves_both_timestamps(tmp_path: Path) -> None:
    simulator, base_url = start_simulator_process(tmp_path)
    good = make_key("ok", seed="rotate-good")
    revoked = make_key("invalid_api_key", seed="rotate-bad")
    path = write_key(tmp_path, "voice", revoked)
    os.utime(path, (1_700_000_000, 1_700_000_000))
    config = write_config(
        tmp_path / "config.yml",
        base_url,
        [{"name": "voice", "api_key_file": str(path)}],
        probes=("rest",),
        interval="2s",
    )
    process, url = start_exporter_process(config, tmp_path)
    try:
        failing = 'openai_probe_result{key="voice",probe="rest",result="invalid_api_key"}'
        samples = _wait(url, failing)
        assert samples['openai_key_last_change_timestamp_seconds{key="voice"}'] == 1_700_000_000
        since = samples['openai_probe_result_since_timestamp_seconds{key="voice",probe="rest"}']
        first_run = samples['openai_probe_last_run_timestamp_seconds{key="voice",probe="rest"}']
        assert since <= first_run
        time.sleep(2.5)
        _, later = _scrape(url)
        later_since = 'openai_probe_result_since_timestamp_seconds{key="voice",probe="rest"}'
        assert later[later_since] == since  # still failing: since does not move

        before = time.time()
        write_key(tmp_path, "voice", good)  # rotated: a new value, a fresh mtime
        mtime = path.stat().st_mtime
        samples = _wait(url, 'openai_probe_result{key="voice",probe="rest",result="ok"}')
        changed = samples['openai_key_last_change_timestamp_seconds{key="voice"}']
        assert abs(changed - mtime) < 0.01 and changed >= before - 1
        assert samples[later_since] > since
        text, _ = _scrape(url)
        checked = subprocess.run(
            [require_tool("promtool"), "check", "metrics"],
            input=text,
            capture_output=True,
            text=True,
            check=False,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
    finally:
        process.stop()
        simulator.stop()
    log = process.output()
    assert "key value changed in its source" in log, log[-3000:]
    assert "still hold the old key" in log
    assert "previous_result=invalid_api_key" in log and "previous_since=" in log
    assert "previous_probes=" in log
    assert_no_secret(log, [good, revoked], "log")
