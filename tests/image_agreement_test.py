"""The compose stack and the Kubernetes manifests run the image exactly as the Dockerfile builds
it: its entrypoint, its user, its port, a read-only root, and its health check, at the address
the exporter listens on. tests/container_test.py proves the Dockerfile's own promises on the
built image; these tests hold the deployments to the same promises, read from the Dockerfile
(tests/image_spec.py)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.cli import parse_listen_address
from tests.image_spec import ImageSpec, read_spec
from tests.support.deploy import REPO

COMPOSE_DIR = REPO / "deploy" / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
KUBERNETES = REPO / "deploy" / "kubernetes"
WORKLOADS = [
    KUBERNETES / "base" / "deployment.yaml",
    KUBERNETES / "overlays" / "sharded" / "statefulset.yaml",
]
IMAGE_NAME = "openai-key-exporter"  # the name kustomize's `images:` retags


@cache
def spec() -> ImageSpec:
    return read_spec()


@cache
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return loaded


def services_built_from_the_dockerfile() -> dict[str, dict[str, Any]]:
    found = {}
    for name, service in compose()["services"].items():
        build = service.get("build")
        if not build:
            continue
        context = (COMPOSE_DIR / build["context"]).resolve()
        if context == REPO and build.get("dockerfile", "Dockerfile") == "Dockerfile":
            found[name] = service
    return found


def listen_port(arguments: list[str], default: int) -> int:
    flags = [a for a in arguments if a.startswith("--web.listen-address")]
    if not flags:
        return default
    (flag,) = flags
    _, port = parse_listen_address(flag.split("=", 1)[1])
    return port


def test_compose_builds_the_dockerfile_for_every_exporter_service() -> None:
    services = services_built_from_the_dockerfile()
    assert {"exporter", "exporter-demo", "simulator"} <= set(services)
    images = {service.get("image") for service in services.values()}
    assert len(images) == 1, f"services built from the Dockerfile tag different images: {images}"


@pytest.mark.parametrize("name", sorted(services_built_from_the_dockerfile()))
def test_compose_service_runs_the_image_as_built(name: str) -> None:
    service = services_built_from_the_dockerfile()[name]
    image = spec()
    where = f"compose.yaml services.{name}"
    assert "entrypoint" not in service, f"{where} replaces the image's ENTRYPOINT"
    assert isinstance(service.get("command"), list), f"{where}: give the exporter's arguments"
    user = str(service.get("user", f"{image.uid}:{image.gid}"))
    assert user == f"{image.uid}:{image.gid}", f"{where}.user {user}: the image runs as USER"
    assert service.get("read_only") is True, f"{where}: the image is built to run read-only"
    command = service["command"]
    if command and not command[0].startswith("-"):
        # A subcommand (simulate) listens elsewhere, so the image's check cannot see it: it must
        # say so by disabling the check rather than report an unhealthy container.
        assert service.get("healthcheck") == {"disable": True}, where
        return
    assert "healthcheck" not in service, f"{where} replaces the image's HEALTHCHECK"
    port = listen_port(command, image.healthcheck_port)
    environment = service.get("environment", {})
    url = environment.get("HEALTHCHECK_URL", image.healthcheck_url)
    assert url.endswith(f":{port}{image.healthcheck_path}"), (
        f"{where} listens on {port} but the image's health check asks {url}: "
        "set HEALTHCHECK_URL to match"
    )
    published = [str(p).rsplit(":", 1)[-1] for p in service.get("ports", [])]
    assert published == [str(port)], f"{where} publishes {published}, listens on {port}"
    assert port in image.exposed_ports, f"{where} listens on {port}, the image EXPOSEs another"


def workload_container(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    (workload,) = yaml.safe_load_all(path.read_text(encoding="utf-8"))
    pod = workload["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return pod, container


@pytest.mark.parametrize("path", WORKLOADS, ids=lambda p: p.relative_to(KUBERNETES).as_posix())
def test_kubernetes_workload_runs_the_image_as_built(path: Path) -> None:
    image = spec()
    pod, container = workload_container(path)
    where = path.relative_to(REPO).as_posix()
    assert container["image"] == IMAGE_NAME, where
    assert "command" not in container, f"{where} replaces the image's ENTRYPOINT"
    for context in (pod["securityContext"], container["securityContext"]):
        if "runAsUser" in context:
            assert context["runAsUser"] == image.uid, f"{where}: the image runs as {image.uid}"
        if "runAsGroup" in context:
            assert context["runAsGroup"] == image.gid, f"{where}: the image runs as {image.gid}"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    port = listen_port(container["args"], image.healthcheck_port)
    (declared,) = container["ports"]
    assert declared["containerPort"] == port, f"{where} declares {declared}, listens on {port}"
    assert port in image.exposed_ports, f"{where} listens on {port}, the image EXPOSEs another"
    env = {item["name"]: item.get("value") for item in container.get("env", [])}
    url = env.get("HEALTHCHECK_URL") or image.healthcheck_url
    assert url.endswith(f":{port}{image.healthcheck_path}"), where


@pytest.mark.parametrize("path", WORKLOADS, ids=lambda p: p.relative_to(KUBERNETES).as_posix())
def test_kubernetes_liveness_is_the_images_health_check(path: Path) -> None:
    """Kubernetes ignores HEALTHCHECK; its liveness probe asks the same path on the same
    schedule, so a pod restarts when Docker would call the container unhealthy."""
    check = spec().healthcheck
    _, container = workload_container(path)
    liveness = container["livenessProbe"]
    assert liveness["httpGet"]["path"] == spec().healthcheck_path
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    port = liveness["httpGet"]["port"]
    assert named.get(port, port) == listen_port(container["args"], spec().healthcheck_port)
    assert liveness["periodSeconds"] == check.interval_s
    assert liveness["timeoutSeconds"] == check.timeout_s
    assert liveness["failureThreshold"] == check.retries
    # HEALTHCHECK's start period: failures do not count yet. A startup budget of at least as
    # long (initialDelaySeconds, or the failures allowed) keeps a slow start from a restart.
    budget = liveness.get("initialDelaySeconds", 0) + check.retries * check.interval_s
    assert budget >= check.start_period_s


def test_the_image_spec_reads_the_dockerfile() -> None:
    """The spec these tests compare against is the Dockerfile's, not a copy of it."""
    image = spec()
    assert image.entrypoint == ["openai-key-exporter"]
    assert image.uid != 0
    assert image.healthcheck_path == "/-/healthy"
    assert image.healthcheck_port in image.exposed_ports
    assert image.from_images == ["${BASE_IMAGE}"] * len(image.from_images)
    assert image.base_image_default.startswith("debian:")
