"""The benchmark, tiny: 20 keys, both probes, TLS and plain, blackbox beside it, so it never rots."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import require_tool
from tests.harness import REPO


def test_benchmark_smoke_run_writes_the_table(tmp_path: Path) -> None:
    blackbox = require_tool("prometheus-blackbox-exporter")
    report = tmp_path / "performance.md"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--output", str(report), "--blackbox", blackbox],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    text = report.read_text()
    for measure in (
        "1. /metrics latency, 20 keys",
        "2. CPU s / 1000 REST probes, TLS, blackbox",
        "2. CPU s / 1000 REST probes, TLS, ours, default reuse",
        "2. CPU s / 1000 Realtime probes, TLS, ours",
        "3. measured - injected 50 ms, ours, reused connection (second probe)",
        "3. measured - injected 50 ms, ours, first probe's request",
        "3. measured - injected 50 ms, ours, first probe whole",
        "3. measured - injected 50 ms, blackbox",
        "3. the simulator's own lateness",
        "3. the client's own error: measured - the simulator's answer time, ours, reused",
        "3. the client's own error: measured - the simulator's answer time, blackbox",
        "4. upstream requests per key in the interval of the hammering",
        "5. peak RSS, 20 keys",
        "6. launch to /-/healthy, 20 keys",
    ):
        assert measure in text, measure
    results = text.split("## Results")[1].split("## Reading")[0]
    assert not re.search(r"\bnan\b", results), results  # every measure got numbers
    assert "(phase failed)" not in results, results
    assert "## Machine" in text and "Python" in text
