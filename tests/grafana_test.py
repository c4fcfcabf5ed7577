"""Dashboards: the committed JSON is what the code generates, decodes in the SDK, links only to
runbook sections that exist and queries only metrics the exporter has; live, every query returns
data from a real Prometheus scraping the exporter, which probes the simulator."""

from __future__ import annotations

import datetime
import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard, ValueMap

from exporter.classify import Result
from grafana import generate, panels, runbook
from grafana.identifiers import DETAIL_UID, OVERVIEW_UID
from tests.conftest import require_tool
from tests.harness import (
    Process,
    free_port,
    start_exporter_process,
    start_simulator_process,
    wait_http,
    write_config,
    write_key,
)
from tests.support.admin import add_admin_block, list_in_organization, write_admin_key

REPO = Path(__file__).resolve().parents[1]
GRAFANA = REPO / "grafana"
RUNBOOK = REPO / "docs" / "runbook.md"
DASHBOARDS_MOUNT = "/var/lib/grafana/dashboards/openai-key-exporter"

# What the exporter exposes (the brief's list). The live test compares it with a real scrape.
EXPORTED_METRICS = frozenset(
    {
        "openai_key_valid",
        "openai_probe_success",
        "openai_probe_result",
        "openai_probe_duration_seconds",
        "openai_probe_phase_duration_seconds",
        "openai_probe_latency_seconds",
        "openai_probe_http_status_code",
        "openai_probe_errors_total",
        "openai_probe_last_run_timestamp_seconds",
        "openai_probe_last_success_timestamp_seconds",
        "openai_key_info",
        "openai_key_format_issue",
        "openai_ratelimit_limit_requests",
        "openai_ratelimit_remaining_requests",
        "openai_ratelimit_limit_tokens",
        "openai_ratelimit_remaining_tokens",
        "openai_probe_requests_total",
        "openai_probe_consecutive_failures",
        "openai_realtime_close_code",
        "openai_realtime_closes_total",
        "openai_live_close_code",
        "openai_live_closes_total",
        "openai_probe_billed_seconds_total",
        "openai_model_listed",
        "openai_model_shutdown_timestamp_seconds",
        "openai_key_exporter_build_info",
        # The key inventory, with an admin key (exporter/inventory.py)
        "openai_admin_probe_success",
        "openai_admin_last_success_timestamp_seconds",
        "openai_admin_probe_result",
        "openai_admin_requests_total",
        "openai_key_inventory_listed",
        "openai_key_inventory_matches",
        "openai_key_created_timestamp_seconds",
        "openai_key_expires_timestamp_seconds",
        "openai_key_owner_info",
        "openai_project_api_keys",
    }
)
HISTOGRAMS = frozenset({"openai_probe_latency_seconds"})
# Aggregated over every key an exporter holds, so without a `key` label: a key matcher on them
# would select nothing. Per-key latency is openai_probe_duration_seconds.
UNKEYED_METRICS = frozenset(
    {
        "openai_probe_latency_seconds",
        # the admin key's inventory: one per exporter, and per project
        "openai_admin_probe_success",
        "openai_admin_last_success_timestamp_seconds",
        "openai_admin_probe_result",
        "openai_admin_requests_total",
        "openai_project_api_keys",
    }
)
_SELECTOR = re.compile(r"\b(openai_[a-z_]+)\{([^}]*)\}")
_METRIC = re.compile(r"\b(openai_[a-z_]+)\b")
_ANCHOR = re.compile(r'<a\s+id="([^"]+)"\s*>\s*</a>')
_FRAGMENT = re.compile(r'"#([a-z0-9-]*)"')  # the runbook label values the queries write
_STATIC_RUNBOOK_LINK = re.compile(r"\$\{runbook_url\}#([a-z0-9-]+)")


@dataclass(frozen=True)
class Query:
    dashboard: str  # uid
    panel: str  # title
    ref_id: str
    expr: str


def committed(filename: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GRAFANA / "dashboards" / filename).read_text())
    return data


def all_dashboards() -> dict[str, dict[str, Any]]:
    return {filename: committed(filename) for filename in generate.DASHBOARDS}


