"""`openai-key-exporter check`: every probe once, now, printed as the runbook's checklist."""

from __future__ import annotations

import asyncio
import datetime
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import TextIO

from exporter.classify import RESULTS, Result, runbook_link
from exporter.config import Config, ConfigError, KeyConfig
from exporter.keys import read_key
from exporter.logs import printable
from exporter.models import days_left_text, watched_models
from exporter.probes.live import LiveProber
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


@dataclass
class ModelReport:
    model: str
    listed: bool | None  # None: the key's model list could not be read
    shutdown_date: str | None  # ISO date, when OpenAI gives one
    days_left: int | None
    state: str  # for a person: listed, shuts down ... (N days left)


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
    models: list[ModelReport] = field(default_factory=list)


async def check_keys(config: Config) -> list[KeyReport]:
    store = StateStore()
    store.configure({key.name: key.probes for key in config.keys})
    runner = ProbeRunner(
        store, {"rest": RestProber(), "realtime": RealtimeProber(), "live": LiveProber()}
    )
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
        reports.append(_report(key, state))
    return reports


def _report(key: KeyConfig, state: KeyState) -> KeyReport:
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
            runbook=runbook_link(last.result),
        )
    report = KeyReport(
        name=key.name,
        source=key.source.describe(),
        fingerprint=state.identity.fingerprint,
        kind=state.identity.kind,
        format_issues=list(state.identity.issues),
        probes=probes,
        models=_model_reports(key, state),
    )
    report.checklist = _checklist(key, report)
    report.healthy = all(probe.result == Result.OK.value for probe in probes.values())
    return report


SHUTDOWN_WARNING_DAYS = 30  # as the OpenAIKeyModelShutdownSoon alert


def _model_reports(key: KeyConfig, state: KeyState) -> list[ModelReport]:
    now = time.time()
    seen = {status.model: status for status in state.models}
    reports = []
    for model in sorted(watched_models(key)):
        status = seen.get(model)
        if status is None:
            text = "not checked: the key's model list could not be read"
            reports.append(ModelReport(model, None, None, None, text))
            continue
        days = status.days_left(now)
        date = None
        if status.shutdown_at is not None:
            moment = datetime.datetime.fromtimestamp(status.shutdown_at, datetime.UTC)
            date = moment.date().isoformat()
        reports.append(
            ModelReport(
                model,
                status.listed,
                date,
                None if days is None else max(0, math.ceil(days)),
                days_left_text(status, now),
            )
        )
    return reports


def _model_items(report: KeyReport) -> list[Item]:
    items = []
    for model in report.models:
        if model.listed is None:
            status = UNKNOWN
        elif not model.listed:
            status = FAIL
        elif model.days_left is not None and model.days_left <= SHUTDOWN_WARNING_DAYS:
            status = FAIL  # weeks to move the application to the successor
        else:
            status = PASS
        items.append(Item(f"Model {model.model}", status, model.state))
    return items


def _checklist(key: KeyConfig, report: KeyReport) -> list[Item]:
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
        items.append(
            Item(
                "Format: no stray spaces, quotes or line breaks",
                FAIL,
                ", ".join(report.format_issues),
            )
        )
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
        ("live", f"GPT-Live session started and closed ({key.live.model or 'no model'})"),
    ):
        if probe not in results:
            why = "opt-in, billed: list live in probes" if probe == "live" else ""
            items.append(Item(title, SKIPPED, why or "probe not configured"))
            continue
        result = results[probe]
        detail = _probe_detail(report.probes[probe])
        items.append(Item(title, PASS if result is Result.OK else FAIL, detail))
    items.extend(_model_items(report))
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
    elif results.get("live") is Result.OK:
        # A start refused for credit is the one signal; a session that started had credit.
        items.append(Item("Credit left", PASS, "a GPT-Live session started (billed)"))
    else:
        items.append(
            Item(
                "Credit left",
                UNKNOWN,
                "these free probes cannot see credit; check the billing page",
            )
        )
    return items


def _probe_detail(probe: ProbeReport) -> str:
    parts = [probe.result]
    if probe.http_status:
        parts.append(f"HTTP {probe.http_status}")
    if probe.close_code is not None:
        parts.append(f"close {probe.close_code}")
    parts.append(f"{probe.duration_seconds:.3f}s")
    if probe.message and probe.result != Result.OK.value:
        parts.append(probe.message[:160])
    return ", ".join(parts)


def render_text(reports: list[KeyReport], colour: bool) -> str:
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
        if worst is not None:
            lines.append(f"  result: {worst.value} ({RESULTS[worst].summary})")
            lines.append(f"  read: {runbook_link(worst)}")
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
    config_path: str | None, output: str, colour: str, stream: TextIO | None = None
) -> int:
    out = stream or sys.stdout
    try:
        config = read_config(config_path)
    except ConfigError as error:
        print(f"configuration is invalid: {error}", file=sys.stderr)
        return 2
    reports = asyncio.run(check_keys(config))
    if output == "json":
        out.write(render_json(reports))
    else:
        use_colour = colour == "always" or (colour == "auto" and out.isatty())
        out.write(render_text(reports, use_colour))
    return 0 if all(report.healthy for report in reports) else 1
