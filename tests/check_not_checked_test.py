"""`check` never ticks what it did not check: each item names what proved it, and items no
configured probe can prove say `not checked` with the reason, in text and JSON."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from exporter.simulator import make_key
from tests.harness import write_config, write_key

PROVERS = {"source", "lint", "rest", "realtime", "inference"}
REALTIME_ITEMS = ("Realtime session opened", "Realtime permission", "Realtime model accepted")


def run_check(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", "check", "--config.file", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _config(tmp_path: Path, simulator: str) -> Path:
    entries = [
        {
            "name": "rest-only",
            "api_key_file": str(write_key(tmp_path, "rest-only", make_key("ok", seed="r"))),
            "probes": ["rest"],
        },
        {
            "name": "both",
            "api_key_file": str(write_key(tmp_path, "both", make_key("ok", seed="b"))),
        },
    ]
    return write_config(tmp_path / "config.yml", simulator, entries)


def test_text_names_every_prover_and_says_not_checked(simulator: str, tmp_path: Path) -> None:
    checked = run_check(_config(tmp_path, simulator))
    assert checked.returncode == 0, checked.stdout + checked.stderr  # not checked never fails
    lines = checked.stdout.splitlines()
    rest_only = lines[lines.index("rest-only: healthy") + 1 : lines.index("")]
    for title in REALTIME_ITEMS:
        (line,) = [line for line in rest_only if title in line]
        assert line.lstrip().startswith("[-] "), line
        assert line.endswith(": not checked: the realtime probe is not configured for this key")
    (credit,) = [line for line in rest_only if "Credit left" in line]
    assert credit.endswith("not checked: enable the inference probe: no free call sees credit")
    for line in rest_only:
        if line.lstrip().startswith("[x]"):
            assert re.search(r"\[by (reading its source|the lint|the \w+ probe)", line), line
    (inference,) = [line for line in rest_only if "Inference answered" in line]
    assert inference.endswith("not checked: the inference probe is not configured for this key")
    # rest-only: 3 Realtime items, inference, credit and the restart; both: inference, credit
    # and the restart (nothing sees the application's processes).
    assert lines[-1] == "2 of 2 keys healthy, 9 items not checked", lines[-1]


def test_json_marks_items_checked_false_with_the_reason(simulator: str, tmp_path: Path) -> None:
    checked = run_check(_config(tmp_path, simulator), "--output", "json")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    document = json.loads(checked.stdout)
    assert document["not_checked"] == 9
    reports = {report["name"]: report for report in document["keys"]}
    for name, report in reports.items():
        for item in report["checklist"]:
            assert item["probe"] in PROVERS, item
            if item["checked"]:
                assert item["status"] != "not_checked", item
                if item["probe"] not in report["probes"]:
                    assert item["probe"] in {"source", "lint"}, item
            else:
                assert item["status"] == "not_checked" and item["detail"], item
        statuses = {item["item"].split(" (")[0]: item for item in report["checklist"]}
        realtime = statuses["Realtime session opened"]
        if name == "rest-only":
            assert realtime["checked"] is False
            assert realtime["detail"] == "the realtime probe is not configured for this key"
        else:
            assert realtime == {**realtime, "checked": True, "status": "pass", "probe": "realtime"}
        credit = statuses["Credit left"]
        assert (credit["checked"], credit["probe"]) == (False, "inference")


def test_credit_is_proven_by_the_inference_probe(simulator: str, tmp_path: Path) -> None:
    entries = [
        {
            "name": name,
            "api_key_file": str(write_key(tmp_path, name, make_key(scenario, seed=name))),
            "probes": ["rest", "inference"],
        }
        for name, scenario in (("paid", "ok"), ("broke", "insufficient_quota"))
    ]
    checked = run_check(write_config(tmp_path / "config.yml", simulator, entries))
    assert checked.returncode == 1, checked.stdout + checked.stderr
    lines = checked.stdout.splitlines()
    (paid,) = [line for line in lines[: lines.index("")] if "Credit left" in line]
    assert paid.lstrip().startswith("[x] Credit left: ok, HTTP 200")
    assert paid.endswith("[by the inference probe]")
    broke = checked.stdout.split("broke: FAILING", 1)[1]
    assert "[ ] Credit left: insufficient_quota, HTTP 429" in broke
    assert "[x] REST accepted (GET /v1/models): ok" in broke  # the free call cannot see it
    assert "result: insufficient_quota" in broke
