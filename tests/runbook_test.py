"""The runbook, in English and French: one section per alert and per result class, with the same
stable anchors in both languages, and no command that prints a key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from exporter.classify import RESULTS
from tests.support.runbook import _ANCHOR, RUNBOOK_EN, RUNBOOK_FR, RUNBOOKS, anchors, sections

# Sections the alerts and the dashboards link to beyond the result classes.
ALERT_ANCHORS = {
    "checklist",
    "realtime-refused",
    "latency-high",
    "probes-stale",
    "exporter-down",
    "key-format-issue",
    "probe-failing",
    "application-restart",
}
# Every troubleshooting section says these things, in this order (section markers per language).
SECTION_PARTS = {
    RUNBOOK_EN: ["**Meaning**", "**Confirm**", "**Causes**", "**Fix**", "**Verify**"],
    RUNBOOK_FR: [
        "**Signification**",
        "**Confirmer**",
        "**Causes**",
        "**Corriger**",
        "**Vérifier**",
    ],
}
# Sections that are not the troubleshooting of one alert or class.
GENERAL_SECTIONS = {"checklist", "by-hand", "alerts"}


def _class_anchors() -> set[str]:
    return {info.runbook_anchor for info in RESULTS.values() if info.runbook_anchor}


@pytest.mark.parametrize("path", RUNBOOKS, ids=lambda p: p.name)
def test_every_result_class_has_a_section(path: Path) -> None:
    missing = _class_anchors() - set(anchors(path))
    assert not missing, f"{path.name} lacks sections {sorted(missing)}"


@pytest.mark.parametrize("path", RUNBOOKS, ids=lambda p: p.name)
def test_every_alert_section_exists(path: Path) -> None:
    missing = ALERT_ANCHORS - set(anchors(path))
    assert not missing, f"{path.name} lacks sections {sorted(missing)}"


def test_both_languages_have_the_same_anchors_in_the_same_order() -> None:
    assert anchors(RUNBOOK_EN) == anchors(RUNBOOK_FR)


@pytest.mark.parametrize("path", RUNBOOKS, ids=lambda p: p.name)
def test_anchors_are_unique_and_sit_on_the_line_before_a_heading(path: Path) -> None:
    names = anchors(path)
    assert len(names) == len(set(names)), "duplicate anchors"
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if _ANCHOR.match(line.strip()):
            following = lines[number + 1] if number + 1 < len(lines) else ""
            assert following.startswith("#"), f"{path.name}:{number + 1}: no heading after anchor"


@pytest.mark.parametrize("path", RUNBOOKS, ids=lambda p: p.name)
def test_each_troubleshooting_section_has_every_part(path: Path) -> None:
    for anchor, text in sections(path).items():
        if anchor in GENERAL_SECTIONS:
            continue
        positions = [text.find(part) for part in SECTION_PARTS[path]]
        assert all(p >= 0 for p in positions), f"{path.name}#{anchor}: missing parts"
        assert positions == sorted(positions), f"{path.name}#{anchor}: parts out of order"


@pytest.mark.parametrize("path", RUNBOOKS, ids=lambda p: p.name)
def test_no_command_prints_a_key(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    # No full key, only redacted forms such as sk-proj-...sQoA.
    assert not re.search(r"sk-[A-Za-z0-9_-]{20,}", text)
    for line in text.splitlines():
        # The key never goes on a command line (visible in ps and in shell history)...
        assert not re.search(r"Bearer \$(\{?OPENAI|\{?KEY)", line), line
        # ...and is never echoed or shown whole.
        assert not re.search(r"\b(echo|printf)\b[^|]*\$\{?OPENAI_API_KEY", line), line
        assert not re.search(r"\bcat\b[^|$]*\.env\s*$", line), line
        assert not re.search(r"grep [^|]*OPENAI_API_KEY[^|]*\.env\s*$", line), line
    curls = [line for line in text.splitlines() if line.lstrip().startswith("curl ")]
    assert curls, "the runbook shows no curl test"
    for line in curls:
        assert "-H @" in line or "--header @" in line, f"curl must read its header: {line}"
