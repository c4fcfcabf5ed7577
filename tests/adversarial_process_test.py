"""The issue 22 reproductions against a running exporter process: a key file swapped for a FIFO
and an alias bomb sent by SIGHUP leave /-/healthy and /metrics answering within a second,
memory flat, and the key reported as key_missing saying what its path is."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx

from exporter.simulator import make_key
from tests.harness import free_port, start_exporter_process, write_config, write_key
from tests.support.sockets import proc_status_kb
from tests.support.yaml_bomb import bomb

# /-/healthy froze for about 60 s on a bomb, and for ever on a FIFO; the margin is for a CPU
# shared with other tests.
ANSWER_S = 1.0


def slowest_answer(url: str, seconds: float) -> float:
    """The slowest /-/healthy and /metrics answer while polling for `seconds`."""
    slowest = 0.0
    deadline = time.monotonic() + seconds
    with httpx.Client(timeout=10) as client:
        while time.monotonic() < deadline:
            for path in ("/-/healthy", "/metrics"):
                started = time.monotonic()
                assert client.get(f"{url}{path}").status_code == 200
                slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.05)
    return slowest


def test_a_fifo_key_file_and_a_bomb_on_sighup_leave_the_exporter_answering(tmp_path: Path) -> None:
    key_file = write_key(tmp_path, "web", make_key("ok"))
    unreachable = f"http://127.0.0.1:{free_port()}/v1"  # probes fail fast: connection refused
    config = write_config(
        tmp_path / "exporter.yml",
        unreachable,
        [{"name": "web", "api_key_file": str(key_file)}],
        interval="1s",
        timeout="500ms",
        probes=("rest",),
    )
    exporter, url = start_exporter_process(config, tmp_path)
    assert exporter.popen is not None
    try:
        key_file.unlink()
        os.mkfifo(key_file, 0o600)
        assert slowest_answer(url, 3.0) < ANSWER_S
        metrics = httpx.get(f"{url}/metrics").text
        assert 'openai_probe_result{key="web",probe="rest",result="key_missing"} 1' in metrics
        assert "is a FIFO, not a file" in exporter.output()

        rss_before = proc_status_kb(exporter.popen.pid, "VmRSS")
        config.write_text(
            f"defaults:\n  interval: {bomb()}\nkeys:\n  - {{name: web, api_key_env: K}}\n"
        )
        exporter.signal(signal.SIGHUP)
        assert slowest_answer(url, 2.0) < ANSWER_S
        rss_after = proc_status_kb(exporter.popen.pid, "VmRSS")
        assert rss_after - rss_before < 8 * 1024, (rss_before, rss_after)
        log = exporter.output()
        assert "aliases expand to more than 10000 values" in log
        assert max(len(line) for line in log.splitlines()) < 2000
    finally:
        exporter.stop()
