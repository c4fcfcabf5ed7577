"""bench.plain_forms, tiny (200 keys, one sample each), so the comparison of each hand-written
mechanism with its plain form never rots: every row printed, every cell a number."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.harness import REPO

NUMBER = r"\d+\.\d+(?: \(\d+\.\d+-\d+\.\d+\))?"
TINY = ("--keys", "200", "--repeats", "1", "--rounds", "1")
ROWS = (
    ("deflated segments", "CPU per gzip scrape"),
    ("deflated segments", "gzip body"),
    ("deflated segments", "CPU per 15 s: updates"),
    ("deflated segments", "CPU per plain scrape"),
    ("deflated segments", "exposition held when a scrape comes"),
    ("deflated segments", "a gzip scrape's transient peak above held"),
    ("deflated segments", "a plain scrape's transient peak above held"),
    ("Readings", "store after 15 s, 200 keys x 2 probes"),
    ("Readings", "CPU per 15 s of results"),
    ("Readings", "CPU to render all 200 keys"),
    ("copied YAML strings", "VmRSS after loading 200 keys + gc"),
    ("copied YAML strings", "VmRSS growth over before loading"),
    *(
        (f"scrape buffer vs {plain}", f"{measured}, {kind} exposition")
        for plain in ("one joined body", "each block written")
        for kind in ("plain", "gzipped")
        for measured in ("p50 of 20 scrapes", "peak RSS above served state")
    ),
)


def test_every_mechanism_is_measured_against_its_plain_form() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.plain_forms", *TINY],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    lines = [line for line in run.stdout.splitlines() if line.startswith("| ")][1:]
    assert len(lines) == len(ROWS), run.stdout
    for mechanism, measured in ROWS:
        row = next((line for line in lines if line.startswith(f"| {mechanism} | {measured}")), None)
        assert row is not None, (mechanism, measured, run.stdout)
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        ours, plain, ratio, samples, verdict = cells[2:]
        assert re.fullmatch(NUMBER, ours) and re.fullmatch(NUMBER, plain), row
        assert re.fullmatch(r"\d+\.\d+x", ratio), row
        assert samples == "1", row
        assert verdict in ("gain", "loss", "noise"), row
