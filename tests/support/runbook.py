"""The runbooks, English and French, and their section anchors."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK_EN = ROOT / "docs" / "runbook.md"
RUNBOOK_FR = ROOT / "docs" / "runbook.fr.md"
RUNBOOKS = [RUNBOOK_EN, RUNBOOK_FR]
_ANCHOR = re.compile(r'^<a id="([a-z0-9-]+)"></a>$')


def anchors(path: Path) -> list[str]:
    """The `<a id="...">` anchors of a runbook, in order."""
    return [
        match.group(1)
        for line in path.read_text(encoding="utf-8").splitlines()
        if (match := _ANCHOR.match(line.strip()))
    ]


def sections(path: Path) -> dict[str, str]:
    """Each anchor of a runbook and its section's text, up to the next anchor."""
    found: dict[str, str] = {}
    current = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _ANCHOR.match(line.strip())
        if match:
            current = match.group(1)
            found[current] = ""
        elif current:
            found[current] += line + "\n"
    return found
