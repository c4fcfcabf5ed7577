"""The compose stack: the Compose specification's schema, its mounts, its hardening, its
configs accepted by the exporter, Prometheus, Alertmanager and Grafana."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import yaml

from tests.conftest import require_tool
from tests.support.deploy import (
    ALERTMANAGER_FILE,
    COMPOSE_DIR,
    COMPOSE_SCHEMA,
    DASHBOARDS_DIR,
    DEMO_KEYS,
    EXPORTER_PORT,
    PROVISIONING_DIR,
    REPO,
    RULES_FILE,
    assert_config_accepted,
    assert_flags_known,
    compose,
    compose_mounts,
    container_config,
    require_file,
)

# --------------------------------------------------------------------------------------------
# Compose


def test_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(compose()), key=lambda error: list(error.path))
    assert not errors, "\n".join(
        f"compose.yaml: {'.'.join(map(str, error.path)) or 'top level'}: {error.message}"
        for error in errors
    )


def test_every_path_compose_mounts_or_builds_exists() -> None:
    for name, service in compose()["services"].items():
        for host_path, _ in compose_mounts(service):
            require_file(host_path)
        build = service.get("build")
        if build:
            context = (COMPOSE_DIR / build["context"]).resolve()
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name
        for env_file in service.get("env_file", []):
            require_file(
                COMPOSE_DIR / (env_file if isinstance(env_file, str) else env_file["path"])
            )
    for secret in compose().get("secrets", {}).values():
        if "file" in secret:
            require_file(COMPOSE_DIR / secret["file"])


def exporter_services() -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose()["services"].items()
        if service.get("image", "").startswith("openai-key-exporter")
    }


def test_compose_exporters_use_the_exporters_flags() -> None:
    services = exporter_services()
    assert {"exporter", "exporter-demo", "simulator"} <= set(services)
    for name, service in services.items():
        assert_flags_known(service["command"], f"compose.yaml services.{name}.command")


def test_compose_exporters_run_hardened() -> None:
    for name, service in exporter_services().items():
        assert service.get("read_only") is True, name
        assert service.get("cap_drop") == ["ALL"], name
        assert str(service.get("user", "")).split(":")[0].isdigit(), name


def test_compose_key_comes_from_a_secret_not_the_environment() -> None:
    exporter = compose()["services"]["exporter"]
    assert exporter["secrets"] == ["openai_api_key"]
    assert compose()["secrets"]["openai_api_key"] == {"environment": "OPENAI_API_KEY"}
    assert "OPENAI_API_KEY" not in json.dumps(exporter.get("environment", {}))


def test_compose_exporter_config_is_accepted(tmp_path: Path) -> None:
    service = compose()["services"]["exporter"]
    secret = tmp_path / "openai_api_key"
    secret.write_text("sk-proj-placeholder\n")
    mounts = {target: host for host, target in compose_mounts(service)}
    mounts["/run/secrets/openai_api_key"] = secret
    config = container_config(service)
    assert_config_accepted(config.read_text(encoding="utf-8"), str(config), mounts)


def test_compose_demo_config_is_accepted_and_points_at_the_simulator() -> None:
    from exporter.config import parse_config

    service = compose()["services"]["exporter-demo"]
    mounts = {target: host for host, target in compose_mounts(service)}
    config_file = container_config(service)
    text = config_file.read_text(encoding="utf-8")
    assert_config_accepted(text, str(config_file), mounts)
    for container_path, host_path in mounts.items():
        text = text.replace(container_path, str(host_path))
    simulator = compose()["services"]["simulator"]
    listen = next(a for a in simulator["command"] if a.startswith("--web.listen-address="))
    port = listen.rsplit(":", 1)[1]
    for key in parse_config(text, str(config_file)).keys:
        assert key.base_url.startswith(f"http://simulator:{port}/"), key.name
    assert set(service["profiles"]) == set(simulator["profiles"]) == {"demo"}


def test_demo_keys_select_their_simulator_scenarios() -> None:
    from exporter.simulator.scenarios import make_key

    pairs = [
        line.split("=", 1)
        for line in DEMO_KEYS.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    assert pairs
    for variable, key in pairs:
        scenario = variable.removeprefix("DEMO_KEY_").lower()
        assert key == make_key(scenario), (
            f"{DEMO_KEYS.relative_to(REPO)}: {variable} is not make_key({scenario!r}); "
            "regenerate it with exporter.simulator.scenarios.make_key"
        )


def test_compose_prometheus_config_is_valid_and_scrapes_the_exporter(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    prometheus = compose()["services"]["prometheus"]
    mounts = {target: host for host, target in compose_mounts(prometheus)}
    config_file = mounts["/etc/prometheus/prometheus.yml"]
    config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    # Point the rule glob at the mounted folder, so promtool checks the rules Prometheus loads.
    rules_dir = require_file(mounts["/etc/prometheus/rules"])
    patterns = [PurePosixPath(p).relative_to("/etc/prometheus/rules") for p in config["rule_files"]]
    loaded = [path.resolve() for p in patterns for path in rules_dir.glob(str(p))]
    assert RULES_FILE in loaded, f"{config['rule_files']} does not load {RULES_FILE.name}"
    config["rule_files"] = [str(rules_dir / p) for p in patterns]
    local_config = tmp_path / "prometheus.yml"
    local_config.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [promtool, "check", "config", str(local_config)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr

    aliases = {
        alias
        for service in exporter_services().values()
        for alias in (service.get("networks") or {}).get("default", {}).get("aliases", [])
    }
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "openai-key-exporter")
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == [f"openai-key-exporter:{EXPORTER_PORT}"]
    # Both the live and the demo exporter answer to the scraped name.
    for name in ("exporter", "exporter-demo"):
        service_aliases = compose()["services"][name]["networks"]["default"]["aliases"]
        assert "openai-key-exporter" in service_aliases, name
    assert "openai-key-exporter" in aliases
    am_targets = [
        t
        for am in config["alerting"]["alertmanagers"]
        for sc in am["static_configs"]
        for t in sc["targets"]
    ]
    assert am_targets == ["alertmanager:9093"]


def test_compose_alertmanager_loads_the_example_config() -> None:
    alertmanager = compose()["services"]["alertmanager"]
    mounts = {target: host for host, target in compose_mounts(alertmanager)}
    assert mounts["/etc/alertmanager/alertmanager.yml"] == require_file(ALERTMANAGER_FILE)
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in alertmanager["command"]


def test_compose_grafana_provisioning_matches_its_mounts() -> None:
    """The provisioning files name paths and hosts of the compose stack: check they agree."""
    grafana = compose()["services"]["grafana"]
    mounts = {target: host for host, target in compose_mounts(grafana)}
    assert mounts["/etc/grafana/provisioning"] == require_file(PROVISIONING_DIR)
    dashboards_target = next(t for t, h in mounts.items() if h == DASHBOARDS_DIR)
    require_file(DASHBOARDS_DIR)

    providers = [
        provider
        for path in sorted((PROVISIONING_DIR / "dashboards").glob("*.y*ml"))
        for provider in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get(
            "providers", []
        )
    ]
    assert providers, "grafana/provisioning/dashboards/ provisions no dashboard provider"
    for provider in providers:
        path = provider["options"]["path"].rstrip("/")
        assert dashboards_target == path or dashboards_target.startswith(path + "/"), (
            f"the dashboard provider reads {path}, but compose mounts grafana/dashboards "
            f"at {dashboards_target}"
        )

    datasources = [
        source
        for path in sorted((PROVISIONING_DIR / "datasources").glob("*.y*ml"))
        for source in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get(
            "datasources", []
        )
    ]
    prometheus_urls = [s["url"] for s in datasources if s.get("type") == "prometheus"]
    assert prometheus_urls, "grafana/provisioning/datasources/ has no Prometheus data source"
    assert any(url.rstrip("/") == "http://prometheus:9090" for url in prometheus_urls), (
        f"the Prometheus data source points at {prometheus_urls}, not the compose service "
        "http://prometheus:9090"
    )
