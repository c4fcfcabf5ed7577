"""What the Dockerfile promises about the image it builds, read from the Dockerfile itself: the
one description that the built image (container_test.py) and the compose stack and Kubernetes
manifests (image_agreement_test.py) are held to."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tests.support.deploy import DOCKERFILE, dockerfile_instructions

_DURATION = re.compile(r"(\d+)s")


def _seconds(flags: dict[str, str], name: str) -> int:
    match = _DURATION.fullmatch(flags[name])
    assert match, f"HEALTHCHECK --{name}={flags[name]}: expected whole seconds (30s)"
    return int(match.group(1))


@dataclass(frozen=True)
class Healthcheck:
    command: list[str]
    interval_s: int
    timeout_s: int
    start_period_s: int
    retries: int


@dataclass(frozen=True)
class ImageSpec:
    base_image_default: str
    from_images: list[str]
    uid: int
    gid: int
    entrypoint: list[str]
    cmd: list[str] | None
    exposed_ports: list[int]
    env: dict[str, str]
    healthcheck: Healthcheck

    @property
    def healthcheck_url(self) -> str:
        return self.env["HEALTHCHECK_URL"]

    @property
    def healthcheck_port(self) -> int:
        port = urlsplit(self.healthcheck_url).port
        assert port is not None, f"HEALTHCHECK_URL {self.healthcheck_url} names no port"
        return port

    @property
    def healthcheck_path(self) -> str:
        return urlsplit(self.healthcheck_url).path


def _env(arguments: str) -> dict[str, str]:
    pairs = shlex.split(arguments)
    return dict(pair.split("=", 1) for pair in pairs)


def read_spec(path: Path = DOCKERFILE) -> ImageSpec:
    steps = dockerfile_instructions(path)
    global_args = {}
    for name, arguments in steps:
        if name == "FROM":
            break
        if name == "ARG" and "=" in arguments:
            key, value = arguments.split("=", 1)
            global_args[key] = value
    from_images = [args.split()[0] for name, args in steps if name == "FROM"]
    last_from = max(i for i, (name, _) in enumerate(steps) if name == "FROM")
    final = steps[last_from:]

    def last(instruction: str) -> str:
        found = [args for name, args in final if name == instruction]
        assert found, f"the Dockerfile's final stage has no {instruction}"
        return found[-1]

    user, _, group = last("USER").partition(":")
    env: dict[str, str] = {}
    for name, arguments in final:
        if name == "ENV":
            env.update(_env(arguments))
    check_words = last("HEALTHCHECK").split(" CMD ", 1)
    flags = dict(word[2:].split("=", 1) for word in check_words[0].split() if word.startswith("--"))
    cmds = [args for name, args in final if name == "CMD"]
    return ImageSpec(
        base_image_default=global_args.get("BASE_IMAGE", ""),
        from_images=from_images,
        uid=int(user),
        gid=int(group or user),
        entrypoint=json.loads(last("ENTRYPOINT")),
        cmd=json.loads(cmds[-1]) if cmds else None,
        exposed_ports=[int(port.split("/")[0]) for port in last("EXPOSE").split()],
        env=env,
        healthcheck=Healthcheck(
            command=json.loads(check_words[1]),
            interval_s=_seconds(flags, "interval"),
            timeout_s=_seconds(flags, "timeout"),
            start_period_s=_seconds(flags, "start-period"),
            retries=int(flags["retries"]),
        ),
    )
