"""`openai-key-exporter check`: every probe once, now, printed as the runbook's checklist."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TextIO

from exporter.causes import finding_sentence, plain_cause, root_finding
from exporter.classify import RESULTS, Result
from exporter.config import Config, ConfigError, KeyConfig
from exporter.keys import SourceKind, read_key
from exporter.links import DEFAULT_LINKS, Links
from exporter.logs import printable
from exporter.probes.realtime import RealtimeProber
from exporter.probes.rest import RestProber
from exporter.runner import ProbeRunner
from exporter.service import read_config
from exporter.state import KeyState, StateStore

PASS, FAIL, UNKNOWN, SKIPPED = "pass", "fail", "unknown", "skipped"
_MARKS = {PASS: "[x]", FAIL: "[ ]", UNKNOWN: "[?]", SKIPPED: "[-]"}
_COLOURS = {PASS: "\033[32m", FAIL: "\033[31m", UNKNOWN: "\033[33m", SKIPPED: "\033[90m"}
_RESET = "\033[0m"
_PERMISSION_RESULTS = {
    Result.INSUFFICIENT_PERMISSIONS,
    Result.MISMATCHED_ORGANIZATION,
    Result.MISMATCHED_PROJECT,
    Result.MODEL_NOT_FOUND,
    Result.API_SHAPE_RETIRED,
    Result.UNSUPPORTED_REGION,
}


@dataclass
class Item:
    item: str
    status: str
    detail: str = ""


@dataclass
class ProbeReport:
    result: str
    summary: str
    http_status: int
    error_code: str
    message: str
    duration_seconds: float
    phases: dict[str, float]
    close_code: int | None
    request_id: str
    runbook: str
    cause: str = ""  # one plain line, the root cause first
    result_since: str | None = None  # when this result class began (ISO 8601, UTC)
    result_probes: int = 0  # probes in a row with this result class


@dataclass
class KeyReport:
    name: str
    source: str
    fingerprint: str
    kind: str
    format_issues: list[str]
    probes: dict[str, ProbeReport]
    checklist: list[Item] = field(default_factory=list)
    healthy: bool = False
    key_changed_at: str | None = None  # when the key's value last changed in its source
    root_cause: str = ""  # a format finding that probably explains a rejection, named first


async def check_keys(config: Config, links: Links = DEFAULT_LINKS) -> list[KeyReport]:
    store = StateStore()
    store.configure({key.name: key.probes for key in config.keys})
    runner = ProbeRunner(store, {"rest": RestProber(), "realtime": RealtimeProber()})
    try:
        await asyncio.gather(
            *(runner.run(key, probe) for key in config.keys for probe in key.probes)
        )
    finally:
        await runner.aclose()
    reports = []
    for key in config.keys:
        state = store.get(key.name)
        assert state is not None
        reports.append(_report(key, state, links))
    return reports


def _report(key: KeyConfig, state: KeyState, links: Links) -> KeyReport:
    probes = {}
    for probe, probe_state in state.probes.items():
        last = probe_state.last
        assert last is not None
        probes[probe] = ProbeReport(
            result=last.result.value,
            summary=RESULTS[last.result].summary,
            http_status=last.http_status,
            error_code=last.error_code,
            message=last.message,
            duration_seconds=round(last.duration, 4),
            phases={phase: round(seconds, 4) for phase, seconds in last.phases.items()},
            close_code=last.close_code,
            request_id=last.request_id,
            runbook=links.for_result(last.result),
            cause=plain_cause(last.result, state.identity.issues, key.source),
            result_since=_iso(probe_state.result_since),
            result_probes=probe_state.result_probes,
        )
    report = KeyReport(
        name=key.name,
        source=key.source.describe(),
        fingerprint=state.identity.fingerprint,
        kind=state.identity.kind,
        format_issues=list(state.identity.issues),
        probes=probes,
        key_changed_at=_iso(state.key_changed_at),
    )
    for probe_state in state.probes.values():
        assert probe_state.last is not None
        finding = root_finding(probe_state.last.result, state.identity.issues)
        if finding is not None and not report.root_cause:
            report.root_cause = finding_sentence(finding, key.source)
    report.checklist = _checklist(key, report, links)
    report.healthy = all(probe.result == Result.OK.value for probe in probes.values())
    return report


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def _checklist(key: KeyConfig, report: KeyReport, links: Links) -> list[Item]:
    results = {probe: Result(item.result) for probe, item in report.probes.items()}
    items: list[Item] = []
    missing = any(result is Result.KEY_MISSING for result in results.values())
    if missing:
        problem = read_key(key.name, key.source).problem
        items.append(Item(f"Key read from its source ({report.source})", FAIL, problem))
        return items
    items.append(Item(f"Key read from its source ({report.source})", PASS))
    kind_text = (
        f"{report.kind.replace('_', ' ')} key" if report.kind != "unknown" else "unknown kind"
    )
    if report.format_issues:
        detail = ", ".join(report.format_issues)
        if report.root_cause:  # the rejection's likely cause: said first, in words
            detail = f"{report.root_cause} (likely why OpenAI rejects it: fix first) [{detail}]"
        items.append(Item("Format: no stray spaces, quotes or line breaks", FAIL, detail))
    else:
        items.append(
            Item(
                "Format: no stray spaces, quotes or line breaks",
                PASS,
                f"{report.fingerprint}, {kind_text}",
            )
        )
    for probe, title in (
        ("rest", "REST accepted (GET /v1/models)"),
        ("realtime", f"Realtime session opened ({key.realtime.model})"),
    ):
        if probe not in results:
            items.append(Item(title, SKIPPED, "probe not configured"))
            continue
        result = results[probe]
        detail = _probe_detail(report.probes[probe])
        items.append(Item(title, PASS if result is Result.OK else FAIL, detail))
    permission_failures = [r for r in results.values() if r in _PERMISSION_RESULTS]
    if permission_failures:
        items.append(
            Item(
                "Permissions (scopes, organization, project, model, region)",
                FAIL,
                ", ".join(sorted({r.value for r in permission_failures})),
            )
        )
    elif all(result is Result.OK for result in results.values()):
        items.append(Item("Permissions (scopes, organization, project, model, region)", PASS))
    else:
        items.append(
            Item(
                "Permissions (scopes, organization, project, model, region)",
                UNKNOWN,
                "not known until the probes get an answer from OpenAI",
            )
        )
    if Result.INSUFFICIENT_QUOTA in results.values():
        items.append(Item("Credit left", FAIL, "OpenAI answered insufficient_quota"))
    else:
        items.append(
            Item(
                "Credit left",
                UNKNOWN,
                "these free probes cannot see credit; check the billing page",
            )
        )
    items.append(_restart_item(key, report, links))
    return items


def _restart_item(key: KeyConfig, report: KeyReport, links: Links) -> Item:
    """The application reads its key once: after a change it must be restarted. The exporter
    cannot see the application's processes, so this stays unknown, with what it implies."""
    title = "Application restarted after the key's last change"
    if report.key_changed_at is None:
        return Item(title, UNKNOWN, "not checked: the key's value was never read")
    source = key.source.describe()
    when = (
        "when read (an environment variable has no change time)"
        if key.source.kind is SourceKind.ENV
        else f"the modification time of {source}"
    )
    return Item(
        title,
        UNKNOWN,
        f"not checked: the key's value changed at {report.key_changed_at} ({when}); processes of "
        "the application started before then still hold the old key until restarted "
        f"({links.runbook('application-restart')})",
    )


