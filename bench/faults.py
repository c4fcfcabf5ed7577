"""Scrape latency while every probe fault happens at once: the figure the fault-matrix test
printed and no longer asserts (a shared machine moves it; an assert on it proved nothing).

    .venv/bin/python -m bench.faults [--keys 50] [--seconds 15]

The simulator and the exporter as processes on loopback, the keys round-robin over the faults
below, probed every 3 s with a 1 s timeout; /metrics scraped every 20 ms over one keep-alive
connection (bench.measure.Scraper). Prints p50, p95 and max in ms, and how many scrapes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml

from bench.measure import Scraper, percentile
from bench.processes import Fleet, start_exporter, start_simulator, wait_ready
from exporter.simulator import make_key
from tests.harness import write_key

# Probes that hang, reset, stream without end, drip, answer garbage or drop the WebSocket.
FAULTS = (
    ("hang", None),
    ("hang_body", None),
    ("reset", None),
    ("endless", None),
    ("drip", 900),
    ("slow", 900),
    ("non_json", None),
    ("html_200", None),
    ("rt_silent", None),
    ("rt_drop", None),
    ("server_error", None),
    ("ok", None),
)


def run(keys: int, seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as scratch:
        workdir = Path(scratch)
        simulator = start_simulator(workdir, None)
        names, values, entries = [], [], []
        for index in range(keys):
            scenario, arg = FAULTS[index % len(FAULTS)]
            name = f"{scenario}-{index}"
            key = make_key(scenario, arg, seed=name)
            names.append(name)
            values.append(key)
            entries.append({"name": name, "api_key_file": str(write_key(workdir, name, key))})
        config = workdir / "faults.yml"
        defaults = {
            "base_url": simulator.base_url,
            "interval": "3s",
            "timeout": "1s",
            "retry_interval": "3s",
            "probes": ["rest", "realtime"],
            "realtime": {"interval": "3s"},
        }
        config.write_text(yaml.safe_dump({"defaults": defaults, "keys": entries}))
        exporter = start_exporter(workdir, Fleet(names, values, config))
        try:
            wait_ready(exporter, 60.0)
            scraper = Scraper(f"{exporter.url}/metrics")
            timings: list[float] = []
            deadline = time.monotonic() + seconds
            try:
                while time.monotonic() < deadline:
                    timings.append(scraper.scrape()[0])
                    time.sleep(0.02)
            finally:
                scraper.close()
        finally:
            exporter.process.stop()
            simulator.process.stop()
    return {
        "scrapes": len(timings),
        "p50_ms": percentile(timings, 0.5) * 1000,
        "p95_ms": percentile(timings, 0.95) * 1000,
        "max_ms": max(timings) * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--keys", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    figures = run(args.keys, args.seconds)
    print(
        f"| /metrics while {args.keys} keys hit every fault | {figures['scrapes']:.0f} scrapes | "
        f"p50 {figures['p50_ms']:.1f} ms, p95 {figures['p95_ms']:.1f} ms, "
        f"max {figures['max_ms']:.1f} ms |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