def walk_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # a collapsed row holds its panels


def panel_queries(dashboard: dict[str, Any]) -> list[Query]:
    return [
        Query(dashboard["uid"], panel["title"], target["refId"], target["expr"])
        for panel in walk_panels(dashboard)
        for target in panel.get("targets", [])
    ]


def annotation_queries(dashboard: dict[str, Any]) -> list[Query]:
    return [
        Query(dashboard["uid"], f"annotation: {annotation['name']}", "Anno", annotation["expr"])
        for annotation in dashboard["annotations"]["list"]
        if "expr" in annotation
    ]


def variable_queries(dashboard: dict[str, Any]) -> list[str]:
    return [
        variable["query"]
        for variable in dashboard["templating"]["list"]
        if variable["type"] == "query"
    ]


def every_expr() -> list[str]:
    exprs = []
    for dashboard in all_dashboards().values():
        exprs += [q.expr for q in panel_queries(dashboard) + annotation_queries(dashboard)]
        exprs += variable_queries(dashboard)
    return exprs


def variable(dashboard: dict[str, Any], name: str) -> dict[str, Any]:
    matches: list[dict[str, Any]] = [
        v for v in dashboard["templating"]["list"] if v["name"] == name
    ]
    assert len(matches) == 1, f"{dashboard['uid']}: expected one variable {name!r}"
    return matches[0]


# Static ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("filename", sorted(generate.DASHBOARDS))
def test_committed_json_is_what_the_code_generates(filename: str) -> None:
    expected = generate.render(generate.DASHBOARDS[filename])
    actual = (GRAFANA / "dashboards" / filename).read_text()
    assert actual == expected, (
        f"grafana/dashboards/{filename} is stale: run `python -m grafana.generate` and commit"
    )


def test_generate_writes_both_files(tmp_path: Path) -> None:
    assert generate.main(["--output-dir", str(tmp_path)]) == 0
    for filename in generate.DASHBOARDS:
        assert (tmp_path / filename).read_text() == (GRAFANA / "dashboards" / filename).read_text()


def test_runbook_url_is_set_in_one_place(tmp_path: Path) -> None:
    other = "https://runbooks.example.com/openai.md"
    generate.main(["--output-dir", str(tmp_path), "--runbook-url", other])
    for filename in generate.DASHBOARDS:
        text = (tmp_path / filename).read_text()
        assert runbook.RUNBOOK_URL not in text
        assert text.count(other) == 1, f"{filename}: the runbook address should appear once"


@pytest.mark.parametrize("filename", sorted(generate.DASHBOARDS))
def test_json_decodes_into_the_sdk_model_and_reencodes(filename: str) -> None:
    register_default_plugins()
    original = committed(filename)
    decoded = Dashboard.from_json(original)
    assert decoded.uid == original["uid"]
    reencoded = json.loads(json.dumps(decoded, cls=JSONEncoder))
    # The SDK's AnnotationQuery has no fields for Prometheus' annotation options; everything
    # else must survive the round trip unchanged.
    expected = json.loads(json.dumps(original))
    for annotation in expected["annotations"]["list"]:
        for field in panels.PrometheusAnnotation.SDK_MISSING_FIELDS:
            annotation.pop(field, None)
    assert reencoded == expected


@pytest.mark.parametrize("filename", sorted(generate.DASHBOARDS))
def test_every_panel_has_a_title_and_a_description(filename: str) -> None:
    dashboard = committed(filename)
    assert dashboard.get("title") and dashboard.get("description")
    for panel in walk_panels(dashboard):
        assert panel.get("title"), f"{filename}: panel without a title: {panel.get('gridPos')}"
        if panel["type"] == "row":
            continue  # Grafana rows have a title and no description
        assert panel.get("description"), f"{filename}: panel {panel['title']!r} has no description"
        assert panel.get("targets"), f"{filename}: panel {panel['title']!r} has no query"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


@pytest.mark.parametrize("filename", sorted(generate.DASHBOARDS))
def test_panel_titles_are_unique(filename: str) -> None:
    titles = [panel["title"] for panel in walk_panels(committed(filename))]
    assert len(titles) == len(set(titles)), f"{filename}: repeated titles in {titles}"


