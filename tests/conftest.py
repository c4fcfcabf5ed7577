"""Shared test fixtures: locating external tools, and IPv6, the way CI demands."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator

import pytest

from tests.harness import start_simulator_process


def require_tool(name: str) -> str:
    """Path of an external tool; in CI a missing tool fails the test, elsewhere it skips."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed (the README test command installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def require_ipv6_loopback() -> None:
    """In CI a machine without an IPv6 loopback (::1) fails the test, elsewhere it skips."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return
    except OSError:
        pass
    message = "this machine has no IPv6 loopback (::1)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One simulator for the module; returns its base URL (`http://127.0.0.1:PORT/v1`)."""
    process, base_url = start_simulator_process(tmp_path_factory.mktemp("simulator"))
    try:
        yield base_url
    finally:
        process.stop()
