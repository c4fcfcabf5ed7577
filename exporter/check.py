"""`openai-key-exporter check`: every probe once, now, printed as the runbook's checklist."""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TextIO

from exporter.causes import finding_sentence, plain_cause, root_finding
from exporter.classify import RESULTS, Result
from exporter.config import Config, ConfigError, KeyConfig
from exporter.inventory import KeyInventory
from exporter.keys import SourceKind, read_key
from exporter.links import DEFAULT_LINKS, Links
from exporter.logs import printable
from exporter.models import days_left_text, watched_models
from exporter.probes.inference import InferenceProber
from exporter.probes.live import LiveProber
from exporter.probes.realtime import RealtimeProber
from exporter.probes.rest import RestProber
from exporter.runner import Prober, ProbeRunner, iso_seconds
from exporter.service import read_config
from exporter.state import KeyState, StateStore

PASS, FAIL, UNKNOWN, NOT_CHECKED = "pass", "fail", "unknown", "not_checked"
_MARKS = {PASS: "[x]", FAIL: "[ ]", UNKNOWN: "[?]", NOT_CHECKED: "[-]"}
_COLOURS = {PASS: "\033[32m", FAIL: "\033[31m", UNKNOWN: "\033[33m", NOT_CHECKED: "\033[90m"}
_RESET = "\033[0m"
# What proved an item, for a person: a probe, or the reading and lint that send nothing.
_PROVERS = {
    "source": "by reading its source",
    "lint": "by the lint, nothing sent",
    "rest": "by the rest probe",
    "realtime": "by the realtime probe",
    "live": "by the live probe",
    "inference": "by the inference probe",
}
_PERMISSION_RESULTS = {
    Result.INSUFFICIENT_PERMISSIONS,
    Result.MISMATCHED_ORGANIZATION,
    Result.MISMATCHED_PROJECT,
    Result.UNSUPPORTED_REGION,
}
_MODEL_RESULTS = {Result.MODEL_NOT_FOUND, Result.API_SHAPE_RETIRED}
_NO_KEY = "no key was read from its source"
_FORMAT = "Format: no stray spaces, quotes or line breaks"
_RESTART = "Application restarted after the key's last change"


@dataclass
class Item:
    """One line of the checklist, with the probe (or reading) that proved it.

    `checked` is False when nothing that could prove it ran: status is then not_checked and
    `detail` says why. A not-checked item never fails the check.
    """

    item: str
    status: str
    detail: str = ""
    probe: str = ""
    checked: bool = True


def _not_checked(item: str, probe: str, reason: str) -> Item:
    return Item(item, NOT_CHECKED, reason, probe, checked=False)


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
    key_changed_at: str | None = None  # when the key's value last changed in its source
    root_cause: str = ""  # a format finding that probably explains a rejection, named first
    models: list[ModelReport] = field(default_factory=list)
    inventory: str | None = None  # the admin key's inventory facts; None without an admin key
    provider: str = "openai"  # who issued the key: openai or azure (an Azure OpenAI resource)


async def check_keys(config: Config, links: Links = DEFAULT_LINKS) -> list[KeyReport]:
    store = StateStore()
    store.configure({key.name: key.probes for key in config.keys})
    probers: dict[str, Prober] = {
        "rest": RestProber(),
        "realtime": RealtimeProber(),
        "live": LiveProber(),
        "inference": InferenceProber(),
    }
    runner = ProbeRunner(store, probers)
    inventory = KeyInventory()
    inventory.apply(config)
    if config.admin is not None:
        # First, so that a rejection is read against the list: revoked, or a wrong copy.
        await inventory.run_pass()
        runner.rejection_check = inventory.explain_rejection
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
        reports[-1].inventory = inventory.describe(key.name)
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
        models=_model_reports(key, state),
        provider=key.provider,
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
    return None if timestamp is None else iso_seconds(timestamp)


SHUTDOWN_WARNING_DAYS = 30  # as the OpenAIKeyModelShutdownSoon alert


