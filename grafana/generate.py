"""Writes the dashboards' JSON: `python -m grafana.generate` (run from the repository root)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from grafana import key_detail, overview, runbook

OUTPUT_DIR = Path(__file__).resolve().parent / "dashboards"
DASHBOARDS: dict[str, Callable[[str], Dashboard]] = {
    "overview.json": overview.build,
    "key-detail.json": key_detail.build,
}


def render(build: Callable[[str], Dashboard], runbook_url: str = runbook.RUNBOOK_URL) -> str:
    """The dashboard as committed: sorted keys, two-space indent, trailing newline."""
    return json.dumps(build(runbook_url).build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grafana.generate", description=__doc__)
    parser.add_argument(
        "--runbook-url",
        default=runbook.RUNBOOK_URL,
        help="the runbook's address in the dashboards' links: the exporter's --web.external-url "
        "followed by /runbook (default: %(default)s, the compose stack's exporter)",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=OUTPUT_DIR,
        help="where to write the JSON files (default: grafana/dashboards)",
    )
    args = parser.parse_args(argv)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    for filename, build in DASHBOARDS.items():
        path = args.output_dir / filename
        path.write_text(render(build, args.runbook_url), encoding="utf-8")
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
