"""What README promises and no other test checked: `--version`, the `demo` command, quick mode
with no configuration file, `openai_key_exporter_shard_info`, the series a key costs, and the
`key result changed` log line (once per change, with OpenAI's x-request-id)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import httpx

from exporter import __version__
from exporter.sharding import shard_for
from exporter.simulator import make_key
from tests.harness import (
    exporter_command,
    start_exporter_process,
    write_config,
    write_key,
)
from tests.support.demo import DEMO_RESULTS, results_shown, running_demo
from tests.support.exporter_process import (
    sim_override,
    sim_stats,
    stop_cleanly,
    wait_for_a_second_round,
)
from tests.support.metrics import scrape
from tests.support.waiting import wait_until

REQUEST_ID = re.compile(r"req_[0-9a-f]{32}")


def test_version_names_the_package_version() -> None:
    run = subprocess.run(
        exporter_command("--version"), capture_output=True, text=True, timeout=30, check=False
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"openai-key-exporter {__version__} (python 3."), run.stdout


def test_demo_serves_keys_in_many_states(tmp_path: Path) -> None:
    with running_demo(tmp_path) as (demo, url):
        # A probe that ran before the first inventory pass says invalid_api_key; its quick
        # re-probe (5 s later) reads the rejection against the inventory.
        wait_until(
            lambda: results_shown(scrape(url), DEMO_RESULTS) == DEMO_RESULTS,
            30,
            "every demo key's result",
            log=demo,
        )
        assert "revoked" in httpx.get(f"{url}/", timeout=5).text
        assert httpx.post(f"{url}/-/reload", timeout=5).status_code == 200  # lifecycle is on


def test_quick_mode_probes_the_environment_key_with_no_config_file(
    simulator: str, tmp_path: Path
) -> None:
    key = make_key("ok", seed="quick-mode")
    exporter, url = start_exporter_process(
        None, tmp_path, env={"OPENAI_API_KEY": key, "OPENAI_BASE_URL": simulator}
    )
    try:
        metrics = scrape(url)
        assert metrics.result("default", "rest") == "ok"
        assert metrics.result("default", "realtime") == "ok"  # both probes, as the default
        assert metrics.result("default", "inference") is None  # billed: never unless listed
        assert metrics.value("openai_key_exporter_keys") == 1
        stats = sim_stats(simulator, key)
        assert stats["rest_requests"] >= 1 and stats["realtime_sessions"] >= 1
        assert stats.get("responses_requests", 0) == 0
    finally:
        stop_cleanly(exporter)
    assert "environment (OPENAI_API_KEY, OPENAI_BASE_URL)" in exporter.output()


def test_shard_info_and_only_the_shards_keys(simulator: str, tmp_path: Path) -> None:
    names = [f"team-{index}" for index in range(12)]
    mine = {name for name in names if shard_for(name, 3) == 1}
    assert mine and len(mine) < len(names)
    entries = [
        {"name": name, "api_key_file": str(write_key(tmp_path, name, make_key("ok", seed=name)))}
        for name in names
    ]
    config = write_config(tmp_path / "config.yml", simulator, entries, probes=("rest",))
    exporter, url = start_exporter_process(
        config, tmp_path, "--shard.index", "1", "--shard.total", "3"
    )
    try:
        metrics = scrape(url)
    finally:
        stop_cleanly(exporter)
    info = metrics.find("openai_key_exporter_shard_info")
    assert [(s.labels, s.value) for s in info] == [({"index": "1", "total": "3"}, 1.0)]
    assert {s.labels["key"] for s in metrics.find("openai_probe_result")} == mine
    assert metrics.value("openai_key_exporter_keys") == len(mine)


def test_a_healthy_key_with_both_probes_is_34_series_of_about_2_5_kb(
    simulator: str, tmp_path: Path
) -> None:
    """README: 'A healthy key with both probes is 34 series (about 2.5 KB of exposition).' The
    name is as long as the benchmark's (`bench-00000`), whose fleets the figure comes from."""
    key = make_key("ok", seed="thirty-series")
    name = "bench-00000"
    entries = [{"name": name, "api_key_file": str(write_key(tmp_path, name, key))}]
    config = write_config(tmp_path / "config.yml", simulator, entries)
    exporter, url = start_exporter_process(config, tmp_path)
    try:
        metrics = wait_for_a_second_round(url, 2)
    finally:
        stop_cleanly(exporter)
    lines = [line for line in metrics.text.splitlines() if f'key="{name}"' in line]
    assert len(lines) == 34, "\n".join(lines)
    size = sum(len(line) + 1 for line in lines)
    assert 2.4 * 1024 <= size <= 2.6 * 1024, size


def test_key_result_changed_is_logged_once_per_change_with_the_request_id(
    simulator: str, tmp_path: Path
) -> None:
    key = make_key("ok", seed="changes")
    entries = [{"name": "flip", "api_key_file": str(write_key(tmp_path, "flip", key))}]
    config = write_config(
        tmp_path / "config.yml", simulator, entries, interval="1s", probes=("rest",)
    )
    exporter, url = start_exporter_process(config, tmp_path, "--log.format", "json")
    try:
        for scenario, result in (
            ("ok", "ok"),
            ("invalid_api_key", "invalid_api_key"),
            ("ok", "ok"),
        ):
            sim_override(simulator, key, scenario)
            start = sim_stats(simulator, key).get("rest_requests", 0)

            def settled(result: str = result, start: int = start) -> bool:
                """Three answers of this scenario seen by the simulator, the last one recorded."""
                if sim_stats(simulator, key)["rest_requests"] < start + 3:
                    return False
                return scrape(url).result("flip", "rest") == result

            wait_until(settled, 20, f"three probes answered {result}", log=exporter)
        sim_override(simulator, key, None)
    finally:
        stop_cleanly(exporter)
    records = [json.loads(line) for line in exporter.output().splitlines() if line.startswith("{")]
    changes = [
        record
        for record in records
        if record["msg"] == "key result changed" and record.get("key") == "flip"
    ]
    assert [record["result"] for record in changes] == ["ok", "invalid_api_key", "ok"], changes
    assert [record.get("previous_result") for record in changes] == [None, "ok", "invalid_api_key"]
    ids = [record.get("request_id", "") for record in changes]
    assert all(REQUEST_ID.fullmatch(request_id) for request_id in ids), ids
    assert len(set(ids)) == 3
    assert changes[1]["runbook"] == f"{url}/runbook#key-invalid"  # --web.external-url's default