def _model_reports(key: KeyConfig, state: KeyState) -> list[ModelReport]:
    now = time.time()
    seen = {status.model: status for status in state.models}
    reports = []
    for model in sorted(watched_models(key)):
        status = seen.get(model)
        if status is None:
            text = "the key's model list could not be read"
            reports.append(ModelReport(model, None, None, None, text))
            continue
        days = status.days_left(now)
        date = None
        if status.shutdown_at is not None:
            date = datetime.fromtimestamp(status.shutdown_at, UTC).date().isoformat()
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
    """Proven by the REST probe's own answer (the key's model list), or not checked."""
    items = []
    for model in report.models:
        title = f"Model {model.model}"
        if model.listed is None:
            items.append(_not_checked(title, "rest", model.state))
            continue
        if not model.listed:
            status = FAIL
        elif model.days_left is not None and model.days_left <= SHUTDOWN_WARNING_DAYS:
            status = FAIL  # weeks to move the application to the successor
        else:
            status = PASS
        items.append(Item(title, status, model.state, "rest"))
    return items


def _checklist(key: KeyConfig, report: KeyReport, links: Links) -> list[Item]:
    results = {probe: Result(item.result) for probe, item in report.probes.items()}
    read_item = f"Key read from its source ({report.source})"
    if any(result is Result.KEY_MISSING for result in results.values()):
        problem = read_key(key.source).problem  # no key read: none to register
        items = [Item(read_item, FAIL, problem, "source"), _not_checked(_FORMAT, "lint", _NO_KEY)]
        return (
            items
            + [_not_checked(item.item, item.probe, _NO_KEY) for item in _probe_items(key, report)]
            + [_not_checked(_RESTART, "source", _NO_KEY)]
        )
    items = [Item(read_item, PASS, "", "source")]
    kind_text = (
        f"{report.kind.replace('_', ' ')} key" if report.kind != "unknown" else "unknown kind"
    )
    if report.format_issues:
        detail = ", ".join(report.format_issues)
        if report.root_cause:  # the rejection's likely cause: said first, in words
            detail = f"{report.root_cause} (likely why OpenAI rejects it: fix first) [{detail}]"
        items.append(Item(_FORMAT, FAIL, detail, "lint"))
    else:
        items.append(Item(_FORMAT, PASS, f"{report.fingerprint}, {kind_text}", "lint"))
    return items + _probe_items(key, report) + [_restart_item(key, report, links)]


def _probe_items(key: KeyConfig, report: KeyReport) -> list[Item]:
    """The items only a probe proves, each from the probe that can; not checked without it."""
    results = {probe: Result(item.result) for probe, item in report.probes.items()}
    items: list[Item] = []

    def judged(item: str, probe: str, failing: set[Result] | None) -> None:
        """`failing`: the results that fail this item (None: any but ok); others are unknown."""
        if probe not in results:
            reason = f"the {probe} probe is not configured for this key"
            items.append(_not_checked(item, probe, reason))
            return
        result = results[probe]
        detail = _probe_detail(report.probes[probe])
        if result is Result.OK:
            items.append(Item(item, PASS, detail, probe))
        elif failing is None or result in failing:
            items.append(Item(item, FAIL, detail, probe))
        else:
            items.append(Item(item, UNKNOWN, f"not known from this answer: {detail}", probe))

    judged("REST accepted (GET /v1/models)", "rest", None)
    judged("Permissions (scopes, organization, project, region)", "rest", _PERMISSION_RESULTS)
    judged(f"Realtime session opened ({key.realtime.model})", "realtime", None)
    judged("Realtime permission (the key may open sessions)", "realtime", _PERMISSION_RESULTS)
    judged(
        f"Realtime model accepted ({key.realtime.model}, {key.realtime.api} interface)",
        "realtime",
        _MODEL_RESULTS,
    )
    if "live" in results:  # GPT-Live is a product of its own: an item only where it is probed
        judged(f"GPT-Live session started and closed ({key.live.model})", "live", None)
    judged(f"Inference answered (POST /v1/responses, {key.inference.model})", "inference", None)
    items.extend(_model_items(report))
    items.append(_credit_item(report, results))
    return items


