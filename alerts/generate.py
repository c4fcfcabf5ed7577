"""Writes the Prometheus alert rules (alerts/openai-key-exporter.rules.yml) from one table.

    python alerts/generate.py                      # rewrite the committed rules file
    python alerts/generate.py --check              # exit 1 if the committed file is stale
    python alerts/generate.py --for-scale 0.1 --output /tmp/fast.rules.yml   # for tests

Base URLs, the job selector and the evaluation interval are set here, in one place; every
alert links to its runbook section and to a Grafana dashboard.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
# Run as `python alerts/generate.py`: the repository's own packages, for the tables it shares.
sys.path.insert(0, str(HERE.parent))

from exporter.classify import RESULTS, Result, Validity  # noqa: E402
from grafana.identifiers import DETAIL_UID, OVERVIEW_UID  # noqa: E402

DEFAULT_OUTPUT = HERE / "openai-key-exporter.rules.yml"
# Optional: only useful once the application's own metrics carry APPLICATION_KEY_LABEL.
DEFAULT_APPLICATION_OUTPUT = HERE / "openai-key-application.rules.yml"
# The label that names, on the application's process_start_time_seconds, the exporter's `key`
# it uses (add it in the application's scrape config: see alerts/README.md).
APPLICATION_KEY_LABEL = "openai_key"
# The runbook the exporter itself serves, and Grafana, where the compose stack publishes them
# (exporter.links.PUBLISHED_RUNBOOK_URL; a test keeps the two equal). Elsewhere, regenerate with
# --runbook-url <exporter's --web.external-url>/runbook and --grafana-url.
DEFAULT_RUNBOOK_URL = "http://localhost:10077/runbook"
DEFAULT_GRAFANA_URL = "http://localhost:3000"
# Matches the compose stack's `openai-key-exporter`, Prometheus Operator's
# `<namespace>/openai-key-exporter` and per-replica jobs such as `openai-key-exporter-shard-2`.
DEFAULT_SELECTOR = 'job=~".*openai-key-exporter.*"'
# Key alerts are evaluated this often whatever the server's global evaluation_interval
# (1m by default), so a revoked key pages within 90 s with a 15 s scrape (alerts/README.md).
DEFAULT_EVAL_INTERVAL = "5s"

PROBES = ("rest", "realtime", "live")
SESSION_PROBES = ("realtime", "live")  # WebSocket session probes: refused the same ways
_SESSION_REFUSALS = ("insufficient_permissions", "model_not_found", "api_shape_retired")
# Result classes for which a probe failing says nothing about the key (Validity.UNKNOWN in the
# result table), minus unsupported_region, which has its own alert.
TRANSIENT_RESULTS = tuple(
    result.value
    for result, info in RESULTS.items()
    if info.validity is Validity.UNKNOWN and result is not Result.UNSUPPORTED_REGION
)
# One generous staleness threshold: 3 x the 5 min Realtime default interval.
STALE_AFTER_SECONDS = 900
# Billed probes run far less often (inference: every 15 minutes by default, often more): their
# gaps are not staleness.
NOT_STALE_PROBES = ("inference",)
LATENCY_THRESHOLD_SECONDS = 5
# Per-key latency comes from the openai_probe_duration_seconds gauge: the latency histogram has
# no key label. The gauge holds a slow probe's duration until the key's next probe, so one slow
# probe keeps the condition true for at most its probe interval plus the window. The window is
# shorter than the `for:` by 5 minutes, the Realtime default interval, so with intervals up to
# that one slow probe leaves the window before the alert could fire; only sustained slowness
# pages.
LATENCY_WINDOW_SECONDS = 10 * 60
LATENCY_FOR_SECONDS = 15 * 60
# A paging alert outlives its condition by this much: an exporter restart (a deploy, an OOM, a
# reshard) or a missed scrape leaves the series stale for a moment, and without it every firing
# page would resolve and fire again. The exporter's --storage.path brings the results back
# within seconds of a restart; this covers the gap until then. A fixed key's resolved comes
# this much later.
KEEP_FIRING_SECONDS = 2 * 60
# Before a key's expires_at (admin key inventory): a warning with days to rotate, then a page.
EXPIRY_WARNING_DAYS = 7
EXPIRY_CRITICAL_SECONDS = 24 * 3600
# The inventory runs every 10 minutes by default: 30 minutes is three failed passes.
INVENTORY_FAILING_FOR_SECONDS = 30 * 60
# Days before a watched model's shutdown_date: a warning with weeks to move, then a page.
SHUTDOWN_WARNING_DAYS = 30
SHUTDOWN_CRITICAL_DAYS = 7
_DAY = 86400


@dataclass(frozen=True)
class Match:
    """Series of openai_probe_result an alert covers: these results, on one probe or all."""

    results: tuple[str, ...]
    probe: str | None = None  # None: every probe


@dataclass(frozen=True)
class Alert:
    name: str
    severity: str
    anchor: str  # section of docs/runbook.md
    summary: str
    description: str
    for_seconds: float
    expr: str = ""  # set for alerts that are not built from result classes
    matches: tuple[Match, ...] = ()  # result-class alerts
    min_failures: int = 2  # result-class alerts: openai_probe_consecutive_failures >= this
    per_key: bool = True  # links to the key's detail dashboard rather than the overview
    finding_first: bool = False  # start with the key's format findings, the likely root cause


@dataclass(frozen=True)
class Settings:
    runbook_url: str = DEFAULT_RUNBOOK_URL
    grafana_url: str = DEFAULT_GRAFANA_URL
    selector: str = DEFAULT_SELECTOR
    for_scale: float = 1.0
    eval_interval: str = DEFAULT_EVAL_INTERVAL


_FAILED_IN_A_ROW = "{{ $value }} probes in a row"


def _query(promql_format: str, args: str, body: str) -> str:
    """Template text shown only when the query (a printf format over the alert's labels)
    returns something; `.` is then its result. The format is a raw string: PromQL has quotes."""
    return f"{{{{ with printf `{promql_format}` {args} | query }}}}{body}{{{{ end }}}}"


def since_sentence(sel: str) -> str:
    """When the alert's result class began (openai_probe_result_since_timestamp_seconds)."""
    return _query(
        f"min(openai_probe_result_since_timestamp_seconds{{{sel},key=%q,probe=%q}})",
        "$labels.key $labels.probe",
        " This result since {{ . | first | value | humanizeTimestamp }}.",
    )


def finding_first(sel: str) -> str:
    """The key's format findings, named before the rejection they probably cause."""
    return _query(
        f"max by (issue) (openai_key_format_issue{{{sel},key=%q}})",
        "$labels.key",
        "Key {{ $labels.key }} has format findings in its source "
        "({{ range $i, $s := . | sortByLabel `issue` }}{{ if $i }}, {{ end }}{{ $s.Labels.issue }}{{ end }}): the "
        "likely cause, fix that first (runbook section key-format-issue). ",
    )


# Alerts on the class of the last probe result. A revoked key fails its next probe and the quick
# re-probe 10 s later (consecutive_failures 2 by T+70 s): the second probe is the confirmation,
# so these page with `for: 0s`; a single bad answer never reaches 2.
CLASS_ALERTS: tuple[Alert, ...] = (
    Alert(
        name="OpenAIKeyInvalid",
        severity="critical",
        anchor="key-invalid",
        summary="OpenAI rejects an API key.",
        description=(
            "OpenAI answered {{ $labels.result }} to the {{ $labels.probe }} probe of key "
            "{{ $labels.key }} on " + _FAILED_IN_A_ROW + ". Every request made with this key "
            "fails until it is replaced."
        ),
        for_seconds=0,
        matches=(Match(("invalid_api_key", "account_deactivated")),),
        finding_first=True,
    ),
    Alert(
        name="OpenAIKeyRevoked",
        severity="critical",
        anchor="key-revoked",
        summary="OpenAI rejects an API key that the organization no longer lists.",
        description=(
            "OpenAI rejected key {{ $labels.key }} on the {{ $labels.probe }} probe on "
            + _FAILED_IN_A_ROW
            + ", and no entry of the organization's key list (admin key inventory) matches it: "
            "it was deleted or revoked, or belongs to another organization. Create a new key."
        ),
        for_seconds=0,
        matches=(Match(("key_revoked",)),),
    ),
    Alert(
        name="OpenAIKeyMissingOrMalformed",
        severity="critical",
        anchor="key-missing-or-malformed",
        summary="An API key cannot be read or cannot be sent.",
        description=(
            "The {{ $labels.probe }} probe of key {{ $labels.key }} ended with "
            "{{ $labels.result }} on " + _FAILED_IN_A_ROW + ": the key's source is empty or "
            "unreadable, or the key holds characters a header cannot carry."
        ),
        for_seconds=0,
        matches=(Match(("key_missing", "key_malformed")),),
    ),
    Alert(
        name="OpenAIKeyRealtimeRefused",
        severity="critical",
        anchor="realtime-refused",
        summary="A voice session API (Realtime or GPT-Live) refuses a session for an API key.",
        description=(
            "The {{ $labels.probe }} probe of key {{ $labels.key }} got {{ $labels.result }} "
            "on " + _FAILED_IN_A_ROW + ": the key authenticates, but a {{ $labels.probe }} "
            "session with this model and interface cannot be opened."
        ),
        for_seconds=0,
        matches=(
            *(Match(_SESSION_REFUSALS, probe) for probe in SESSION_PROBES),
            Match(("model_not_found", "api_shape_retired"), "rest"),
        ),
    ),
    Alert(
        name="OpenAIKeyPermissionsMissing",
        severity="warning",
        anchor="key-permissions",
        summary="A restricted API key lacks a scope.",
        description=(
            "The {{ $labels.probe }} probe of key {{ $labels.key }} got {{ $labels.result }} on "
            + _FAILED_IN_A_ROW
            + ": the key is valid but restricted, and lacks a scope the probe needs."
        ),
        for_seconds=0,
        matches=(Match(("insufficient_permissions",), "rest"),),
    ),
    Alert(
        name="OpenAIKeyOrganizationProjectMismatch",
        severity="critical",
        anchor="organization-project-mismatch",
        summary="The OpenAI-Organization or OpenAI-Project header does not match an API key.",
        description=(
            "The {{ $labels.probe }} probe of key {{ $labels.key }} got {{ $labels.result }} on "
            + _FAILED_IN_A_ROW
            + ": requests sending this organization or project header are refused."
        ),
        for_seconds=0,
        matches=(Match(("mismatched_organization", "mismatched_project")),),
    ),
    Alert(
        name="OpenAIKeyQuotaExhausted",
        severity="critical",
        anchor="quota-exhausted",
        summary="An API key's organization or project has no credit or quota left.",
        description=(
            "The {{ $labels.probe }} probe of key {{ $labels.key }} got insufficient_quota on "
            + _FAILED_IN_A_ROW
            + ". Retrying never fixes this: add credit or raise the limit. Only a billed call "
            "sees credit: this comes from an opt-in billed probe (inference or live; free "
            "probes never see it), so without one an empty balance pages nobody."
        ),
        for_seconds=0,
        # Any probe: OpenAI's answer is the proof, whichever call got it. A quota is never
        # retried early, so the confirming answer comes one probe interval later (15 min for
        # the inference probe's default).
        matches=(Match(("insufficient_quota",)),),
    ),
    Alert(
        name="OpenAIKeyUnsupportedRegion",
        severity="critical",
        anchor="unsupported-region",
        summary="OpenAI refuses requests from this country or region.",
        description=(
            "The {{ $labels.probe }} probe of key {{ $labels.key }} got unsupported_region on "
            + _FAILED_IN_A_ROW
            + ": OpenAI refuses the address the requests leave from, whatever the key."
        ),
        for_seconds=0,
        matches=(Match(("unsupported_region",)),),
    ),
    Alert(
        name="OpenAIKeyRateLimited",
        severity="warning",
        anchor="rate-limited",
        summary="An API key has been rate limited for {for}.",
        description=(
            "The {{ $labels.probe }} probe of key {{ $labels.key }} has been answered "
            "rate_limited for {for} (" + _FAILED_IN_A_ROW + "): the key's organization "
            "or project is at its request or token limit."
        ),
        for_seconds=5 * 60,
        matches=(Match(("rate_limited",)),),
    ),
    Alert(
        name="OpenAIKeyProbeFailing",
        severity="warning",
        anchor="probe-failing",
        summary="Probes of an API key keep failing for reasons that are not the key.",
        description=(
            "The {{ $labels.probe }} probe of key {{ $labels.key }} has failed "
            + _FAILED_IN_A_ROW
            + " for {for}, last with {{ $labels.result }}. Whether the key works is "
            "unknown until a probe gets through."
        ),
        for_seconds=5 * 60,
        matches=(Match(TRANSIENT_RESULTS),),
        min_failures=3,
    ),
)


def _other_alerts(sel: str) -> tuple[Alert, ...]:
    stale = STALE_AFTER_SECONDS
    not_billed = f'probe!~"{_regex(NOT_STALE_PROBES)}"'
    window = format_duration(LATENCY_WINDOW_SECONDS)
    return (
        Alert(
            name="OpenAIKeyLatencyHigh",
            severity="warning",
            anchor="latency-high",
            summary="Probes of an API key are slow.",
            description=(
                "The {{ $labels.probe }} probe of key {{ $labels.key }} is slow: the 95th "
                "percentile of its last probe's duration, sampled over "
                f"{human_duration(LATENCY_WINDOW_SECONDS)}, is "
                "{{ $value | humanizeDuration }} and has been over "
                f"{LATENCY_THRESHOLD_SECONDS}s for {{for}}."
            ),
            for_seconds=LATENCY_FOR_SECONDS,
            # max by key: a key probed by two replicas while they reshard is one alert.
            expr=(
                "max by (key, probe) (\n"
                "  quantile_over_time(0.95,\n"
                f"    openai_probe_duration_seconds{{{sel}}}[{window}]\n"
                "  )\n"
                f") > {LATENCY_THRESHOLD_SECONDS}"
            ),
        ),
        Alert(
            name="OpenAIKeyProbesStale",
            severity="warning",
            anchor="probes-stale",
            summary="An API key has not been probed for 15 minutes.",
            description=(
                "The {{ $labels.probe }} probe of key {{ $labels.key }} last ran "
                "{{ $value | humanizeDuration }} ago; the exporter is up but its scheduler "
                "is not probing this key."
            ),
            for_seconds=5 * 60,
            expr=(
                "time() - max by (key, probe) (openai_probe_last_run_timestamp_seconds"
                f"{{{_selector(sel, not_billed)}}})"
                f"\n  > {stale}"
            ),
        ),
        Alert(
            name="OpenAIKeyModelNotListed",
            severity="critical",
            anchor="model-not-listed",
            summary="A model an application or probe depends on is no longer listed for a key.",
            description=(
                "Model {{ $labels.model }} is not in the model list of key {{ $labels.key }} "
                "(GET /v1/models) for {for}: OpenAI shut it down or this key may not use it. "
                "Every session or request naming it fails."
            ),
            for_seconds=2 * 60,
            # max by: a key probed by two replicas while they reshard is one alert.
            expr=f"max by (key, model) (openai_model_listed{{{sel}}}) == 0",
        ),
        Alert(
            name="OpenAIKeyModelShutdownSoon",
            severity="warning",
            anchor="model-shutdown",
            summary=f"A model an application depends on shuts down within {SHUTDOWN_WARNING_DAYS} days.",
            description=(
                "OpenAI shuts model {{ $labels.model }} (watched for key {{ $labels.key }}) "
                "down in {{ $value | humanizeDuration }}: move the application to its successor "
                "before then."
            ),
            for_seconds=10 * 60,
            expr=(
                "(\n"
                f"  max by (key, model) (openai_model_shutdown_timestamp_seconds{{{sel}}})"
                " - time()\n"
                f") < {SHUTDOWN_WARNING_DAYS * _DAY} > {SHUTDOWN_CRITICAL_DAYS * _DAY}"
            ),
        ),
        Alert(
            name="OpenAIKeyModelShutdownImminent",
            severity="critical",
            anchor="model-shutdown",
            summary=f"A model an application depends on shuts down within {SHUTDOWN_CRITICAL_DAYS} days.",
            description=(
                "OpenAI shuts model {{ $labels.model }} (watched for key {{ $labels.key }}) "
                "down in {{ $value | humanizeDuration }} (negative: the date has passed while it "
                "is still listed). Sessions and requests naming it fail from that day."
            ),
            for_seconds=10 * 60,
            # A model already gone from the list pages as OpenAIKeyModelNotListed, not twice.
            expr=(
                "(\n"
                f"  max by (key, model) (openai_model_shutdown_timestamp_seconds{{{sel}}})"
                " - time()\n"
                f") < {SHUTDOWN_CRITICAL_DAYS * _DAY}\n"
                f"unless on (key, model) (max by (key, model) (openai_model_listed{{{sel}}}) == 0)"
            ),
        ),
        Alert(
            name="OpenAIKeyExpiresSoon",
            severity="warning",
            anchor="key-expiring",
            summary=f"An API key expires within {EXPIRY_WARNING_DAYS} days.",
            description=(
                "Key {{ $labels.key }} expires in {{ $value | humanizeDuration }} (its entry "
                "in the organization's key list): create its replacement and roll it out "
                "before then."
            ),
            for_seconds=10 * 60,
            expr=(
                "(\n"
                f"  max by (key) (openai_key_expires_timestamp_seconds{{{sel}}}) - time()\n"
                f") < {EXPIRY_WARNING_DAYS * _DAY} > {EXPIRY_CRITICAL_SECONDS}"
            ),
        ),
        Alert(
            name="OpenAIKeyExpiresImminent",
            severity="critical",
            anchor="key-expiring",
            summary="An API key expires within 24 hours.",
            description=(
                "Key {{ $labels.key }} expires in {{ $value | humanizeDuration }} (negative: "
                "the date has passed). Every request made with it fails from then on."
            ),
            for_seconds=10 * 60,
            expr=(
                "(\n"
                f"  max by (key) (openai_key_expires_timestamp_seconds{{{sel}}}) - time()\n"
                f") < {EXPIRY_CRITICAL_SECONDS}"
            ),
        ),
        Alert(
            name="OpenAIKeyInventoryFailing",
            severity="warning",
            anchor="inventory-failing",
            summary="The admin key's inventory of the organization's keys is failing.",
            description=(
                "The key inventory pass of {{ $labels.instance }} has failed for {for} "
                "(see openai_admin_probe_result): revoked keys are reported as invalid_api_key "
                "and expiry dates are not refreshed until it works again."
            ),
            for_seconds=INVENTORY_FAILING_FOR_SECONDS,
            expr=f"openai_admin_probe_success{{{sel}}} == 0",
            per_key=False,
        ),
        Alert(
            name="OpenAIKeyFormatIssue",
            severity="info",
            anchor="key-format-issue",
            summary="An API key's value looks wrong.",
            description=(
                "Key {{ $labels.key }} has the format issue {{ $labels.issue }}; it may still "
                "work, but it is probably not the value that was meant."
            ),
            for_seconds=10 * 60,
            expr=f"max by (key, issue) (openai_key_format_issue{{{sel}}}) > 0",
        ),
    )


def _exporter_alerts(sel: str) -> tuple[Alert, ...]:
    return (
        Alert(
            name="OpenAIKeyExporterDown",
            severity="critical",
            anchor="exporter-down",
            summary="An openai-key-exporter replica cannot be scraped.",
            description=(
                "Prometheus has failed to scrape {{ $labels.instance }} (job {{ $labels.job }}) "
                "for {for}. The keys it probes are not watched: no key alert can fire for "
                "them."
            ),
            for_seconds=5 * 60,
            expr=f"up{{{sel}}} == 0",
            per_key=False,
        ),
        Alert(
            name="OpenAIKeyExporterAbsent",
            severity="critical",
            anchor="exporter-down",
            summary="Prometheus has no openai-key-exporter target at all.",
            description=(
                f"No target matches {sel} for {{for}}: service discovery lost the exporter "
                "or it was never deployed. No key is watched."
            ),
            for_seconds=10 * 60,
            expr=f"absent(up{{{sel}}})",
            per_key=False,
        ),
    )


def _selector(sel: str, *matchers: str) -> str:
    return ", ".join(m for m in (sel, *matchers) if m)


def _regex(values: Sequence[str]) -> str:
    return "|".join(values)


def class_expr(alert: Alert, sel: str) -> str:
    """Last result in the alert's classes, with >= min_failures consecutive failures.

    The value is the number of failures in a row. Series are paired per target
    (`ignoring (result)` keeps job and instance), then aggregated by key: a key moved between
    shards, or probed by two replicas while they reshard, is one alert.
    """
    parts = []
    for match in alert.matches:
        probe = f'probe="{match.probe}"' if match.probe else ""
        matcher = (
            f'result="{match.results[0]}"'
            if len(match.results) == 1
            else f'result=~"{_regex(match.results)}"'
        )
        parts.append(f"openai_probe_result{{{_selector(sel, probe, matcher)}}} == 1")
    joined = "\n    or ".join(parts)
    results = f"({joined})" if len(parts) == 1 else f"(\n    {joined}\n  )"
    return (
        "max by (key, probe, result) (\n"
        f"  {results}\n"
        "  * ignoring (result) group_left ()\n"
        f"  (openai_probe_consecutive_failures{{{_selector(sel)}}} >= {alert.min_failures})\n"
        ")"
    )


def format_duration(seconds: float) -> str:
    """A Prometheus duration: 300 -> 5m, 90 -> 1m30s, 1.5 -> 1s500ms."""
    millis = round(seconds * 1000)
    if millis <= 0:
        return "0s"
    out = []
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, millis = divmod(millis, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)


def human_duration(seconds: float) -> str:
    """For a person reading the alert: 300 -> "5 minutes", 15 -> "15 seconds"."""
    if seconds >= 60 and seconds % 60 == 0:
        minutes = int(seconds // 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds:g} second{'s' if seconds != 1 else ''}"


def _description(alert: Alert, settings: Settings, for_seconds: float) -> str:
    text = alert.description.replace("{for}", human_duration(for_seconds))
    if alert.matches:  # a result-class alert: since when that result
        text += since_sentence(settings.selector)
    if alert.finding_first:
        text = finding_first(settings.selector) + text
    return text


def _rule(alert: Alert, settings: Settings, expr: str) -> dict[str, object]:
    if alert.per_key:
        dashboard = f"{settings.grafana_url}/d/{DETAIL_UID}?var-key={{{{ $labels.key }}}}"
    else:
        dashboard = f"{settings.grafana_url}/d/{OVERVIEW_UID}"
    for_seconds = alert.for_seconds * settings.for_scale
    rule: dict[str, object] = {
        "alert": alert.name,
        "expr": expr,
        "for": format_duration(for_seconds),
    }
    if alert.severity == "critical" and alert.matches:  # the pages about a key
        rule["keep_firing_for"] = format_duration(KEEP_FIRING_SECONDS * settings.for_scale)
    return {
        **rule,
        "labels": {"severity": alert.severity},
        "annotations": {
            # A `for:` scaled for tests must not leave the text saying "5 minutes".
            "summary": alert.summary.replace("{for}", human_duration(for_seconds)),
            "description": _description(alert, settings, for_seconds),
            "runbook_url": f"{settings.runbook_url}#{alert.anchor}",
            "dashboard_url": dashboard,
        },
    }


def application_alerts(sel: str) -> tuple[Alert, ...]:
    """Alerts that join the exporter's series with the application's own."""
    label = APPLICATION_KEY_LABEL
    return (
        Alert(
            name="OpenAIKeyApplicationStartedBeforeKeyChange",
            severity="warning",
            anchor="application-restart",
            summary="An application started before its OpenAI key changed: it still uses the old key.",
            description=(
                "{{ $labels.job }} on {{ $labels.instance }} started "
                "{{ $value | humanizeDuration }} before key {{ $labels.key }} last changed in "
                "its source. It read the key once, at start: it sends the old key until it is "
                "restarted."
            ),
            for_seconds=5 * 60,
            # One alert per application process (group_right keeps its job and instance).
            expr=(
                f"max by (key) (openai_key_last_change_timestamp_seconds{{{sel}}})\n"
                "- on (key) group_right ()\n"
                "max by (key, job, instance) (\n"
                f'  label_replace(process_start_time_seconds{{{label}!=""}}, '
                f'"key", "$1", "{label}", "(.+)")\n'
                ")\n"
                "> 0"
            ),
        ),
    )


def application_rule_groups(settings: Settings) -> dict[str, object]:
    rules = [_rule(a, settings, a.expr) for a in application_alerts(settings.selector)]
    return {"groups": [{"name": "openai-key-application", "rules": rules}]}


def all_alerts(settings: Settings) -> list[Alert]:
    sel = settings.selector
    return [*CLASS_ALERTS, *_other_alerts(sel), *_exporter_alerts(sel)]


def rule_groups(settings: Settings) -> dict[str, object]:
    sel = settings.selector
    key_rules = [_rule(a, settings, class_expr(a, sel)) for a in CLASS_ALERTS]
    key_rules += [_rule(a, settings, a.expr) for a in _other_alerts(sel)]
    exporter_rules = [_rule(a, settings, a.expr) for a in _exporter_alerts(sel)]
    return {
        "groups": [
            {"name": "openai-key", "interval": settings.eval_interval, "rules": key_rules},
            {"name": "openai-key-exporter", "rules": exporter_rules},
        ]
    }


class _Dumper(yaml.SafeDumper):
    pass


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str_presenter)


_HEADER = (
    "# Generated by alerts/generate.py from its alert table; do not edit by hand.\n"
    "# Regenerate with: python alerts/generate.py (see --help for URLs and the job selector)\n"
)


def render(settings: Settings) -> str:
    body = yaml.dump(rule_groups(settings), Dumper=_Dumper, sort_keys=False, width=1000)
    return _HEADER + body


def render_application(settings: Settings) -> str:
    """The optional rule file: load it once the application's process_start_time_seconds
    carries the `openai_key` label."""
    note = (
        "# Optional: needs the application's process_start_time_seconds labelled "
        f"{APPLICATION_KEY_LABEL}=<the exporter's key name> (alerts/README.md).\n"
    )
    groups = application_rule_groups(settings)
    return _HEADER + note + yaml.dump(groups, Dumper=_Dumper, sort_keys=False, width=1000)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="file to write")
    parser.add_argument(
        "--application-output",
        type=Path,
        help="where to write the optional application rule file (default: beside the "
        "committed rules when --output is left as is, else not written)",
    )
    parser.add_argument(
        "--runbook-url",
        default=DEFAULT_RUNBOOK_URL,
        help="the runbook's address: the exporter's --web.external-url followed by /runbook "
        "(default: %(default)s, the compose stack's exporter)",
    )
    parser.add_argument(
        "--grafana-url",
        "--dashboard-url",
        dest="grafana_url",
        default=DEFAULT_GRAFANA_URL,
        help="Grafana's base address, for the dashboard links (default: %(default)s)",
    )
    parser.add_argument(
        "--selector",
        default=DEFAULT_SELECTOR,
        help="label matchers selecting the exporter's series, e.g. 'job=\"openai-key-exporter\"'",
    )
    parser.add_argument(
        "--for-scale",
        type=float,
        default=1.0,
        help="multiply every `for:` and `keep_firing_for:` by this (0.1 for fast end-to-end tests)",
    )
    parser.add_argument(
        "--eval-interval",
        default=DEFAULT_EVAL_INTERVAL,
        help="evaluation interval of the key alert group",
    )
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 if --output differs"
    )
    args = parser.parse_args(argv)
    if args.for_scale <= 0:
        parser.error("--for-scale must be positive")
    settings = Settings(
        runbook_url=args.runbook_url.rstrip("/"),
        grafana_url=args.grafana_url.rstrip("/"),
        selector=args.selector.strip(),
        for_scale=args.for_scale,
        eval_interval=args.eval_interval,
    )
    outputs = {args.output: render(settings)}
    application_output = args.application_output or (
        DEFAULT_APPLICATION_OUTPUT if args.output == DEFAULT_OUTPUT else None
    )
    if application_output is not None:
        outputs[application_output] = render_application(settings)
    if args.check:
        stale = 0
        for path, text in outputs.items():
            current = path.read_text(encoding="utf-8") if path.exists() else ""
            if current == text:
                continue
            sys.stdout.writelines(
                difflib.unified_diff(
                    current.splitlines(keepends=True),
                    text.splitlines(keepends=True),
                    str(path),
                    "generated",
                )
            )
            print(f"{path} is stale: run python alerts/generate.py", file=sys.stderr)
            stale = 1
        return stale
    for path, text in outputs.items():
        path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