@pytest.mark.parametrize("filename", sorted(generate.DASHBOARDS))
def test_panels_do_not_overlap(filename: str) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in committed(filename)["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, f"{panel['title']!r} is wider than the grid"
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


def test_uids_variables_and_links() -> None:
    overview = committed("overview.json")
    detail = committed("key-detail.json")
    assert overview["uid"] == OVERVIEW_UID == "openai-key-overview"
    assert detail["uid"] == DETAIL_UID == "openai-key-detail"
    for dashboard in (overview, detail):
        datasource = variable(dashboard, "datasource")
        assert (datasource["type"], datasource["query"]) == ("datasource", "prometheus")
        job = variable(dashboard, "job")
        assert job["query"] == "label_values(openai_key_exporter_build_info, job)"
        key = variable(dashboard, "key")
        assert key["query"] == 'label_values(openai_key_info{job=~"$job"}, key)'
        assert variable(dashboard, "runbook_url")["query"] == runbook.RUNBOOK_URL
        urls = [link["url"] for link in dashboard["links"]]
        assert "${runbook_url}" in urls
        other = detail if dashboard is overview else overview
        assert f"/d/{other['uid']}" in urls
    assert variable(overview, "key")["multi"] and variable(overview, "key")["includeAll"]
    assert not variable(detail, "key")["multi"] and not variable(detail, "key")["includeAll"]
    assert {a["name"] for a in overview["annotations"]["list"]} == {
        "Key rotated",
        "Key turned invalid",
    }


def test_every_result_class_has_a_colour_and_a_runbook_section() -> None:
    mapping = panels.result_mappings()[0]
    assert isinstance(mapping, ValueMap)
    assert set(mapping.options) == {result.value for result in Result}
    assert set(runbook.result_anchors()) == {result.value for result in Result}
    fragments = set(_FRAGMENT.findall(" ".join(every_expr())))
    for result, anchor in runbook.result_anchors().items():
        assert anchor in fragments, f"no query maps result {result} to its runbook section"


def test_runbook_links_point_at_existing_sections() -> None:
    text = json.dumps(all_dashboards())
    anchors = set(_STATIC_RUNBOOK_LINK.findall(text))
    anchors |= set(_FRAGMENT.findall(" ".join(every_expr())))
    anchors |= set(runbook.result_anchors().values()) | set(runbook.code_anchors().values())
    assert anchors and "" not in anchors, "a runbook link without a section"
    assert RUNBOOK.is_file(), f"{RUNBOOK.relative_to(REPO)} is missing; the dashboards link to it"
    defined = _ANCHOR.findall(RUNBOOK.read_text(encoding="utf-8"))
    missing = sorted(anchors - set(defined))
    assert not missing, f"docs/runbook.md has no <a id=...> for: {', '.join(missing)}"


def test_data_links_use_fields_the_queries_return() -> None:
    for dashboard in all_dashboards().values():
        exprs = " ".join(q.expr for q in panel_queries(dashboard))
        links = re.findall(r"__data\.fields\.([a-z_]+)", json.dumps(dashboard))
        assert links
        for field in links:
            assert f'"{field}"' in exprs, f"{dashboard['uid']}: no query sets label {field}"


def test_queries_use_only_exported_metrics() -> None:
    used = set()
    for expr in every_expr():
        for name in _METRIC.findall(expr):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            used.add(base if base in HISTOGRAMS else name)
    unknown = sorted(used - EXPORTED_METRICS)
    assert not unknown, f"queries use metrics the exporter does not expose: {unknown}"
    unused = sorted(EXPORTED_METRICS - used)
    assert not unused, f"exported metrics no dashboard shows: {unused}"


def test_unkeyed_metrics_are_queried_without_a_key_matcher() -> None:
    queried = set()
    for expr in every_expr():
        for name, matchers in _SELECTOR.findall(expr):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            if base in UNKEYED_METRICS:
                queried.add(base)
                assert not re.search(r"\bkey\s*[=!]", matchers), f"{base} has no key label: {expr}"
    assert queried == UNKEYED_METRICS, f"no dashboard shows {sorted(UNKEYED_METRICS - queried)}"


def test_no_import_placeholders() -> None:
    for path in sorted(GRAFANA.rglob("*")):
        if path.is_file() and path.suffix in {".json", ".yaml", ".yml", ".py", ".md"}:
            assert "${DS_" not in path.read_text(encoding="utf-8"), f"{path} has ${{DS_...}}"


def test_queries_parse(tmp_path: Path) -> None:
    """promtool parses every query (variables substituted) as a recording rule."""
    promtool = require_tool("promtool")
    rules = [
        {"record": f"grafana:query:{index}", "expr": substitute(expr, key="some-key")}
        for index, expr in enumerate(every_expr())
        if not expr.startswith("label_values(")
    ]
    path = tmp_path / "queries.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "grafana", "rules": rules}]}))
    run = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_provisioning_files() -> None:
    datasources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )
    assert datasources["apiVersion"] == 1
    assert [d["type"] for d in datasources["datasources"]] == ["prometheus"]
    providers = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "openai-key-exporter.yaml").read_text()
    )
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == DASHBOARDS_MOUNT
    assert provider["folder"]
    assert DASHBOARDS_MOUNT in (GRAFANA / "README.md").read_text()


