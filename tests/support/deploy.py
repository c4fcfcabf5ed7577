"""The deployment files and the exporter's own view of them (its flags, its config parser), for
the deploy tests."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
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


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """The Dockerfile's (INSTRUCTION, arguments) pairs, continuations joined, comments dropped."""
    joined: list[str] = []
    pending = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
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


@cache
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return loaded


def compose_mounts(service: dict[str, Any]) -> Iterator[tuple[Path, str]]:
    """(host path, container path) of each bind mount of a service."""
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume.get("source", ""), volume["target"]
        if source.startswith((".", "/")):
            yield (COMPOSE_DIR / source).resolve(), target


def container_config(service: dict[str, Any]) -> Path:
    config_flag = next(arg for arg in service["command"] if arg.startswith("--config.file="))
    container_path = config_flag.split("=", 1)[1]
    mounts = {target: host for host, target in compose_mounts(service)}
    assert container_path in mounts, f"--config.file={container_path} is not mounted"
    return mounts[container_path]
