"""The alert rules: valid for promtool, proven by its unit tests, current with their generator,
covering every failing result class once, and linking to runbook sections that exist."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from exporter.classify import RESULTS, Result, Validity
from exporter.links import PUBLISHED_RUNBOOK_URL
from tests.conftest import require_tool
from tests.support.runbook import RUNBOOK_EN, anchors

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "alerts"
GENERATOR = ALERTS / "generate.py"
RULES = ALERTS / "openai-key-exporter.rules.yml"
ALERTMANAGER_EXAMPLE = ALERTS / "alertmanager.example.yml"
UNIT_TESTS = sorted((ALERTS / "tests").glob("*.yml"))


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("alerts_generate", GENERATOR)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=120, check=False
    )


def _rules(path: Path = RULES) -> list[dict[str, Any]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


@pytest.mark.parametrize("path", sorted(ALERTS.glob("*.rules.yml")), ids=lambda p: p.name)
def test_promtool_check_rules(path: Path) -> None:
    result = _run(require_tool("promtool"), "check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests() -> None:
    assert UNIT_TESTS, "alerts/tests/ holds no promtool test files"
    result = _run(require_tool("promtool"), "test", "rules", *UNIT_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_example_config() -> None:
    result = _run(require_tool("amtool"), "check-config", ALERTMANAGER_EXAMPLE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_committed_rules_are_what_the_generator_writes(tmp_path: Path) -> None:
    output = tmp_path / "rules.yml"
    result = _run(sys.executable, GENERATOR, "--output", output)
    assert result.returncode == 0, result.stderr
    assert output.read_text(encoding="utf-8") == RULES.read_text(encoding="utf-8"), (
        "alerts/openai-key-exporter.rules.yml is stale: run python alerts/generate.py"
    )
    check = _run(sys.executable, GENERATOR, "--check")
    assert check.returncode == 0, check.stdout + check.stderr


def test_check_reports_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "rules.yml"
    stale.write_text(RULES.read_text(encoding="utf-8").replace("for: 5m", "for: 6m"))
    result = _run(sys.executable, GENERATOR, "--check", "--output", stale)
    assert result.returncode == 1
    assert "for: 6m" in result.stdout and "is stale" in result.stderr


def test_fast_variant_for_end_to_end_tests(tmp_path: Path) -> None:
    output = tmp_path / "fast.rules.yml"
    result = _run(
        sys.executable,
        GENERATOR,
        "--for-scale",
        "0.1",
        "--output",
        output,
        "--runbook-url",
        "http://runbook.test/runbook.md",
        "--grafana-url",
        "http://grafana.test/",
        "--selector",
        'job="e2e"',
    )
    assert result.returncode == 0, result.stderr
    rules = {rule["alert"]: rule for rule in _rules(output)}
    committed = {rule["alert"]: rule for rule in _rules()}
    assert rules.keys() == committed.keys()
    assert rules["OpenAIKeyProbeFailing"]["for"] == "30s"
    assert rules["OpenAIKeyLatencyHigh"]["for"] == "1m30s"
    assert rules["OpenAIKeyInvalid"]["for"] == "0s"
    invalid = rules["OpenAIKeyInvalid"]["annotations"]
    assert invalid["runbook_url"] == "http://runbook.test/runbook.md#key-invalid"
    assert invalid["dashboard_url"] == (
        "http://grafana.test/d/openai-key-detail?var-key={{ $labels.key }}"
    )
    assert all('job="e2e"' in rule["expr"] for rule in rules.values())
    assert not any("openai-key-exporter.*" in rule["expr"] for rule in rules.values())
    check = _run(require_tool("promtool"), "check", "rules", output)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (15, "15s"), (90, "1m30s"), (300, "5m"), (3600, "1h"), (1.5, "1s500ms")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert _generator().format_duration(seconds) == text


@pytest.mark.parametrize("probe", ["rest", "realtime", "live"])
@pytest.mark.parametrize("result", [r for r in Result if r is not Result.OK], ids=str)
def test_every_failing_class_reaches_exactly_one_alert(probe: str, result: Result) -> None:
    generator = _generator()
    covering = [
        alert.name
        for alert in generator.CLASS_ALERTS
        for match in alert.matches
        if result.value in match.results and match.probe in (None, probe)
    ]
    assert len(covering) == 1, f"{probe}/{result}: {covering}"


def test_class_alerts_name_only_real_result_classes() -> None:
    known = {r.value for r in Result}
    for alert in _generator().CLASS_ALERTS:
        for match in alert.matches:
            assert set(match.results) <= known, alert.name
            assert match.probe in (None, "rest", "realtime", "live"), alert.name


def test_probe_failing_covers_the_classes_that_say_nothing_about_the_key() -> None:
    unknown = {r.value for r, info in RESULTS.items() if info.validity is Validity.UNKNOWN}
    assert set(_generator().TRANSIENT_RESULTS) == unknown - {Result.UNSUPPORTED_REGION.value}


def test_key_alerts_need_a_confirmation() -> None:
    """A single bad probe never pages: every class alert waits for a second failure."""
    for alert in _generator().CLASS_ALERTS:
        assert alert.min_failures >= 2, alert.name
        if alert.severity == "critical":
            assert alert.for_seconds <= 30, f"{alert.name} would page after T+90s"


def test_every_rule_is_labelled_and_annotated() -> None:
    names = set()
    for rule in _rules():
        name = rule["alert"]
        assert re.fullmatch(r"OpenAIKey[A-Z][A-Za-z]+", name), name
        names.add(name)
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url", "dashboard_url"}
        if "absent(" not in rule["expr"]:  # absent() has no labels to template
            assert "{{ $labels." in annotations["description"], f"{name}: not templated"
        assert "openai-key-" in annotations["dashboard_url"], name
    for required in (
        "OpenAIKeyInvalid",
        "OpenAIKeyMissingOrMalformed",
        "OpenAIKeyRealtimeRefused",
        "OpenAIKeyQuotaExhausted",
        "OpenAIKeyRateLimited",
        "OpenAIKeyUnsupportedRegion",
        "OpenAIKeyProbeFailing",
        "OpenAIKeyLatencyHigh",
        "OpenAIKeyProbesStale",
        "OpenAIKeyExporterDown",
    ):
        assert required in names


def test_key_rules_aggregate_by_key_not_by_instance() -> None:
    for rule in _rules():
        expr = rule["expr"]
        if "var-key" in rule["annotations"]["dashboard_url"]:
            assert re.search(r"(max|sum) by \([a-z, ]*\bkey\b", expr), rule["alert"]
            assert "instance" not in rule["annotations"]["description"], rule["alert"]


def test_every_runbook_url_points_at_an_existing_section() -> None:
    sections = anchors(RUNBOOK_EN)
    for rule in _rules():
        url = rule["annotations"]["runbook_url"]
        base, _, anchor = url.partition("#")
        assert base == PUBLISHED_RUNBOOK_URL, url  # the compose stack's exporter serves it
        assert anchor in sections, f"{rule['alert']}: docs/runbook.md has no anchor {anchor!r}"


def test_alertmanager_example_names_real_alerts() -> None:
    config = yaml.safe_load(ALERTMANAGER_EXAMPLE.read_text(encoding="utf-8"))
    names = {rule["alert"] for rule in _rules()}
    mentioned: set[str] = set()
    for rule in config["inhibit_rules"]:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            found = re.fullmatch(r'alertname=~"([A-Za-z|]+)"', matcher)
            if found:
                mentioned.update(found.group(1).split("|"))
    assert mentioned, "the inhibition names no alert"
    assert mentioned <= names, mentioned - names
    invalid_rule = config["inhibit_rules"][0]
    assert invalid_rule["equal"] == ["key"]
    assert "OpenAIKeyRealtimeRefused" in invalid_rule["target_matchers"][0]
    assert "OpenAIKeyProbeFailing" in invalid_rule["target_matchers"][0]
    assert "key" in config["route"]["group_by"]
