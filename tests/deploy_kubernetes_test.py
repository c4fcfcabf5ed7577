"""The Kubernetes manifests: kustomize builds, the Kubernetes schemas, hardening, the
generated PrometheusRule and dashboards, the sharded overlay."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.conftest import require_tool
from tests.support.deploy import (
    BASE,
    DASHBOARDS_DIR,
    EXPORTER_PORT,
    GENERATE,
    GENERATE_COMMAND,
    GENERATED,
    KUBERNETES,
    REPO,
    RULES_FILE,
    SHARDED,
    assert_config_accepted,
    assert_flags_known,
    load_yaml_documents,
    pyproject,
    require_file,
)

# --------------------------------------------------------------------------------------------
# Kubernetes


def kustomization(directory: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((directory / "kustomization.yaml").read_text())
    return loaded


def kustomize_objects(directory: Path) -> list[dict[str, Any]]:
    """A faithful-enough reading of a kustomization without kustomize: its resources
    (recursively), less what `$patch: delete` patches remove. kubectl kustomize is the real
    build, checked separately; this one also runs where kubectl is missing and names the file
    that is wrong."""
    objects: list[dict[str, Any]] = []
    spec = kustomization(directory)
    for resource in spec.get("resources", []):
        path = (directory / resource).resolve()
        if path.is_dir():
            objects.extend(kustomize_objects(path))
        else:
            if not path.is_file() and path.name in GENERATED:
                pytest.fail(f"{path.relative_to(REPO)} is missing: run {GENERATE_COMMAND}")
            assert path.is_file(), f"{directory / 'kustomization.yaml'}: {resource} is missing"
            objects.extend(load_yaml_documents(path))
    for patch in spec.get("patches", []):
        target = patch["target"]
        matches = [
            obj
            for obj in objects
            if obj["kind"] == target["kind"]
            and obj["metadata"]["name"] == target["name"]
            and obj["apiVersion"].split("/")[-1] == target.get("version", obj["apiVersion"])
        ]
        assert len(matches) == 1, f"{directory}: patch target {target} matches {len(matches)}"
        if "$patch: delete" in patch.get("patch", ""):
            objects.remove(matches[0])
    return objects


def kubectl_kustomize(directory: Path) -> list[dict[str, Any]]:
    kubectl = require_tool("kubectl")
    require_generated()
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"kubectl kustomize {directory}:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@cache
def generate_check() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GENERATE), "--check"], capture_output=True, text=True, cwd=REPO
    )


def require_generated() -> None:
    """The generated manifests exist (whether they are current is one test of its own)."""
    require_file(RULES_FILE)
    require_file(DASHBOARDS_DIR)
    for name in sorted(GENERATED):
        if not (BASE / name).is_file():
            pytest.fail(f"deploy/kubernetes/base/{name} is missing: run {GENERATE_COMMAND}")


def test_generated_manifests_are_up_to_date() -> None:
    require_generated()
    result = generate_check()
    if result.returncode != 0:
        pytest.fail(f"deploy/kubernetes/generate.py --check: {result.stderr.strip()}")


@pytest.mark.parametrize("directory", [BASE, SHARDED], ids=["base", "sharded"])
def test_kustomize_build(directory: Path) -> None:
    built = kubectl_kustomize(directory)
    expected = kustomize_objects(directory)
    identity = [(o["kind"], o["metadata"]["name"]) for o in built]
    assert sorted(identity) == sorted((o["kind"], o["metadata"]["name"]) for o in expected)
    assert len(set(identity)) == len(identity)
    for obj in built:
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "openai-key-exporter"


@pytest.mark.parametrize("directory", [BASE, SHARDED], ids=["base", "sharded"])
def test_kustomization_resources_and_patch_targets_exist(directory: Path) -> None:
    kinds = {obj["kind"] for obj in kustomize_objects(directory)}
    workload = "Deployment" if directory == BASE else "StatefulSet"
    assert {workload, "Service", "ConfigMap", "ServiceMonitor", "PrometheusRule"} <= kinds
    assert ({"Deployment", "StatefulSet"} - {workload}).isdisjoint(kinds)


def core_objects() -> Iterator[tuple[str, dict[str, Any]]]:
    for directory in (BASE, SHARDED):
        for obj in kubectl_kustomize(directory):
            if not obj["apiVersion"].startswith("monitoring.coreos.com/"):
                yield f"{directory.relative_to(KUBERNETES)}: {obj['kind']}", obj
    for doc in load_yaml_documents(BASE / "secret.example.yaml"):
        yield "base/secret.example.yaml", doc


def test_core_objects_pass_the_kubernetes_schemas() -> None:
    version = kubernetes_validate.latest_version()
    checked = 0
    for where, obj in core_objects():
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{where} {obj['metadata']['name']}: {error.message} at {error.path}")
        checked += 1
    assert checked >= 8


def workload(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [obj for obj in objects if obj["kind"] == kind]
    assert len(found) == 1, kind
    return found[0]


@pytest.mark.parametrize(
    ("directory", "kind"), [(BASE, "Deployment"), (SHARDED, "StatefulSet")], ids=["base", "sharded"]
)
def test_workload_is_hardened_and_probed(directory: Path, kind: str) -> None:
    pod = workload(kustomize_objects(directory), kind)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    for kind_of in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind_of])
    assert container["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
    assert container["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    (port,) = container["ports"]
    assert port["containerPort"] == EXPORTER_PORT
    assert f"--web.listen-address=:{EXPORTER_PORT}" in container["args"]
    assert_flags_known(container["args"], f"{directory.relative_to(KUBERNETES)} {kind} args")


def test_image_tags_follow_the_package_version() -> None:
    version = pyproject()["project"]["version"]
    for directory in (BASE, SHARDED):
        images = kustomization(directory)["images"]
        assert images == [{"name": "openai-key-exporter", "newTag": version}], directory


def test_configmap_config_is_accepted_and_its_keys_are_in_the_secret(tmp_path: Path) -> None:
    objects = kustomize_objects(BASE)
    deployment = workload(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mount_paths = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    configmap = next(
        o
        for o in objects
        if o["kind"] == "ConfigMap"
        and o["metadata"]["name"] == volumes["config"]["configMap"]["name"]
    )
    config_flag = next(a for a in container["args"] if a.startswith("--config.file="))
    config_path = PurePosixPath(config_flag.split("=", 1)[1])
    assert str(config_path.parent) == mount_paths["config"]
    text = configmap["data"][config_path.name]

    (secret,) = load_yaml_documents(BASE / "secret.example.yaml")
    assert secret["metadata"]["name"] == volumes["keys"]["secret"]["secretName"]
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    for entry, value in secret["stringData"].items():
        (keys_dir / entry).write_text(value)
    assert_config_accepted(text, "base/configmap.yaml", {mount_paths["keys"]: keys_dir})
    for path in re.findall(r"api_key_file:\s*(\S+)", text):
        assert PurePosixPath(path).parent == PurePosixPath(mount_paths["keys"])
        assert PurePosixPath(path).name in secret["stringData"], path


def test_sharded_overlay_splits_keys_over_its_replicas() -> None:
    base = workload(kustomize_objects(BASE), "Deployment")
    objects = kustomize_objects(SHARDED)
    statefulset = workload(objects, "StatefulSet")
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    totals = [a.split("=", 1)[1] for a in container["args"] if a.startswith("--shard.total=")]
    assert totals == [str(statefulset["spec"]["replicas"])], (
        "statefulset.yaml: --shard.total must equal spec.replicas"
    )
    assert statefulset["spec"]["replicas"] > 1
    # The index comes from the pod's hostname ordinal, never a fixed flag shared by all pods.
    assert not any(a.startswith("--shard.index") for a in container["args"])
    # Same pod as the Deployment but for the shard flag, so the two never drift apart.
    sharded_pod = json.loads(json.dumps(statefulset["spec"]["template"]))
    sharded_pod["spec"]["containers"][0]["args"] = [
        a for a in container["args"] if not a.startswith("--shard.")
    ]
    assert sharded_pod == base["spec"]["template"]
    service = next(o for o in objects if o["kind"] == "Service")
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["selector"] == statefulset["spec"]["selector"]["matchLabels"]


def test_sharded_build_has_a_headless_service() -> None:
    service = next(o for o in kubectl_kustomize(SHARDED) if o["kind"] == "Service")
    assert service["spec"]["clusterIP"] == "None"


def test_service_monitor_scrapes_the_service_port() -> None:
    objects = kustomize_objects(BASE)
    monitor = workload(objects, "ServiceMonitor")
    service = workload(objects, "Service")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"


def prometheus_rule() -> dict[str, Any]:
    require_generated()
    return workload(load_yaml_documents(BASE / "prometheusrule.yaml"), "PrometheusRule")


def test_prometheus_rule_holds_the_same_rules_as_alerts() -> None:
    rules = yaml.safe_load(require_file(RULES_FILE).read_text(encoding="utf-8"))
    assert prometheus_rule()["spec"]["groups"] == rules["groups"]


def test_prometheus_rule_passes_promtool(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    rule_file = tmp_path / "rules.yml"
    rule_file.write_text(yaml.safe_dump(prometheus_rule()["spec"]))
    result = subprocess.run(
        [promtool, "check", "rules", str(rule_file)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_key_alerts_aggregate_by_key_so_sharding_cannot_split_them() -> None:
    """With keys spread over replicas, and moving between them when N changes, an alert about
    a key must not carry the replica's labels, or one key fires once per pod it passed by."""
    for group in prometheus_rule()["spec"]["groups"]:
        for rule in group["rules"]:
            # Series of the per-key metrics (openai_probe_*, openai_key_*) carry a key label.
            if "alert" not in rule or not re.search(r"\bopenai_(probe|key)_", rule["expr"]):
                continue
            expr = rule["expr"]
            groupings = re.findall(r"\bby\s*\(([^)]*)\)", expr)
            assert groupings, f"{rule['alert']}: aggregate by key (e.g. max by (key, probe))"
            for labels in groupings:
                names = {label.strip() for label in labels.split(",")}
                assert "key" in names or "le" in names, f"{rule['alert']}: by ({labels})"
                assert names.isdisjoint({"instance", "pod"}), f"{rule['alert']}: by ({labels})"
            assert "without" not in expr, f"{rule['alert']}: use `by (key, ...)`, not without"


def test_dashboard_configmaps_hold_every_dashboard() -> None:
    require_generated()
    configmaps = load_yaml_documents(BASE / "grafana-dashboards.yaml")
    files = sorted(DASHBOARDS_DIR.glob("*.json"))
    assert len(configmaps) == len(files)
    held = {}
    for configmap in configmaps:
        assert configmap["kind"] == "ConfigMap"
        assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
        held.update(configmap["data"])
    assert sorted(held) == [path.name for path in files]
    for path in files:
        assert held[path.name] == path.read_text(encoding="utf-8"), (
            f"grafana-dashboards.yaml holds an old {path.name}: run {GENERATE_COMMAND}"
        )
    for text in held.values():
        json.loads(text)
        # Client-side `kubectl apply` keeps a copy in an annotation limited to 256 KiB.
        assert len(text.encode()) < 256 * 1024
