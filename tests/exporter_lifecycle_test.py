"""The exporter process's lifecycle: health and readiness, SIGTERM (with probes in flight),
reloads by HTTP and SIGHUP."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import httpx

from exporter.simulator import make_key
from tests.harness import (
    assert_no_secret,
    start_exporter_process,
    wait_http,
    write_config,
    write_key,
)
from tests.support.exporter_process import (
    reload_config,
    sim_stats,
    stop_cleanly,
)
from tests.support.metrics import scrape
from tests.support.waiting import wait_until

# --- health, readiness, lifecycle, signals --------------------------------------------------------


def test_health_readiness_and_sigterm(simulator: str, tmp_path: Path) -> None:
    # A first round takes milliseconds for one key: an answer 2.5 s late keeps it unready a while.
    name = "late"
    key = make_key("slow", 2500, seed="late")
    config = write_config(
        tmp_path / "config.yml",
        simulator,
        [{"name": name, "api_key_file": str(write_key(tmp_path, "late", key))}],
        interval="5s",
        timeout="4s",
    )
    started = time.monotonic()
    exporter, url = start_exporter_process(config, tmp_path, wait_ready=False)
    try:
        assert time.monotonic() - started < 10
        assert httpx.get(f"{url}/-/healthy", timeout=5).status_code == 200
        not_ready = httpx.get(f"{url}/-/ready", timeout=5)
        assert not_ready.status_code == 503, not_ready.text
        reload = httpx.post(f"{url}/-/reload", timeout=5)
        assert reload.status_code == 403, "reload must need --web.enable-lifecycle"
        assert "--web.enable-lifecycle" in reload.text
        wait_http(f"{url}/-/ready", 200, timeout=8, process=exporter)
        assert scrape(url).result(name, "rest") == "ok"
    finally:
        took = stop_cleanly(exporter)
    assert took < 3, f"SIGTERM took {took:.1f}s"


def test_sigterm_with_probes_in_flight_exits_cleanly(simulator: str, tmp_path: Path) -> None:
    """Stopping while probes hang: exit 0 at once, and no error logged for the cancelled ones."""
    entries = [
        {
            "name": f"hang-{index}",
            "api_key_file": str(
                write_key(tmp_path, f"hang-{index}", make_key("hang", seed=str(index)))
            ),
        }
        for index in range(4)
    ]
    config = write_config(tmp_path / "config.yml", simulator, entries, timeout="1900ms")
    exporter, _ = start_exporter_process(config, tmp_path, wait_ready=False)

    def all_hanging() -> bool:
        """Every key's REST request and Realtime upgrade reached the simulator, unanswered."""
        for index in range(4):
            stats = sim_stats(simulator, make_key("hang", seed=str(index)))
            if not (stats.get("rest_requests") and stats.get("realtime_sessions")):
                return False
        return True

    wait_until(all_hanging, 10, "every probe in flight", log=exporter)
    took = stop_cleanly(exporter)
    assert took < 3, f"SIGTERM took {took:.1f}s"
    errors = [line for line in exporter.output().splitlines() if "level=error" in line]
    assert not errors, "\n".join(line[:400] for line in errors)


def test_reload_by_http_and_sighup(simulator: str, tmp_path: Path) -> None:
    keys = {
        name: make_key(scenario, prefix=prefix, seed=f"reload-{name}")
        for name, scenario, prefix in (
            ("kept", "ok", "sk-proj-"),
            ("removed", "ok", "sk-admin-"),
            ("added", "ok", "sk-"),
            ("added-by-hup", "invalid_api_key", "sk-svcacct-"),
        )
    }
    config = reload_config(tmp_path, simulator, {k: keys[k] for k in ("kept", "removed")})
    exporter, url = start_exporter_process(
        config,
        tmp_path,
        "--web.enable-lifecycle",
        "--web.telemetry-path",
        "/probe-metrics",
        "--log.level",
        "debug",
        "--log.format",
        "json",
    )
    path = "/probe-metrics"
    try:
        assert httpx.get(f"{url}/metrics", timeout=5).status_code == 404
        assert f'href="{path}"' in httpx.get(f"{url}/", timeout=5).text
        wait_until(
            lambda: (
                (
                    scrape(url, path).value("openai_probe_requests_total", key="kept", probe="rest")
                    or 0
                )
                >= 2
            ),
            6,
            "kept probed twice",
        )
        before = scrape(url, path)
        kept = {
            probe: (
                before.value("openai_probe_requests_total", key="kept", probe=probe),
                before.value("openai_probe_latency_seconds_count", probe=probe),
            )
            for probe in ("rest", "realtime")
        }

        # POST /-/reload: one key removed, one added, one unchanged.
        reload_config(tmp_path, simulator, {k: keys[k] for k in ("kept", "added")})
        response = httpx.post(f"{url}/-/reload", timeout=5)
        assert response.status_code == 200, response.text
        # Ready once the first round is done: a key added later does not take the pod out.
        ready = httpx.get(f"{url}/-/ready", timeout=5)
        assert ready.status_code == 200, f"/-/ready after a reload that added a key: {ready.text}"
        after = scrape(url, path)
        assert not [s for s in after.samples if s.labels.get("key") == "removed"]
        for probe, (requests, count) in kept.items():
            assert requests is not None and count is not None
            now_requests = after.value("openai_probe_requests_total", key="kept", probe=probe)
            # The exporter-wide histogram keeps what the removed key counted.
            now_count = after.value("openai_probe_latency_seconds_count", probe=probe)
            assert now_requests is not None and now_requests >= requests, (probe, now_requests)
            assert now_count is not None and now_count >= count, (probe, now_count)
        wait_until(lambda: scrape(url, path).result("added", "rest") == "ok", 5, "added is probed")
        assert scrape(url, path).value("openai_key_exporter_keys") == 2

        # A broken configuration is refused; the old keys keep being probed.
        (tmp_path / "config.yml").write_text("keys: [this is: not valid\n")
        response = httpx.post(f"{url}/-/reload", timeout=5)
        assert response.status_code == 500
        assert "config.yml" in response.text
        broken = scrape(url, path)
        assert broken.value("openai_key_exporter_config_last_reload_successful") == 0
        requests = broken.value("openai_probe_requests_total", key="kept", probe="rest") or 0
        wait_until(
            lambda: (
                (
                    scrape(url, path).value("openai_probe_requests_total", key="kept", probe="rest")
                    or 0
                )
                > requests
            ),
            5,
            "kept is still probed",
        )
        assert scrape(url, path).result("added", "rest") == "ok"

        # SIGHUP with a fixed configuration: back to 1, a key removed and one added.
        reload_config(tmp_path, simulator, {k: keys[k] for k in ("kept", "added-by-hup")})
        exporter.signal(signal.SIGHUP)
        wait_until(
            lambda: (
                scrape(url, path).value("openai_key_exporter_config_last_reload_successful") == 1
            ),
            5,
            "reload after SIGHUP",
        )
        wait_until(
            lambda: scrape(url, path).value("openai_key_valid", key="added-by-hup") == 0,
            5,
            "added-by-hup probed",
        )
        final = scrape(url, path)
        assert not [s for s in final.samples if s.labels.get("key") in {"removed", "added"}]
        final_requests = final.value("openai_probe_requests_total", key="kept", probe="rest")
        assert final_requests is not None and final_requests > requests
    finally:
        stop_cleanly(exporter)
    lines = exporter.output().splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    assert {record["level"] for record in records} >= {"debug", "info", "error"}
    assert any("reload" in record["msg"] for record in records)
    assert_no_secret(exporter.output(), list(keys.values()), "the JSON log")
