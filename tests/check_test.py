"""`openai-key-exporter check` as a real process against the simulator: exit codes, the
checklist and runbook link per result class, JSON output, colour, and no key in any output."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from exporter.classify import RESULTS, Result
from exporter.links import Links, default_external_url
from exporter.simulator import make_key
from tests.harness import (
    assert_no_secret,
    write_config,
    write_key,
)

PREFIXES = ("sk-proj-", "sk-svcacct-", "sk-admin-", "sk-")
CHECKLIST = (
    "Key read from its source",
    "Format: no stray spaces, quotes or line breaks",
    "REST accepted (GET /v1/models)",
    "Permissions (scopes, organization, project, region)",
    "Realtime session opened",
    "Realtime permission (the key may open sessions)",
    "Realtime model accepted",
    "Credit left",
)
ANSI = "\x1b["

# check runs without --web.external-url here: its links name this host, as the exporter would.
RUNBOOK_LINKS = Links(default_external_url(None, 10077))


@dataclass(frozen=True)
class Case:
    """A failing key: how it is made, and the result class `check` must name for it."""

    scenario: str
    result: Result
    rest: str  # probes.rest.result in --output json
    arg: int | None = None
    settings: tuple[tuple[str, Any], ...] = ()
    key_text: str | None = None  # "empty" or "inner-cr" for keys that are not simulator keys
    tls: bool = False


CASES: dict[str, Case] = {
    "invalid_api_key": Case("invalid_api_key", Result.INVALID_API_KEY, "invalid_api_key"),
    "account_deactivated": Case(
        "account_deactivated", Result.ACCOUNT_DEACTIVATED, "account_deactivated"
    ),
    "insufficient_permissions": Case(
        "missing_scopes", Result.INSUFFICIENT_PERMISSIONS, "insufficient_permissions"
    ),
    "mismatched_organization": Case(
        "mismatched_organization", Result.MISMATCHED_ORGANIZATION, "mismatched_organization"
    ),
    "mismatched_project": Case(
        "mismatched_project", Result.MISMATCHED_PROJECT, "mismatched_project"
    ),
    # Only the billed inference probe sees credit; REST answers ok.
    "insufficient_quota": Case(
        "insufficient_quota",
        Result.INSUFFICIENT_QUOTA,
        "ok",
        settings=(("probes", ["rest", "realtime", "inference"]),),
    ),
    "rate_limited": Case("rate_limited", Result.RATE_LIMITED, "rate_limited", arg=30),
    "unsupported_region": Case(
        "unsupported_region", Result.UNSUPPORTED_REGION, "unsupported_region"
    ),
    "model_not_found": Case("rt_forbidden", Result.MODEL_NOT_FOUND, "ok"),
    "api_shape_retired": Case(
        "ok", Result.API_SHAPE_RETIRED, "ok", settings=(("realtime", {"api": "beta"}),)
    ),
    "server_error": Case("server_error", Result.SERVER_ERROR, "server_error"),
    "timeout": Case("hang", Result.TIMEOUT, "timeout"),
    "connection_error": Case("reset", Result.CONNECTION_ERROR, "connection_error"),
    "tls_error": Case("ok", Result.TLS_ERROR, "tls_error", tls=True),
    "protocol_error": Case("non_json", Result.PROTOCOL_ERROR, "protocol_error"),
    "key_missing": Case("ok", Result.KEY_MISSING, "key_missing", key_text="empty"),
    "key_malformed": Case("ok", Result.KEY_MALFORMED, "key_malformed", key_text="inner-cr"),
    "other": Case("rt_unknown_close", Result.OTHER, "ok"),
}


def test_every_reachable_result_class_has_a_case() -> None:
    # key_revoked needs an admin key and the simulator's inventory: tests/inventory_check_test.py
    assert {case.result for case in CASES.values()} == set(Result) - {Result.OK, Result.KEY_REVOKED}


def command() -> list[str]:
    """The installed console script when there is one, as a person runs it."""
    script = shutil.which("openai-key-exporter", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "exporter"]


def run_check(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command(), "check", "--config.file", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def failing_key(case: Case, name: str, prefix: str = "sk-proj-") -> str:
    key = make_key(case.scenario, case.arg, prefix=prefix, seed=f"check-{name}")
    if case.key_text == "empty":
        return ""
    if case.key_text == "inner-cr":
        return key[:30] + "\r" + key[30:]
    return key


def key_entry(
    directory: Path, name: str, key: str, base_url: str, case: Case | None = None
) -> dict[str, Any]:
    path = write_key(directory, name, key)
    if not key:
        path.write_text("")
    entry: dict[str, Any] = {"name": name, "api_key_file": str(path)}
    if case is not None:
        entry.update(dict(case.settings))
        if case.tls:
            entry["base_url"] = base_url.replace("http://", "https://")
    return entry


def section(text: str, name: str) -> str:
    """The lines `check` printed for one key: its header up to the blank line."""
    match = re.search(rf"^{re.escape(name)}: .*?(?=^\s*$)", text, re.MULTILINE | re.DOTALL)
    assert match, f"no section for {name} in:\n{text}"
    return match.group(0)


def test_all_healthy_exits_0(simulator: str, tmp_path: Path) -> None:
    keys = {
        f"healthy-{index}": make_key("ok", prefix=prefix, seed=f"healthy-{index}")
        for index, prefix in enumerate(PREFIXES)
    }
    entries = [key_entry(tmp_path, name, key, simulator) for name, key in keys.items()]
    config = write_config(tmp_path / "config.yml", simulator, entries)
    checked = run_check(config)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for name in keys:
        block = section(checked.stdout, name)
        assert block.startswith(f"{name}: healthy")
        for item in CHECKLIST[:4]:
            if keys[name].startswith("sk-admin-") and item.startswith("Format"):
                # An admin key cannot call models: its own finding, whatever the simulator says.
                assert f"[ ] {item}: admin_key" in block, block
                continue
            assert f"[x] {item}" in block, (item, block)
        assert "read: " not in block
    assert f"{len(keys)} of {len(keys)} keys healthy" in checked.stdout
    assert ANSI not in checked.stdout, "piped output must have no colour by default"
    assert_no_secret(checked.stdout + checked.stderr, list(keys.values()), "check output")


def test_options_before_the_command_are_kept(simulator: str, tmp_path: Path) -> None:
    """`openai-key-exporter --config.file x.yml check` checks x.yml, not OPENAI_API_KEY."""
    key = make_key("invalid_api_key", seed="order")
    config = write_config(
        tmp_path / "config.yml", simulator, [key_entry(tmp_path, "ordered", key, simulator)]
    )
    checked = subprocess.run(
        [*command(), "--config.file", str(config), "check"],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"},
    )
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert section(checked.stdout, "ordered").startswith("ordered: FAILING")


@pytest.mark.parametrize("case_name", sorted(CASES))
def test_one_failing_key_exits_1_with_its_checklist(
    simulator: str, tmp_path: Path, case_name: str
) -> None:
    case = CASES[case_name]
    good = make_key("ok", seed=f"good-{case_name}")
    bad = failing_key(case, case_name)
    entries = [
        key_entry(tmp_path, "good", good, simulator),
        key_entry(tmp_path, "bad", bad, simulator, case),
    ]
    config = write_config(tmp_path / "config.yml", simulator, entries)
    checked = run_check(config)
    output = checked.stdout
    assert checked.returncode == 1, output + checked.stderr
    assert section(output, "good").startswith("good: healthy")
    block = section(output, "bad")
    assert block.startswith("bad: FAILING"), block
    # Without a key nothing further is checked: every other item says so.
    for item in CHECKLIST:
        assert item in block, f"checklist item {item!r} missing:\n{block}"
    assert re.search(r"^\s+\[ \] ", block, re.MULTILINE), f"no failed item:\n{block}"
    assert f"result: {case.result.value} ({RESULTS[case.result].summary})" in block, block
    assert f"read: {RUNBOOK_LINKS.for_result(case.result)}" in block, block
    assert "1 of 2 keys healthy" in output
    assert_no_secret(output + checked.stderr, [good, bad] if bad else [good], "check output")


def test_json_output(simulator: str, tmp_path: Path) -> None:
    names = ("invalid_api_key", "insufficient_permissions", "model_not_found", "key_malformed")
    keys = {"good": make_key("ok", seed="json-good")}
    entries = [key_entry(tmp_path, "good", keys["good"], simulator)]
    for index, name in enumerate(names):
        keys[name] = failing_key(CASES[name], name, PREFIXES[index % len(PREFIXES)])
        entries.append(key_entry(tmp_path, name, keys[name], simulator, CASES[name]))
    config = write_config(tmp_path / "config.yml", simulator, entries)
    checked = run_check(config, "--output", "json")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    document = json.loads(checked.stdout)
    assert document["healthy"] is False
    reports = {report["name"]: report for report in document["keys"]}
    assert list(reports) == list(keys)
    assert reports["good"]["healthy"] is True
    assert reports["good"]["probes"]["rest"]["result"] == "ok"
    assert reports["good"]["probes"]["realtime"]["result"] == "ok"
    for name in names:
        report = reports[name]
        assert report["healthy"] is False
        assert report["probes"]["rest"]["result"] == CASES[name].rest, report["probes"]
        assert set(report["probes"]) == {"rest", "realtime"}
    for report in reports.values():
        checklist = report["checklist"]
        assert [item["item"].split(" (")[0] for item in checklist][:1] == [
            "Key read from its source"
        ]
        assert all(
            set(item) == {"item", "status", "detail", "probe", "checked"} for item in checklist
        )
        assert {item["status"] for item in checklist} <= {"pass", "fail", "unknown", "not_checked"}
        statuses = [item["status"] for item in checklist]
        assert ("fail" in statuses) != report["healthy"], checklist
    failing = reports["model_not_found"]["probes"]["realtime"]
    assert failing["runbook"] == RUNBOOK_LINKS.for_result(Result.MODEL_NOT_FOUND)
    assert failing["http_status"] == 403
    assert reports["key_malformed"]["format_issues"] == ["line_break"]
    assert ANSI not in checked.stdout
    assert_no_secret(checked.stdout + checked.stderr, [k for k in keys.values() if k], "json")


def test_colour(simulator: str, tmp_path: Path) -> None:
    good = make_key("ok", seed="colour-good")
    bad = make_key("invalid_api_key", seed="colour-bad")
    entries = [
        key_entry(tmp_path, "good", good, simulator),
        key_entry(tmp_path, "bad", bad, simulator),
    ]
    config = write_config(tmp_path / "config.yml", simulator, entries)
    coloured = run_check(config, "--color", "always")
    assert coloured.returncode == 1
    assert "\x1b[32m" in coloured.stdout and "\x1b[31m" in coloured.stdout
    piped = run_check(config)
    never = run_check(config, "--color", "never")
    for plain in (piped, never):
        assert plain.returncode == 1
        assert ANSI not in plain.stdout + plain.stderr
    assert (
        re.sub(r"\x1b\[\d+m", "", coloured.stdout).splitlines()[0] == piped.stdout.splitlines()[0]
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("keys: [not: valid\n", "not valid YAML"),
        ("keys:\n  - name: a\n    api_key_file: /nonexistent/key\n", "keys[0].api_key_file"),
        ("keys:\n  - name: a\n    api_key_env: K\n    colour: red\n", "keys[0].colour"),
        ("keys: []\n", "keys"),
    ],
    ids=["yaml-syntax", "key-file-missing", "unknown-field", "no-keys"],
)
def test_config_error_exits_2(tmp_path: Path, content: str, message: str) -> None:
    config = tmp_path / "broken.yml"
    config.write_text(content)
    checked = run_check(config)
    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert checked.stdout == ""
    assert str(config) in checked.stderr and message in checked.stderr, checked.stderr


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    missing = run_check(tmp_path / "absent.yml")
    assert missing.returncode == 2
    assert missing.stdout == ""
    assert f"{tmp_path / 'absent.yml'}: cannot be read" in missing.stderr, missing.stderr


@pytest.mark.parametrize("output", ["text", "json"])
def test_never_prints_a_key(simulator: str, tmp_path: Path, output: str) -> None:
    keys: dict[str, str] = {}
    for prefix in PREFIXES:
        short = prefix.strip("-").replace("-", "_")
        for scenario in ("ok", "invalid_api_key", "server_error", "rt_unknown_close", "non_json"):
            keys[f"{short}.{scenario}"] = make_key(scenario, prefix=prefix, seed=output)
        base = make_key("ok", prefix=prefix, seed=f"{output}-variants")
        keys[f"{short}.inner-cr"] = base[:30] + "\r" + base[30:]
        keys[f"{short}.quoted"] = f'"{base}"'
        keys[f"{short}.trailing-space"] = base + " "
    entries = [key_entry(tmp_path, name, key, simulator) for name, key in keys.items()]
    config = write_config(tmp_path / "config.yml", simulator, entries)
    checked = run_check(config, "--output", output, "--log.level", "debug")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    for name in keys:
        assert name in checked.stdout
    assert_no_secret(checked.stdout, list(keys.values()), "check stdout")
    assert_no_secret(checked.stderr, list(keys.values()), "check stderr (debug log)")