def _credit_item(report: KeyReport, results: dict[str, Result]) -> Item:
    """Only a billed call sees credit: no free call answers insufficient_quota."""
    title = "Credit left"
    for probe, result in results.items():
        if result is Result.INSUFFICIENT_QUOTA:
            return Item(title, FAIL, _probe_detail(report.probes[probe]), probe)
    inference = results.get("inference")
    if inference is Result.OK:
        return Item(title, PASS, _probe_detail(report.probes["inference"]), "inference")
    if results.get("live") is Result.OK:  # a billed session that started had credit
        return Item(title, PASS, "a GPT-Live session started (billed)", "live")
    if inference is not None:
        detail = f"not known from this answer: {_probe_detail(report.probes['inference'])}"
        return Item(title, UNKNOWN, detail, "inference")
    return _not_checked(title, "inference", "enable the inference probe: no free call sees credit")


def _restart_item(key: KeyConfig, report: KeyReport, links: Links) -> Item:
    """The application reads its key once: after a change it must be restarted. The exporter
    cannot see the application's processes, so this is never checked: it says what it implies."""
    title = _RESTART
    if report.key_changed_at is None:
        return _not_checked(title, "source", "the key's value was never read")
    source = key.source.describe()
    when = (
        "when read (an environment variable has no change time)"
        if key.source.kind is SourceKind.ENV
        else f"the modification time of {source}"
    )
    return _not_checked(
        title,
        "source",
        "the exporter cannot see the application's processes; the key's value changed at "
        f"{report.key_changed_at} ({when}); processes of the application started before then "
        "still hold the old key until restarted "
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
        # OpenAI is the default and goes unsaid; another provider is named beside the verdict.
        provider = f" (provider {report.provider})" if report.provider != "openai" else ""
        lines.append(f"{report.name}: {verdict}{provider}")
        for item in report.checklist:
            lines.append(f"  {paint(item.status, _MARKS[item.status])} {_item_text(item)}")
        worst = _worst(report)
        if worst is not None and report.root_cause and RESULTS[worst].validity.value == "invalid":
            # The root cause before the rejection it explains.
            lines.append(f"  cause: {printable(report.root_cause)}")
            if worst is not Result.KEY_MISSING:  # nothing was read: its own section says it all
                lines.append(f"  read first: {links.runbook('key-format-issue')}")
        if report.inventory is not None:
            lines.append(f"  inventory: {printable(report.inventory)}")
        if worst is not None:
            lines.append(f"  result: {worst.value} ({RESULTS[worst].summary})")
            lines.append(f"  read: {links.for_result(worst)}")
        lines.append("")
    healthy = sum(report.healthy for report in reports)
    not_checked = sum(not item.checked for report in reports for item in report.checklist)
    lines.append(f"{healthy} of {len(reports)} keys healthy, {not_checked} items not checked")
    return "\n".join(lines) + "\n"


def _item_text(item: Item) -> str:
    if not item.checked:
        return f"{item.item}: not checked: {printable(item.detail)}"
    detail = f": {printable(item.detail)}" if item.detail else ""
    return f"{item.item}{detail} [{_PROVERS.get(item.probe, item.probe)}]"


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
        "not_checked": sum(not item.checked for report in reports for item in report.checklist),
        "keys": [_without_absent_inventory(asdict(report)) for report in reports],
    }
    return json.dumps(payload, indent=2) + "\n"


def _without_absent_inventory(report: dict[str, object]) -> dict[str, object]:
    """Without an admin key the JSON document stays as it was."""
    if report.get("inventory") is None:
        report.pop("inventory", None)
    return report


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
    for warning in config.warnings:  # settings that work but look like a mistake
        print(f"configuration warning: {warning}", file=sys.stderr)
    reports = asyncio.run(check_keys(config, links))
    if output == "json":
        out.write(render_json(reports))
    else:
        use_colour = colour == "always" or (colour == "auto" and out.isatty())
        out.write(render_text(reports, use_colour, links))
    return 0 if all(report.healthy for report in reports) else 1