def _probe_detail(probe: ProbeReport) -> str:
    parts = [probe.result]
    if probe.result_probes > 1 and probe.result_since:  # history from an earlier run
        parts.append(f"since {probe.result_since} ({probe.result_probes} probes)")
    if probe.http_status:
        parts.append(f"HTTP {probe.http_status}")
    if probe.close_code is not None:
        parts.append(f"close {probe.close_code}")
    parts.append(f"{probe.duration_seconds:.3f}s")
    if probe.message and probe.result != Result.OK.value:
        parts.append(probe.message[:160])
    return ", ".join(parts)


def render_text(reports: list[KeyReport], colour: bool, links: Links = DEFAULT_LINKS) -> str:
    def paint(status: str, text: str) -> str:
        return f"{_COLOURS[status]}{text}{_RESET}" if colour else text

    lines: list[str] = []
    for report in reports:
        verdict = paint(PASS, "healthy") if report.healthy else paint(FAIL, "FAILING")
        lines.append(f"{report.name}: {verdict}")
        for item in report.checklist:
            detail = f": {printable(item.detail)}" if item.detail else ""
            lines.append(f"  {paint(item.status, _MARKS[item.status])} {item.item}{detail}")
        worst = _worst(report)
        if worst is not None and report.root_cause and RESULTS[worst].validity.value == "invalid":
            # The root cause before the rejection it explains.
            lines.append(f"  cause: {printable(report.root_cause)}")
            lines.append(f"  read first: {links.runbook('key-format-issue')}")
        if worst is not None:
            lines.append(f"  result: {worst.value} ({RESULTS[worst].summary})")
            lines.append(f"  read: {links.for_result(worst)}")
        lines.append("")
    healthy = sum(report.healthy for report in reports)
    lines.append(f"{healthy} of {len(reports)} keys healthy")
    return "\n".join(lines) + "\n"


def _worst(report: KeyReport) -> Result | None:
    failing = [Result(probe.result) for probe in report.probes.values() if probe.result != "ok"]
    if not failing:
        return None
    # A conclusive answer about the key matters more than a transient failure.
    failing.sort(key=lambda result: RESULTS[result].validity.value != "invalid")
    return failing[0]


def render_json(reports: list[KeyReport]) -> str:
    payload = {
        "healthy": all(report.healthy for report in reports),
        "keys": [asdict(report) for report in reports],
    }
    return json.dumps(payload, indent=2) + "\n"


def run_check(
    config_path: str | None,
    output: str,
    colour: str,
    stream: TextIO | None = None,
    links: Links = DEFAULT_LINKS,
) -> int:
    out = stream or sys.stdout
    try:
        config = read_config(config_path)
    except ConfigError as error:
        print(f"configuration is invalid: {error}", file=sys.stderr)
        return 2
    reports = asyncio.run(check_keys(config, links))
    if output == "json":
        out.write(render_json(reports))
    else:
        use_colour = colour == "always" or (colour == "auto" and out.isatty())
        out.write(render_text(reports, use_colour, links))
    return 0 if all(report.healthy for report in reports) else 1