# Live ------------------------------------------------------------------------------------------

SCRAPE_JOB = "openai-key-exporter"
# Key name -> the simulator scenario its key selects (and the scenario's argument).
LIVE_KEYS: dict[str, tuple[str, int | None]] = {
    "good": ("ok", None),
    "bad": ("invalid_api_key", None),
    "limited": ("rate_limited", 1),
    "rtdenied": ("rt_forbidden", None),
}
DETAIL_KEY = "limited"  # REST fails (errors, rate-limit headers), Realtime succeeds
# The opt-in GPT-Live probe on two keys (the detail key's Live panels, the overview's column).
_WITH_LIVE = {"probes": ["rest", "realtime", "live"], "live": {"model": "gpt-live-1"}}
LIVE_KEY_SETTINGS: dict[str, dict[str, Any]] = {
    # A Realtime model with a shutdown date, as an application not yet moved off it.
    "good": {
        **_WITH_LIVE,
        "live": {"model": "gpt-live-1", "interval": "2s"},
        "realtime": {"model": "gpt-realtime"},
    },
    DETAIL_KEY: {**_WITH_LIVE, "live": {"model": "gpt-live-1", "interval": "2s"}},
}
MODELS_KEY = "good"  # reads its model list: the Models table's queries are run for it too
READABLE_BY_OTHERS = DETAIL_KEY  # mode 0644: the key format issue file_readable_by_others
# (dashboard uid, panel title, refId) -> why this query has no data with LIVE_KEYS.
EXPECTED_EMPTY: dict[tuple[str, str, str], str] = {
    (
        OVERVIEW_UID,
        "annotation: Key rotated",
        "Anno",
    ): "no key is rotated during the test (it would take over 2 minutes: offset 2m)",
    (
        DETAIL_UID,
        "annotation: Key rotated",
        "Anno",
    ): "no key is rotated during the test (it would take over 2 minutes: offset 2m)",
    (
        DETAIL_UID,
        "annotation: Key turned invalid",
        "Anno",
    ): f"{DETAIL_KEY} stays valid (the overview's run of this query covers `bad`)",
    (DETAIL_UID, "Models", "A"): (
        f"{DETAIL_KEY}'s REST probe is always refused (429): it never reads its model list "
        f"(test_models_table_shows_listing_and_days_left runs this query for {MODELS_KEY})"
    ),
    (DETAIL_UID, "Models", "B"): f"as Models A: run for {MODELS_KEY} instead",
}
# Metrics the dashboards use that this set of keys does not produce.
EXPECTED_ABSENT_METRICS: dict[str, str] = {}


def substitute(expr: str, *, key: str, job: str = ".*") -> str:
    replacements = {
        "$__rate_interval": "1m",
        "$__interval": "5s",
        "$__range": "5m",
        "$job": job,
        "$key": key,
    }
    for name, value in replacements.items():
        expr = expr.replace(name, value)
    assert "$" not in expr.replace('"$1"', ""), f"unsubstituted variable in {expr}"
    return expr


