"""The exporter process probing: keys that cannot be sent never leave, quick re-probes after a
failure and retry-after, a key rotated on disk."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import httpx

from exporter.redaction import redact
from exporter.simulator import make_key
from tests.harness import (
    assert_no_secret,
    start_exporter_process,
    start_simulator_process,
    write_config,
    write_key,
)
from tests.support.exporter_process import (
    name_with_rest_offset,
    sim_override,
    sim_root,
    sim_stats,
    stop_cleanly,
    wait_for_a_second_round,
)
from tests.support.metrics import scrape
from tests.support.waiting import wait_until

# --- keys that cannot be sent ---------------------------------------------------------------------


def test_malformed_key_never_reaches_openai(tmp_path: Path) -> None:
    """A key with an inner CR or LF, or non-ASCII, is reported and never sent anywhere."""
    simulator, base_url = start_simulator_process(tmp_path)
    try:
        good = make_key("ok", seed="malformed")
        keys = {
            "inner-cr": "sk-proj-abc\rdef" + good[15:],
            "inner-lf": good[:50] + "\n" + good[50:],
            "non-ascii": good[:50] + "é" + good[51:],
        }
        entries = [
            {"name": name, "api_key_file": str(write_key(tmp_path, name, key))}
            for name, key in keys.items()
        ]
        config = write_config(tmp_path / "config.yml", base_url, entries)
        exporter, url = start_exporter_process(config, tmp_path, "--log.level", "debug")
        try:
            # Retried (retry_interval 1s), and still never sent.
            metrics = wait_for_a_second_round(url, 2 * len(keys))
            for name in keys:
                for probe in ("rest", "realtime"):
                    assert metrics.result(name, probe) == "key_malformed", (name, probe)
                    assert metrics.value("openai_probe_requests_total", key=name, probe=probe) == 0
                    assert (
                        metrics.value("openai_probe_http_status_code", key=name, probe=probe) == 0
                    )
                assert metrics.value("openai_key_valid", key=name) == 0
            issues = {
                s.labels["key"]: s.labels["issue"]
                for s in metrics.find("openai_key_format_issue")
                if s.labels["issue"] in {"line_break", "non_ascii"}
            }
            assert issues == {
                "inner-cr": "line_break",
                "inner-lf": "line_break",
                "non-ascii": "non_ascii",
            }
            totals = httpx.get(f"{sim_root(base_url)}/_sim/stats", timeout=5).json()["totals"]
            assert (totals["rest_requests"], totals["realtime_sessions"]) == (0, 0), totals
            assert_no_secret(metrics.text + exporter.output(), list(keys.values()), "output")
        finally:
            stop_cleanly(exporter)
    finally:
        simulator.stop()


# --- when probes happen ---------------------------------------------------------------------------


def at_least(count: int, times: list[float]) -> list[float] | None:
    return times if len(times) >= count else None


def request_times(base_url: str, key: str) -> list[float]:
    return list(sim_stats(base_url, key).get("rest_request_times", []))


def test_quick_reprobe_after_failure_and_retry_after(simulator: str, tmp_path: Path) -> None:
    """retry_interval 1s with interval 10s: a failing key is probed again ~1s later, and back on
    its 10s interval once healthy. A 429 with retry-after 4 holds the next request 4s."""
    retrying_name = name_with_rest_offset("retrying", 10.0, 0.5)
    retrying = make_key("server_error", seed="retrying")
    limited = make_key("rate_limited", 4, seed="limited")
    entries = [
        {"name": retrying_name, "api_key_file": str(write_key(tmp_path, "retrying", retrying))},
        {
            "name": "limited",
            "api_key_file": str(write_key(tmp_path, "limited", limited)),
            "interval": "2s",
        },
    ]
    config = write_config(
        tmp_path / "config.yml", simulator, entries, interval="10s", probes=("rest",)
    )
    exporter, url = start_exporter_process(config, tmp_path, wait_ready=False)
    try:
        first = wait_until(lambda: request_times(simulator, retrying), 5, "first probe", every=0.02)
        sim_override(simulator, retrying, "ok")  # the quick retry, due 1s later, finds it healthy
        times = wait_until(
            lambda: at_least(3, request_times(simulator, retrying)),
            14,
            "the retry and then the next regular probe",
            log=exporter,
        )
        assert len(first) == 1
        retry_gap, regular_gap = times[1] - times[0], times[2] - times[1]
        assert 0.95 <= retry_gap <= 2.5, f"retry {retry_gap:.2f}s after the failure"
        assert 9.0 <= regular_gap <= 11.5, f"next probe {regular_gap:.2f}s after the recovery"
        metrics = scrape(url)
        assert metrics.result(retrying_name, "rest") == "ok"
        assert (
            metrics.value("openai_probe_consecutive_failures", key=retrying_name, probe="rest") == 0
        )
        assert metrics.value("openai_probe_errors_total", key=retrying_name, probe="rest") == 1

        limited_times = request_times(simulator, limited)
        assert len(limited_times) >= 3, limited_times
        gaps = [b - a for a, b in itertools.pairwise(limited_times)]
        assert min(gaps) >= 3.95, f"a request {min(gaps):.2f}s after a 429 with retry-after 4"
        assert max(gaps) <= 6.5, f"{max(gaps):.2f}s between probes of a key limited for 4s"

        def agree() -> bool:
            sent = sim_stats(simulator, limited)["rest_requests"]
            return (
                scrape(url).value("openai_probe_requests_total", key="limited", probe="rest")
                == sent
            )

        wait_until(agree, 5, "requests_total agrees with the simulator", every=0.05)
        assert scrape(url).result("limited", "rest") == "rate_limited"
    finally:
        stop_cleanly(exporter)
        sim_override(simulator, retrying, None)


# --- key rotation on disk -------------------------------------------------------------------------


def replace_file(path: Path, text: str) -> None:
    """Swap the file's content atomically, as a secret mount or `mv` does."""
    temporary = path.with_suffix(".new")
    temporary.write_text(text)
    temporary.chmod(0o600)
    os.replace(temporary, path)


