"""The real `demo` command as a process, and the result each of its keys must show."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.harness import Process, exporter_command, free_port, wait_http
from tests.support.exporter_process import stop_cleanly
from tests.support.metrics import Scrape

# The demo's keys and what each must show: README's "keys in many states".
DEMO_RESULTS = {
    ("prod", "rest"): "ok",
    ("prod", "realtime"): "ok",
    ("voice-agent-beta", "realtime"): "api_shape_retired",
    # The demo's admin key lists every key but this one (a rejected key listed nowhere), and
    # `mistyped` with its head and tail (the value in its source is a wrong copy).
    ("revoked", "rest"): "key_revoked",
    ("revoked", "realtime"): "key_revoked",
    ("mistyped", "rest"): "invalid_api_key",
    ("restricted", "rest"): "insufficient_permissions",
    ("realtime-denied", "realtime"): "model_not_found",
    ("no-credit", "rest"): "ok",  # no free call sees credit
    ("no-credit", "inference"): "insufficient_quota",  # the opt-in billed probe does
    ("live-no-credit", "live"): "insufficient_quota",
    ("throttled", "rest"): "rate_limited",
    ("flaky-upstream", "rest"): "server_error",
    ("missing", "rest"): "key_missing",
}


# The demo's Azure OpenAI keys beside the OpenAI ones.
AZURE_DEMO_RESULTS = {
    ("azure-voice", "rest"): "ok",
    ("azure-voice", "realtime"): "ok",
    ("azure-rotated", "rest"): "invalid_api_key",
    ("azure-rotated", "realtime"): "invalid_api_key",
    ("azure-no-realtime", "rest"): "ok",
    ("azure-no-realtime", "realtime"): "model_not_found",
}


@contextmanager
def running_demo(tmp_path: Path) -> Iterator[tuple[Process, str]]:
    """The `demo` command, ready on a free loopback port: yields it and its URL; exits cleanly."""
    port = free_port()
    demo = Process(
        exporter_command("demo", "--web.listen-address", f"127.0.0.1:{port}"),
        tmp_path / "demo.log",
    ).start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/-/ready", timeout=60, process=demo)
        yield demo, url
    finally:
        stop_cleanly(demo)


def results_shown(
    metrics: Scrape, expected: dict[tuple[str, str], str]
) -> dict[tuple[str, str], str | None]:
    """The result the scrape shows for each (key, probe) pair of `expected`."""
    return {pair: metrics.result(*pair) for pair in expected}