@dataclass
class Stack:
    prometheus: str  # base URL
    exporter: str
    processes: list[Process]

    def query(self, expr: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.prometheus}/api/v1/query", params={"query": expr})
        answer = response.json()
        assert response.status_code == 200, f"{expr}\n-> {answer}"
        assert answer["status"] == "success", f"{expr}\n-> {answer}"
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def logs(self) -> str:
        return "\n".join(f"--- {p.args[0]}\n{p.output()[-4000:]}" for p in self.processes)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus_bin = require_tool("prometheus")
    from exporter.simulator.scenarios import make_key

    workdir = tmp_path_factory.mktemp("grafana-live")
    processes: list[Process] = []
    try:
        simulator, base_url = start_simulator_process(workdir)
        processes.append(simulator)
        keys = [
            {
                "name": name,
                "api_key_file": str(write_key(workdir, name, make_key(*scenario))),
                **LIVE_KEY_SETTINGS.get(name, {}),
            }
            for name, scenario in LIVE_KEYS.items()
        ]
        (workdir / f"{READABLE_BY_OTHERS}.key").chmod(0o644)
        config = write_config(workdir / "exporter.yml", base_url, keys, timeout="2s")
        _add_inventory(config, workdir, base_url)
        exporter, exporter_url = start_exporter_process(config, workdir)
        processes.append(exporter)
        prometheus_config = workdir / "prometheus.yml"
        prometheus_config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "scrape_configs": [
                        {
                            "job_name": SCRAPE_JOB,
                            "static_configs": [{"targets": [exporter_url.split("//")[1]]}],
                        }
                    ],
                }
            )
        )
        port = free_port()
        prometheus = Process(
            [
                prometheus_bin,
                f"--config.file={prometheus_config}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            workdir / "prometheus.log",
        ).start()
        processes.append(prometheus)
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/-/ready", process=prometheus)
        live = Stack(base, exporter_url, processes)
        # Enough scrapes for rate() over 1m, and several probe runs (every 2s) of every key.
        enough = (
            f'min(count_over_time(openai_probe_requests_total{{job="{SCRAPE_JOB}"}}[1m])) >= 12'
        )
        deadline = time.monotonic() + 60
        while not live.query(enough):
            if time.monotonic() > deadline:
                pytest.fail(f"Prometheus did not collect enough scrapes:\n{live.logs()}")
            time.sleep(1)
        yield live
    finally:
        for process in reversed(processes):
            process.stop()


def _add_inventory(config: Path, workdir: Path, base_url: str) -> None:
    """An admin key, and the simulator's organization listing every key (so each keeps its
    result class: a listed key is never key_revoked), one with an expiry, and a key in another
    project that nobody watches."""
    from exporter.simulator.scenarios import make_key

    entries = [("proj_live", make_key(*scenario), None) for scenario in LIVE_KEYS.values()]
    entries[0] = ("proj_live", entries[0][1], int(time.time()) + 20 * 86400)
    entries.append(("proj_other", make_key("ok", seed="nobody-watches"), None))
    for project, key, expires_at in entries:
        list_in_organization(base_url, project, key, expires_at)
    admin_key = write_admin_key(workdir / "admin.key", "sk-admin-" + "grafanaLive0" * 12)
    add_admin_block(config, admin_key, base_url, interval="5s", timeout="2s")


def live_queries() -> list[tuple[Query, str]]:
    """Every panel and annotation query, with the variables as Grafana would fill them."""
    queries = []
    for dashboard in all_dashboards().values():
        if dashboard["uid"] == OVERVIEW_UID:
            key, job = ".*", ".*"  # the overview's default: all jobs, all keys
        else:
            key, job = DETAIL_KEY, SCRAPE_JOB
        for query in panel_queries(dashboard) + annotation_queries(dashboard):
            queries.append((query, substitute(query.expr, key=key, job=job)))
    return queries


@pytest.mark.e2e
def test_every_query_returns_data(stack: Stack) -> None:
    failures = []
    for query, expr in live_queries():
        where = (query.dashboard, query.panel, query.ref_id)
        result = stack.query(expr)  # fails on a query Prometheus cannot parse or run
        if where in EXPECTED_EMPTY:
            continue
        if not result:
            failures.append(f"{query.dashboard} / {query.panel} / {query.ref_id}: {expr}")
    assert not failures, "queries without data:\n" + "\n".join(failures) + "\n" + stack.logs()
    stale = set(EXPECTED_EMPTY) - {(q.dashboard, q.panel, q.ref_id) for q, _ in live_queries()}
    assert not stale, f"EXPECTED_EMPTY names queries that no longer exist: {stale}"


@pytest.mark.e2e
def test_variables_have_values(stack: Stack) -> None:
    def label_values(label: str, match: str) -> list[str]:
        response = httpx.get(
            f"{stack.prometheus}/api/v1/label/{label}/values", params={"match[]": match}
        )
        assert response.status_code == 200, response.text
        values: list[str] = response.json()["data"]
        return values

    assert label_values("job", "openai_key_exporter_build_info") == [SCRAPE_JOB]
    assert sorted(label_values("key", f'openai_key_info{{job=~"{SCRAPE_JOB}"}}')) == sorted(
        LIVE_KEYS
    )


@pytest.mark.e2e
def test_runbook_labels_match_the_results(stack: Stack) -> None:
    """The table's runbook column holds the section classify.py names for each result."""
    overview = committed("overview.json")
    (table,) = [p for p in overview["panels"] if p["title"] == "Keys"]
    rest = next(t["expr"] for t in table["targets"] if t["refId"] == "C")
    rows = {row["metric"]["key"]: row["metric"] for row in stack.query(substitute(rest, key=".*"))}
    assert rows["good"]["rest"] == "ok" and rows["good"]["rest_runbook"] == "#checklist"
    assert rows["bad"]["rest"] == "invalid_api_key"
    assert rows["bad"]["rest_runbook"] == "#key-invalid"
    assert rows["limited"]["rest_runbook"] == "#rate-limited"

    detail = committed("key-detail.json")
    (last_error,) = [p for p in detail["panels"] if p["title"] == "Last error code"]
    (row,) = stack.query(substitute(last_error["targets"][0]["expr"], key=DETAIL_KEY))
    assert row["metric"]["code"] == "rate_limit_exceeded"
    assert row["metric"]["error_runbook"] == "#rate-limited"


@pytest.mark.e2e
def test_scraped_metrics_match_the_list(stack: Stack) -> None:
    response = httpx.get(f"{stack.exporter}/metrics")
    assert response.status_code == 200
    families = set(re.findall(r"^# TYPE (\S+) ", response.text, flags=re.MULTILINE))
    used_and_absent = EXPORTED_METRICS - families - set(EXPECTED_ABSENT_METRICS)
    assert not used_and_absent, f"the exporter does not expose: {sorted(used_and_absent)}"
    for name in UNKEYED_METRICS:
        keyed = re.findall(rf"^{name}\S*\{{[^}}]*\bkey=.*$", response.text, flags=re.MULTILINE)
        assert not keyed, f"{name} should have no key label: {keyed[:3]}"


@pytest.mark.e2e
def test_models_table_shows_listing_and_days_left(stack: Stack) -> None:
    """The detail dashboard's Models table, for a key that reads its model list."""
    detail = committed("key-detail.json")
    (table,) = [p for p in walk_panels(detail) if p["title"] == "Models"]
    exprs = {t["refId"]: substitute(t["expr"], key=MODELS_KEY) for t in table["targets"]}
    listed = {row["metric"]["model"]: row["value"][1] for row in stack.query(exprs["A"])}
    assert listed == {"gpt-realtime": "1", "gpt-live-1": "1"}
    (days,) = stack.query(exprs["B"])
    assert days["metric"]["model"] == "gpt-realtime"  # the only one with a shutdown date
    expected = datetime.datetime(2027, 1, 20, tzinfo=datetime.UTC).timestamp() - time.time()
    assert abs(float(days["value"][1]) - expected / 86400) < 0.01