def test_key_rotation_on_disk(simulator: str, tmp_path: Path) -> None:
    old = make_key("invalid_api_key", prefix="sk-svcacct-", seed="rotation")
    new = make_key("ok", prefix="sk-proj-", seed="rotation")
    path = write_key(tmp_path, "rotating", old)
    config = write_config(
        tmp_path / "config.yml", simulator, [{"name": "rotating", "api_key_file": str(path)}]
    )
    exporter, url = start_exporter_process(config, tmp_path)
    try:
        assert exporter.popen is not None
        pid = exporter.popen.pid
        metrics = scrape(url)
        assert metrics.value("openai_key_valid", key="rotating") == 0
        old_print, new_print = redact(old), redact(new)
        assert metrics.find("openai_key_info", key="rotating", fingerprint=old_print)
        replace_file(path, new + "\n")

        def rotated() -> bool:
            metrics = scrape(url)
            return (
                metrics.result("rotating", "rest") == "ok"
                and metrics.result("rotating", "realtime") == "ok"
                and metrics.value("openai_key_valid", key="rotating") == 1
            )

        wait_until(rotated, 6, "the new key is probed", log=exporter)
        metrics = scrape(url)
        (info,) = metrics.find("openai_key_info", key="rotating")
        assert info.labels == {
            "key": "rotating",
            "fingerprint": new_print,
            "kind": "project",
            "provider": "openai",
        }
        assert old_print not in metrics.text
        assert exporter.popen.poll() is None and exporter.popen.pid == pid
        assert exporter.output().count("msg=starting") == 1
        assert sim_stats(simulator, new)["rest_requests"] >= 1
    finally:
        stop_cleanly(exporter)
