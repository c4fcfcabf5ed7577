"""The demo stack and the sharded overlay run for real: the simulator and exporters as
processes on loopback, with the configs the deployments ship."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.deploy import (
    assert_flags_known,
    compose,
    compose_mounts,
    container_config,
)

# --------------------------------------------------------------------------------------------
# The demo stack and the sharded overlay, run for real: the simulator and exporters as
# processes on loopback, with the configs the deployments ship.

DEMO_REST_RESULTS = {
    "DEMO_KEY_OK": "ok",
    "DEMO_KEY_INVALID_API_KEY": "invalid_api_key",
    "DEMO_KEY_INSUFFICIENT_QUOTA": "ok",  # no free call sees credit: the inference probe does
    "DEMO_KEY_RATE_LIMITED": "rate_limited",
    "DEMO_KEY_SERVER_ERROR": "server_error",
    "DEMO_KEY_RT_MISSING_SCOPES": "ok",
}


def local_demo_config(tmp_path: Path, base_url: str) -> tuple[Path, dict[str, str]]:
    """The compose demo config pointed at a simulator on loopback, and each key's variable."""
    service = compose()["services"]["exporter-demo"]
    mounts = {target: host for host, target in compose_mounts(service)}
    config = yaml.safe_load(container_config(service).read_text(encoding="utf-8"))
    config["defaults"]["base_url"] = base_url
    # The demo's intervals suit a person watching Grafana; a test wants its answers sooner.
    config["defaults"].update(interval="2s", timeout="1s", realtime={"interval": "2s"})
    variables = {}
    for key in config["keys"]:
        key["dotenv"] = str(mounts[key["dotenv"]])
        variables[key["name"]] = key["dotenv_var"]
    path = tmp_path / "demo.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path, variables


def rest_results(url: str) -> dict[str, str]:
    """key -> the REST probe's current result class, from /metrics."""
    import httpx

    from tests.support.metrics import parse_metrics

    samples = parse_metrics(httpx.get(f"{url}/metrics", timeout=5).text)
    results = {}
    for series, value in samples.items():
        match = re.fullmatch(r"openai_probe_result\{(.*)\}", series)
        if match and value == 1:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
            if labels.get("probe") == "rest":
                results[labels["key"]] = labels["result"]
    return results


def wait_for_results(url: str, keys: set[str], timeout: float = 30.0) -> dict[str, str]:
    import time

    deadline = time.monotonic() + timeout
    results: dict[str, str] = {}
    while time.monotonic() < deadline:
        results = rest_results(url)
        if keys <= set(results):
            return results
        time.sleep(0.2)
    pytest.fail(f"{url}/metrics has REST results for {sorted(results)}, not all of {sorted(keys)}")


def test_demo_profile_shows_every_scenario(tmp_path: Path) -> None:
    from tests.harness import start_exporter_process, start_simulator_process

    simulator, base_url = start_simulator_process(tmp_path)
    try:
        config, variables = local_demo_config(tmp_path, base_url)
        exporter, url = start_exporter_process(config, tmp_path)
        try:
            results = wait_for_results(url, set(variables))
            assert results == {
                name: DEMO_REST_RESULTS[variable] for name, variable in variables.items()
            }, exporter.output()[-3000:]
            credit = 'openai_probe_result{key="demo-no-quota",probe="inference",result="insufficient_quota"} 1'
            assert credit in httpx.get(f"{url}/metrics", timeout=5).text
        finally:
            exporter.stop()
    finally:
        simulator.stop()


def test_sharded_replicas_probe_each_key_exactly_once(tmp_path: Path) -> None:
    """What overlays/sharded runs, on loopback: --shard.total=N replicas of one config, each
    with its own index; together they report every key, each key from one replica only."""
    from exporter.sharding import shard_for
    from tests.harness import start_exporter_process, start_simulator_process

    assert_flags_known(["--shard.total=2", "--shard.index=0"], "sharded replicas")
    simulator, base_url = start_simulator_process(tmp_path)
    replicas = []
    try:
        config, variables = local_demo_config(tmp_path, base_url)
        total = 2
        for index in range(total):
            replicas.append(
                start_exporter_process(
                    config, tmp_path, f"--shard.total={total}", f"--shard.index={index}"
                )
            )
        seen: dict[str, int] = {}
        for index, (_, url) in enumerate(replicas):
            mine = {name for name in variables if shard_for(name, total) == index}
            results = wait_for_results(url, mine)
            assert set(results) == mine, f"replica {index} reports {sorted(results)}"
            for name in results:
                assert name not in seen, f"{name} is probed by replicas {seen[name]} and {index}"
                seen[name] = index
        assert set(seen) == set(variables)
    finally:
        for process, _ in replicas:
            process.stop()
        simulator.stop()
