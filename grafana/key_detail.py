"""The key detail dashboard: one key's probes, its last error and the runbook section for it."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builders

from grafana import panels, runbook
from grafana.identifiers import DETAIL_UID
from grafana.panels import (
    COLOR_BACKGROUND,
    instant_query,
    instant_table_query,
    override,
    range_query,
    thresholds,
)
from grafana.promql import last_increase_time, probe_matcher, selector

_SEL = ('job=~"$job"', 'key="$key"')


def _result(probe_matcher: str, by: str) -> str:
    series = selector("openai_probe_result", *_SEL, *([probe_matcher] if probe_matcher else []))
    return f"max by ({by}) ({panels.with_result_runbook(series, 'result', 'runbook')})"


def _last_error() -> str:
    """Per probe, the error code that last increased, valued at that time (Unix ms)."""
    times = last_increase_time(selector("openai_probe_errors_total", *_SEL), "$__interval")
    labelled = panels.with_code_runbook(times, "error_runbook")
    return f"1000 * topk by (probe) (1, max by (probe, code, error_runbook) ({labelled}))"


def _runbook_links(label: str) -> list[dict[str, object]]:
    return [panels.data_link("Runbook: ${__value.text}", runbook.field_link(label))]


def summary_stats() -> list[panels.PanelBuilder]:
    def result_stat(probe: str, title: str) -> panels.PanelBuilder:
        return panels.stat_panel(
            f"{title} result",
            f"Result class of the last {title} probe. Anything but ok links to its runbook "
            "section.",
            [instant_table_query(_result(f'probe="{probe}"', "result, runbook"), "A")],
            text_field="result",
            mappings=panels.result_mappings(),
            links=_runbook_links("runbook"),
            width=3,  # seven stats share the 24 columns
        )

    last_error = f"topk(1, {_last_error()})"
    return [
        panels.stat_panel(
            "Valid",
            "Whether OpenAI accepts the key (openai_key_valid). A result that says nothing about "
            "the key, such as a timeout, keeps the last verdict.",
            [instant_query(f"max({selector('openai_key_valid', *_SEL)})", "valid")],
            mappings=panels.valid_mappings(),
            panel_thresholds=thresholds("red", (1, "green")),
            runbook_anchors=(runbook.INVALID_ANCHOR,),
            width=3,
        ),
        panels.stat_panel(
            "Fingerprint",
            "The key in OpenAI's redacted form (first 8 and last 4 characters). It changes when "
            "the key is rotated; compare it with the key list in the OpenAI dashboard.",
            [
                instant_table_query(
                    f"max by (fingerprint, kind) ({selector('openai_key_info', *_SEL)})", "A"
                )
            ],
            text_field="fingerprint",
            panel_thresholds=thresholds("blue"),
        ),
        result_stat("rest", "REST"),
        result_stat("realtime", "Realtime"),
        result_stat("live", "GPT-Live"),
        panels.stat_panel(
            "Last error code",
            "The error code of the most recent failed probe in the time range (OpenAI's "
            "error.code or the exporter's result class), linked to its runbook section.",
            [instant_table_query(last_error, "A")],
            text_field="code",
            no_value="none in range",
            panel_thresholds=thresholds("orange"),
            links=_runbook_links("error_runbook"),
        ),
        panels.stat_panel(
            "Key format issues",
            "Problems with how the key is stored (openai_key_format_issue), such as a trailing "
            "newline, quotes or a world-readable file. Empty is good.",
            [
                instant_table_query(
                    f"max by (issue) ({selector('openai_key_format_issue', *_SEL)} == 1)", "A"
                )
            ],
            text_field="issue",
            max_values=8,
            no_value="none",
            panel_thresholds=thresholds("orange"),
            runbook_anchors=(runbook.FORMAT_ANCHOR,),
        ),
    ]


def probes_table() -> panels.PanelBuilder:
    sel = selector
    return (
        panels.table_panel(
            "Probes",
            "One row per probe of this key: last result and last error code (both linked to "
            "the runbook), when the last error happened, how long ago the probe last "
            "succeeded, failures in a row, the HTTP status of the last answer and the probe's "
            "duration.",
            [
                instant_table_query(_result("", "probe, result, runbook"), "A"),
                instant_table_query(_last_error(), "B"),
                instant_table_query(
                    "time() - max by (probe) "
                    f"({sel('openai_probe_last_success_timestamp_seconds', *_SEL)})",
                    "C",
                ),
                instant_table_query(
                    f"max by (probe) ({sel('openai_probe_consecutive_failures', *_SEL)})", "D"
                ),
                instant_table_query(
                    f"max by (probe) ({sel('openai_probe_http_status_code', *_SEL)})", "E"
                ),
                instant_table_query(
                    f"max by (probe) ({sel('openai_probe_duration_seconds', *_SEL)})", "F"
                ),
            ],
            height=6,
            runbook_anchors=(
                runbook.OK_ANCHOR,
                runbook.GENERAL_ANCHOR,
            ),
        )
        .with_transformation(
            panels.organize(
                order=[
                    "probe",
                    "result",
                    "code",
                    "Value #B",
                    "Value #C",
                    "Value #D",
                    "Value #E",
                    "Value #F",
                    "runbook",
                    "error_runbook",
                ],
                renames={
                    "probe": "Probe",
                    "result": "Result",
                    "code": "Last error code",
                    "Value #B": "Last error",
                    "Value #C": "Last success",
                    "Value #D": "Failures in a row",
                    "Value #E": "HTTP status",
                    "Value #F": "Duration",
                },
                hidden=["Time", "Value #A"],
            )
        )
        .overrides(
            [
                override(
                    "Result",
                    mappings=panels.result_mappings(),
                    custom__cellOptions=COLOR_BACKGROUND,
                    links=_runbook_links("runbook"),
                ),
                override(
                    "Last error code",
                    custom__cellOptions={"type": "color-text"},
                    color={"mode": "fixed", "fixedColor": "orange"},
                    links=_runbook_links("error_runbook"),
                ),
                override("Last error", unit="dateTimeFromNow"),
                override(
                    "Last success",
                    unit="s",
                    decimals=0,
                    thresholds=panels.age_thresholds().build(),
                    mappings=[panels.never_mapping()],
                    custom__cellOptions=COLOR_BACKGROUND,
                ),
                override(
                    "Failures in a row",
                    thresholds=thresholds("green", (1, "orange"), (3, "red")).build(),
                    custom__cellOptions=COLOR_BACKGROUND,
                ),
                override(
                    "HTTP status",
                    thresholds=thresholds("green", (300, "orange"), (400, "red")).build(),
                    custom__cellOptions={"type": "color-text"},
                ),
                override("Duration", unit="s"),
                override("runbook", custom__hidden=True),
                override("error_runbook", custom__hidden=True),
            ]
        )
    )


def timeseries_panels() -> list[tuple[str, list[panels.PanelBuilder]]]:
    sel = selector
    durations = sel("openai_probe_duration_seconds", *_SEL)
    latency = panels.timeseries_panel(
        "Probe duration",
        "Per probe type, the total duration of this key's last probe "
        "(openai_probe_duration_seconds, held until the next probe), and its 95th percentile "
        "sampled over 10 minutes: the value OpenAIKeyLatencyHigh compares with 5 s.",
        [
            range_query(f"max by (probe) ({durations})", "{{probe}} last", "A"),
            range_query(
                f"max by (probe) (quantile_over_time(0.95, {durations}[10m]))",
                "{{probe}} p95 over 10m",
                "B",
            ),
        ],
        "s",
        width=8,
        panel_thresholds=thresholds("green", (2.5, "orange"), (5, "red")),
        runbook_anchors=(runbook.LATENCY_ANCHOR,),
    )
    phases = [
        panels.timeseries_panel(
            f"{title} phases",
            f"Where each {title} probe of this key spent its time, stacked: {', '.join(names)}.",
            [
                range_query(
                    "max by (phase) ("
                    f"{sel('openai_probe_phase_duration_seconds', *_SEL, probe_matcher(probe))})",
                    "{{phase}}",
                )
            ],
            "s",
            width=8,
            stacked=True,
        )
        for probe, title, names in (
            ("rest", "REST", ("connect", "tls", "first_byte", "transfer")),
            ("realtime", "Realtime", ("connect", "session_created", "session_updated")),
            ("live", "GPT-Live", ("connect", "session_started", "session_closed")),
        )
    ]
    failures: list[panels.PanelBuilder] = [
        panels.timeseries_panel(
            "Probe errors by code",
            "Failed probes of this key per scrape interval, by probe and error code.",
            [
                range_query(
                    "sum by (probe, code) (increase("
                    f"{sel('openai_probe_errors_total', *_SEL)}[$__rate_interval]))",
                    "{{probe}} {{code}}",
                )
            ],
            "short",
            width=8,
            bars=True,
            stacked=True,
            runbook_anchors=(runbook.GENERAL_ANCHOR,),
        ),
        panels.timeseries_panel(
            "Realtime close codes",
            "Realtime WebSocket closes of this key per scrape interval, by close code; the "
            "last close code is the series' name in the legend.",
            [
                range_query(
                    "sum by (code) (increase("
                    f"{sel('openai_realtime_closes_total', *_SEL)}[$__rate_interval]))",
                    "{{code}}",
                    "A",
                ),
            ],
            "short",
            width=8,
            bars=True,
            stacked=True,
            runbook_anchors=(runbook.REALTIME_ANCHOR,),
        ),
        panels.timeseries_panel(
            "GPT-Live close codes",
            "GPT-Live WebSocket closes of this key per scrape interval, by close code (the "
            "opt-in live probe; empty when it is not configured).",
            [
                range_query(
                    "sum by (code) (increase("
                    f"{sel('openai_live_closes_total', *_SEL)}[$__rate_interval]))",
                    "{{code}}",
                    "A",
                ),
            ],
            "short",
            width=8,
            bars=True,
            stacked=True,
            runbook_anchors=(runbook.REALTIME_ANCHOR,),
        ),
        panels.timeseries_panel(
            "HTTP status and close code",
            "Status code of the last REST answer or WebSocket handshake, and the close code of "
            "the last Realtime and GPT-Live sessions (openai_realtime_close_code, "
            "openai_live_close_code).",
            [
                range_query(
                    f"max by (probe) ({sel('openai_probe_http_status_code', *_SEL)})",
                    "{{probe}} HTTP status",
                    "A",
                ),
                range_query(
                    f"max({sel('openai_realtime_close_code', *_SEL)})",
                    "Realtime close code",
                    "B",
                ),
                range_query(
                    f"max({sel('openai_live_close_code', *_SEL)})",
                    "GPT-Live close code",
                    "C",
                ),
            ],
            "none",
            width=16,
        ),
    ]

    def ratelimit(kind: str) -> panels.PanelBuilder:
        return panels.timeseries_panel(
            f"Rate limit: {kind}",
            f"The key's per-minute {kind} limit and what was left of it after each probe, from "
            "OpenAI's x-ratelimit-* headers. Empty when OpenAI sent no such headers.",
            [
                range_query(f"max({sel(f'openai_ratelimit_limit_{kind}', *_SEL)})", "limit", "A"),
                range_query(
                    f"max({sel(f'openai_ratelimit_remaining_{kind}', *_SEL)})", "remaining", "B"
                ),
            ],
            "short",
            width=8,
        )

    budget = [
        ratelimit("requests"),
        ratelimit("tokens"),
        panels.timeseries_panel(
            "Upstream requests per minute",
            "Requests the probes of this key sent to OpenAI per minute "
            "(openai_probe_requests_total): what the exporter costs the key's rate limit.",
            [
                range_query(
                    "sum by (probe) (rate("
                    f"{sel('openai_probe_requests_total', *_SEL)}[$__rate_interval])) * 60",
                    "{{probe}}",
                )
            ],
            "reqpm",
            width=8,
            runbook_anchors=(runbook.RATE_LIMITED_ANCHOR,),
        ),
    ]
    budget.append(
        panels.timeseries_panel(
            "Billed session seconds per hour",
            "Session seconds the opt-in GPT-Live probe of this key was billed for, per hour "
            "(openai_probe_billed_seconds_total; about $0.05 a minute for gpt-live-1).",
            [
                range_query(
                    "sum(rate("
                    f"{sel('openai_probe_billed_seconds_total', *_SEL)}[$__rate_interval])) * 3600",
                    "billed seconds per hour",
                )
            ],
            "s",
            width=8,
        )
    )
    return [
        ("Latency", [latency, *phases]),
        ("Failures", failures),
        ("Rate limits and probe budget", budget),
        ("Model lifecycle", [models_table()]),
    ]


def models_table() -> panels.PanelBuilder:
    """Each watched model: listed or not, and days until OpenAI's shutdown date."""
    listed = f"max by (model) ({selector('openai_model_listed', *_SEL)})"
    shutdown = selector("openai_model_shutdown_timestamp_seconds", *_SEL)
    return (
        panels.table_panel(
            "Models",
            "The models this key's probes use and those in its models: field, as the REST "
            "probe's own model list shows them: listed or not (openai_model_listed), and the "
            "days left until OpenAI's shutdown date (openai_model_shutdown_timestamp_seconds; "
            "empty: no date). Empty when the key cannot read the list.",
            [
                instant_table_query(listed, "A"),
                instant_table_query(f"(max by (model) ({shutdown}) - time()) / 86400", "B"),
            ],
            height=6,
            runbook_anchors=(runbook.MODEL_NOT_LISTED_ANCHOR, runbook.MODEL_SHUTDOWN_ANCHOR),
        )
        .with_transformation(
            panels.organize(
                order=["model", "Value #A", "Value #B"],
                renames={"model": "Model", "Value #A": "Listed", "Value #B": "Days left"},
                hidden=["Time"],
            )
        )
        .overrides(
            [
                override(
                    "Listed",
                    mappings=panels.listed_mappings(),
                    custom__cellOptions=COLOR_BACKGROUND,
                ),
                override(
                    "Days left",
                    decimals=0,
                    thresholds=thresholds("red", (7, "orange"), (30, "green")).build(),
                    custom__cellOptions=COLOR_BACKGROUND,
                ),
            ]
        )
    )


def build(runbook_url: str = runbook.RUNBOOK_URL) -> dashboard_builders.Dashboard:
    board = panels.base_dashboard(
        "OpenAI key detail",
        DETAIL_UID,
        "One OpenAI API key as openai-key-exporter sees it: each probe's result, the last "
        "error and its runbook section, latency, rate limits and rotations.",
        multi_key=False,
        runbook_url=runbook_url,
    )
    for stat in summary_stats():
        board = board.with_panel(stat)
    board = board.with_panel(probes_table())
    for title, section in timeseries_panels():
        board = board.with_row(panels.row(title))
        for panel in section:
            board = board.with_panel(panel)
    return board
