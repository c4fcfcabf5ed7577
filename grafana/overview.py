"""The overview dashboard: every key in one table, then what the probes cost and how they fail."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders

from grafana import panels, runbook
from grafana.identifiers import OVERVIEW_UID
from grafana.panels import (
    COLOR_BACKGROUND,
    instant_query,
    instant_table_query,
    override,
    range_query,
    thresholds,
)
from grafana.promql import probe_matcher, renamed_label, selector

_SEL = ('job=~"$job"', 'key=~"$key"')


def _probe_result(probe: str, column: str) -> str:
    series = selector("openai_probe_result", *_SEL, f'probe="{probe}"')
    labelled = panels.with_result_runbook(
        renamed_label(series, "result", column), "result", f"{column}_runbook"
    )
    return f"max by (key, {column}, {column}_runbook) ({labelled})"


def keys_table() -> panels.PanelBuilder:
    result_link = "{column}: ${{__value.text}} (runbook)"
    panel = (
        panels.table_panel(
            "Keys",
            "One row per configured key: its redacted fingerprint, whether OpenAI accepts it, the "
            "last result of each probe (GPT-Live only where opted in) and how long ago every probe last succeeded (the oldest "
            "of the probes' last successes). A failing result links to its runbook section; a "
            "key name opens the key detail dashboard.",
            [
                instant_table_query(
                    f"max by (key, fingerprint) ({selector('openai_key_info', *_SEL)})", "A"
                ),
                instant_table_query(f"max by (key) ({selector('openai_key_valid', *_SEL)})", "B"),
                instant_table_query(_probe_result("rest", "rest"), "C"),
                instant_table_query(_probe_result("realtime", "realtime"), "D"),
                instant_table_query(
                    "time() - min by (key) "
                    f"({selector('openai_probe_last_success_timestamp_seconds', *_SEL)})",
                    "E",
                ),
                instant_table_query(_probe_result("live", "live"), "F"),
            ],
            height=10,
            runbook_anchors=(
                runbook.OK_ANCHOR,
                runbook.GENERAL_ANCHOR,
            ),
        )
        .with_transformation(
            panels.organize(
                order=[
                    "key",
                    "fingerprint",
                    "Value #B",
                    "rest",
                    "realtime",
                    "live",
                    "Value #E",
                    "rest_runbook",
                    "realtime_runbook",
                    "live_runbook",
                ],
                renames={
                    "key": "Key",
                    "fingerprint": "Fingerprint",
                    "Value #B": "Valid",
                    "rest": "REST",
                    "realtime": "Realtime",
                    "live": "GPT-Live",
                    "Value #E": "Last success",
                },
                hidden=["Time", "Value #A", "Value #C", "Value #D", "Value #F"],
            )
        )
        .sort_by([common_builders.TableSortByFieldState().display_name("Valid").desc(False)])
        .overrides(
            [
                override("Key", links=[panels.detail_link("${__value.raw}")]),
                override(
                    "Valid",
                    mappings=panels.valid_mappings(),
                    custom__cellOptions=COLOR_BACKGROUND,
                ),
                override(
                    "REST",
                    mappings=panels.result_mappings(),
                    custom__cellOptions=COLOR_BACKGROUND,
                    links=[
                        panels.data_link(
                            result_link.format(column="REST"),
                            runbook.field_link("rest_runbook"),
                        )
                    ],
                ),
                override(
                    "Realtime",
                    mappings=panels.result_mappings(),
                    custom__cellOptions=COLOR_BACKGROUND,
                    links=[
                        panels.data_link(
                            result_link.format(column="Realtime"),
                            runbook.field_link("realtime_runbook"),
                        )
                    ],
                ),
                override(
                    "GPT-Live",
                    mappings=panels.result_mappings(),
                    custom__cellOptions=COLOR_BACKGROUND,
                    links=[
                        panels.data_link(
                            result_link.format(column="GPT-Live"),
                            runbook.field_link("live_runbook"),
                        )
                    ],
                ),
                override(
                    "Last success",
                    unit="s",
                    decimals=0,
                    thresholds=panels.age_thresholds().build(),
                    mappings=[panels.never_mapping()],
                    custom__cellOptions=COLOR_BACKGROUND,
                ),
                override("rest_runbook", custom__hidden=True),
                override("realtime_runbook", custom__hidden=True),
                override("live_runbook", custom__hidden=True),
            ]
        )
    )
    return panel


def summary_stats() -> list[panels.PanelBuilder]:
    def count(expr: str) -> str:
        return f"count({expr}) or vector(0)"

    return [
        panels.stat_panel(
            "Keys probed",
            "Keys the exporter probes (after the job and key filters).",
            [
                instant_query(
                    count(f"count by (key) ({selector('openai_key_valid', *_SEL)})"), "keys"
                )
            ],
            panel_thresholds=thresholds("blue"),
        ),
        panels.stat_panel(
            "Invalid keys",
            "Keys OpenAI rejects (openai_key_valid == 0): revoked, deleted, wrong, missing or "
            "from a deactivated account. Runbook: key-invalid.",
            [instant_query(count(f"{selector('openai_key_valid', *_SEL)} == 0"), "invalid")],
            panel_thresholds=thresholds("green", (1, "red")),
            runbook_anchors=(runbook.INVALID_ANCHOR,),
        ),
        panels.stat_panel(
            "Failing keys",
            "Keys with at least one probe whose last run failed, for any reason (quota, rate "
            "limit, network, Realtime access, ...). The Keys table says which probe and why.",
            [
                instant_query(
                    count(f"max by (key) ({selector('openai_probe_success', *_SEL)} == 0)"),
                    "failing",
                )
            ],
            panel_thresholds=thresholds("green", (1, "red")),
            runbook_anchors=(runbook.GENERAL_ANCHOR,),
        ),
        panels.stat_panel(
            "Key format issues",
            "Keys whose source has a format problem the exporter noticed (openai_key_format_issue"
            "), such as a trailing newline, quotes or loose file permissions.",
            [
                instant_query(
                    count(f"count by (key) ({selector('openai_key_format_issue', *_SEL)} == 1)"),
                    "issues",
                )
            ],
            panel_thresholds=thresholds("green", (1, "orange")),
            runbook_anchors=(runbook.FORMAT_ANCHOR,),
        ),
        panels.stat_panel(
            "Upstream requests / min",
            "Requests the probes sent to OpenAI per minute, all keys together: the probe budget.",
            [
                instant_query(
                    "sum(rate("
                    f"{selector('openai_probe_requests_total', *_SEL)}[$__rate_interval])) * 60",
                    "requests",
                )
            ],
            unit="reqpm",
            panel_thresholds=thresholds("blue"),
            runbook_anchors=(runbook.RATE_LIMITED_ANCHOR,),
        ),
        panels.stat_panel(
            "Exporter version",
            "Version of openai-key-exporter (openai_key_exporter_build_info); several values "
            "mean a rollout is in progress or instances differ.",
            [
                instant_table_query(
                    'count by (version) (openai_key_exporter_build_info{job=~"$job"})', "A"
                )
            ],
            text_field="version",
            max_values=5,
            panel_thresholds=thresholds("blue"),
        ),
    ]


def latency_panels() -> list[panels.PanelBuilder]:
    # The histogram has no key label: the $key variable cannot narrow it.
    buckets = selector("openai_probe_latency_seconds_bucket", 'job=~"$job"')
    quantiles = [
        range_query(
            f"histogram_quantile({q}, sum by (probe, le) (rate({buckets}[$__rate_interval])))",
            f"{{{{probe}}}} p{int(q * 100)}",
            ref_id,
        )
        for q, ref_id in ((0.5, "A"), (0.95, "B"))
    ]
    phases = [
        panels.timeseries_panel(
            f"{title} phases",
            f"Where the last {title} probe of each key spent its time, averaged over keys and "
            f"stacked: {', '.join(names)}. A growing phase points at the layer that is slow.",
            [
                range_query(
                    "avg by (phase) "
                    f"({selector('openai_probe_phase_duration_seconds', *_SEL, probe_matcher(probe))})",
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
        )
    ]
    return [
        panels.timeseries_panel(
            "Probe latency p50 / p95",
            "Median and 95th percentile of probe latency per probe type, from the "
            "openai_probe_latency_seconds histogram: every probe that sent a request, of every "
            "key the selected exporters hold (the histogram has no key label, so the key "
            "selection does not apply). Per-key durations are on the key detail dashboard.",
            quantiles,
            "s",
            width=8,
            panel_thresholds=thresholds("green", (2.5, "orange"), (5, "red")),
            runbook_anchors=(runbook.LATENCY_ANCHOR,),
        ),
        *phases,
    ]


def failure_panels() -> list[panels.PanelBuilder]:
    return [
        panels.timeseries_panel(
            "Probe errors by code",
            "Failed probes per scrape interval, by probe and error code (OpenAI's error.code or "
            "the exporter's result class). The runbook has a section for each code.",
            [
                range_query(
                    "sum by (probe, code) (increase("
                    f"{selector('openai_probe_errors_total', *_SEL)}[$__rate_interval]))",
                    "{{probe}} {{code}}",
                )
            ],
            "short",
            bars=True,
            stacked=True,
            runbook_anchors=(runbook.GENERAL_ANCHOR,),
        ),
        panels.timeseries_panel(
            "Realtime close codes",
            "Realtime WebSocket closes per scrape interval, by close code: 1000 is the probe's "
            "own normal close; 3000 and 4xxx carry OpenAI's error (an invalid key, say), 1006 "
            "is a dropped connection and 1011 a server error.",
            [
                range_query(
                    "sum by (code) (increase("
                    f"{selector('openai_realtime_closes_total', *_SEL)}[$__rate_interval]))",
                    "{{code}}",
                )
            ],
            "short",
            bars=True,
            stacked=True,
            runbook_anchors=(runbook.REALTIME_ANCHOR,),
        ),
        panels.timeseries_panel(
            "Consecutive failures",
            "Failed runs in a row per key and probe; one failure can be noise, a growing line "
            "is an outage.",
            [
                range_query(
                    f"max by (key, probe) ({selector('openai_probe_consecutive_failures', *_SEL)})",
                    "{{key}} {{probe}}",
                )
            ],
            "short",
            panel_thresholds=thresholds("green", (1, "orange"), (3, "red")),
            runbook_anchors=(runbook.GENERAL_ANCHOR,),
        ),
        panels.timeseries_panel(
            "Time since last probe run",
            "Seconds since each probe last ran. It should stay below the probe interval; a "
            "climbing line means the scheduler is stuck or overloaded.",
            [
                range_query(
                    "time() - max by (key, probe) "
                    f"({selector('openai_probe_last_run_timestamp_seconds', *_SEL)})",
                    "{{key}} {{probe}}",
                )
            ],
            "s",
            panel_thresholds=thresholds("green", (300, "orange"), (900, "red")),
            runbook_anchors=(runbook.STALE_ANCHOR,),
        ),
    ]


def budget_panels() -> list[panels.PanelBuilder]:
    def remaining(kind: str) -> str:
        return (
            f"min by (key) ({selector(f'openai_ratelimit_remaining_{kind}', *_SEL)}"
            f" / {selector(f'openai_ratelimit_limit_{kind}', *_SEL)})"
        )

    return [
        panels.timeseries_panel(
            "Rate limit remaining",
            "Share of the per-minute request and token limits left after each probe, per key, "
            "from OpenAI's x-ratelimit-* headers. Only keys whose answers carry the headers "
            "appear. Near 0 means the key's real traffic is about to be throttled.",
            [
                range_query(remaining("requests"), "{{key}} requests", "A"),
                range_query(remaining("tokens"), "{{key}} tokens", "B"),
            ],
            "percentunit",
            max_value=1,
            panel_thresholds=thresholds("red", (0.1, "orange"), (0.25, "green")),
            runbook_anchors=(runbook.RATE_LIMITED_ANCHOR,),
        ),
        panels.timeseries_panel(
            "Upstream requests per minute",
            "Requests the probes sent to OpenAI per minute, per key and probe "
            "(openai_probe_requests_total): what the exporter costs each key's rate limit.",
            [
                range_query(
                    "sum by (key, probe) (rate("
                    f"{selector('openai_probe_requests_total', *_SEL)}[$__rate_interval])) * 60",
                    "{{key}} {{probe}}",
                )
            ],
            "reqpm",
            runbook_anchors=(runbook.RATE_LIMITED_ANCHOR,),
        ),
    ]


def build(runbook_url: str = runbook.RUNBOOK_URL) -> dashboard_builders.Dashboard:
    board = panels.base_dashboard(
        "OpenAI keys overview",
        OVERVIEW_UID,
        "Every OpenAI API key openai-key-exporter probes: valid or not, which probe fails "
        "and why, with links to the runbook.",
        multi_key=True,
        runbook_url=runbook_url,
    )
    for stat in summary_stats():
        board = board.with_panel(stat)
    board = board.with_panel(keys_table())
    sections = (
        ("Latency", latency_panels()),
        ("Failures", failure_panels()),
        ("Rate limits and probe budget", budget_panels()),
    )
    for title, section in sections:
        board = board.with_row(panels.row(title))
        for panel in section:
            board = board.with_panel(panel)
    return board
