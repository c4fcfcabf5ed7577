"""One exporter process, one key per result class, against the simulator process: every
result class in /metrics, every metric, the probe budget, promtool, the landing page."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from exporter import __version__
from exporter.simulator import make_key
from exporter.simulator.openai_shapes import RATE_LIMIT_REQUESTS, RATE_LIMIT_TOKENS
from exporter.simulator.state import RATE_WINDOW_S
from tests.conftest import require_tool
from tests.harness import (
    Process,
    assert_no_secret,
    start_exporter_process,
    write_config,
    write_key,
)
from tests.support.exporter_process import (
    KINDS,
    PREFIXES,
    sim_override,
    sim_stats,
    stop_cleanly,
)
from tests.support.metrics import SAMPLE_LINE, Scrape, scrape
from tests.support.waiting import eventually, wait_until

# --- one exporter, one key per result class ------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """What one key shows once probed: per probe (result, HTTP status), and its validity."""

    scenario: str
    rest: tuple[str, int]
    realtime: tuple[str, int]
    valid: int | None  # None: openai_key_valid absent, nothing conclusive was heard
    rest_code: str = ""  # openai_probe_errors_total{probe="rest"} code, when REST fails
    realtime_code: str = ""
    close_code: int | None = None  # openai_realtime_close_code
    arg: int | None = None
    settings: tuple[tuple[str, Any], ...] = ()  # per-key settings in the configuration


OK_REST = ("ok", 200)
OK_RT = ("ok", 101)

EVERY_CLASS: dict[str, Expect] = {
    # The two healthy keys also measure the probe budget: a timeout only a loaded machine
    # causes would add a quick retry, so theirs is as long as the interval allows.
    "ok": Expect("ok", OK_REST, OK_RT, 1, close_code=1000, settings=(("timeout", "1900ms"),)),
    "no-ratelimit-headers": Expect(
        "ok_no_ratelimit_headers",
        OK_REST,
        OK_RT,
        1,
        close_code=1000,
        settings=(("timeout", "1900ms"),),
    ),
    "invalid": Expect(
        "invalid_api_key",
        ("invalid_api_key", 401),
        ("invalid_api_key", 101),
        0,
        "invalid_api_key",
        "invalid_api_key",
        3000,
    ),
    "deactivated": Expect(
        "account_deactivated",
        ("account_deactivated", 401),
        ("account_deactivated", 101),
        0,
        "account_deactivated",
        "account_deactivated",
        3000,
    ),
    "scopes": Expect(
        "missing_scopes", ("insufficient_permissions", 401), OK_RT, 1, "missing_scopes", "", 1000
    ),
    "organization": Expect(
        "mismatched_organization",
        ("mismatched_organization", 401),
        ("mismatched_organization", 101),
        1,
        "mismatched_organization",
        "mismatched_organization",
        3000,
    ),
    "project": Expect(
        "mismatched_project",
        ("mismatched_project", 401),
        ("mismatched_project", 101),
        1,
        "mismatched_project",
        "mismatched_project",
        3000,
    ),
    # No free probe sees credit: only the opt-in inference probe does (inference_probe_test.py).
    "quota": Expect("insufficient_quota", OK_REST, OK_RT, 1, "", "", 1000),
    "rate": Expect(
        "rate_limited", ("rate_limited", 429), OK_RT, 1, "rate_limit_exceeded", "", 1000, arg=30
    ),
    "region": Expect(
        "unsupported_region",
        ("unsupported_region", 403),
        ("unsupported_region", 403),
        None,
        "unsupported_country_region_territory",
    ),
    "server": Expect(
        "server_error",
        ("server_error", 500),
        ("server_error", 101),
        None,
        "server_error",
        "server_error",
        1011,
    ),
    "overloaded": Expect(
        "overloaded", ("server_error", 503), ("server_error", 503), None, "server_error"
    ),
    "hang": Expect("hang", ("timeout", 0), ("timeout", 0), None, "timeout", "timeout"),
    "reset": Expect(
        "reset", ("connection_error", 0), ("connection_error", 0), None, "connection_error"
    ),
    "non-json": Expect("non_json", ("protocol_error", 200), OK_RT, 1, "protocol_error", "", 1000),
    "rt-unknown-close": Expect("rt_unknown_close", OK_REST, ("other", 101), 1, "", "other", 4999),
    "rt-drop": Expect(
        "rt_drop", OK_REST, ("connection_error", 101), 1, "", "connection_error", 1006
    ),
    "rt-forbidden": Expect(
        "rt_forbidden", OK_REST, ("model_not_found", 403), 1, "", "model_not_found"
    ),
    "rt-missing-scopes": Expect(
        "rt_missing_scopes",
        OK_REST,
        ("insufficient_permissions", 101),
        1,
        "",
        "missing_scopes",
        3000,
    ),
    "rest-missing-scopes": Expect(
        "rest_missing_scopes",
        ("insufficient_permissions", 401),
        OK_RT,
        1,
        "missing_scopes",
        "",
        1000,
    ),
    "beta-retired": Expect(
        "ok",
        OK_REST,
        ("api_shape_retired", 101),
        1,
        "",
        "beta_api_shape_disabled",
        4000,
        settings=(("realtime", {"api": "beta"}),),
    ),
    "tls": Expect("ok", ("tls_error", 0), ("tls_error", 0), None, "tls_error", "tls_error"),
    "empty": Expect("ok", ("key_missing", 0), ("key_missing", 0), 0, "key_missing", "key_missing"),
    "malformed": Expect(
        "ok", ("key_malformed", 0), ("key_malformed", 0), 0, "key_malformed", "key_malformed"
    ),
}
MALFORMED_PADDING_AT = 40  # where the CR goes inside the malformed key


@dataclass
class Running:
    process: Process
    url: str
    base_url: str
    keys: dict[str, str]  # name -> the key as written in its file
    directory: Path


def every_class_keys(directory: Path, base_url: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    entries: list[dict[str, Any]] = []
    keys: dict[str, str] = {}
    for index, (name, expect) in enumerate(EVERY_CLASS.items()):
        prefix = PREFIXES[index % len(PREFIXES)]
        key = make_key(expect.scenario, expect.arg, prefix=prefix, seed=f"every-{name}")
        if name == "empty":
            key = ""
        elif name == "malformed":
            key = key[:MALFORMED_PADDING_AT] + "\r" + key[MALFORMED_PADDING_AT:]
        keys[name] = key
        path = write_key(directory, name, key)
        if name == "empty":
            path.write_text("")
        entry: dict[str, Any] = {"name": name, "api_key_file": str(path), **dict(expect.settings)}
        if name == "tls":
            entry["base_url"] = base_url.replace("http://", "https://")
        entries.append(entry)
    # A healthy key that the validity test later turns into a timing-out one.
    flip = make_key("ok", prefix="sk-svcacct-", seed="flip")
    keys["flip"] = flip
    entries.append({"name": "flip", "api_key_file": str(write_key(directory, "flip", flip))})
    return entries, keys


@pytest.fixture(scope="module")
def every_class(simulator: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    directory = tmp_path_factory.mktemp("every-class")
    entries, keys = every_class_keys(directory, simulator)
    config = write_config(directory / "config.yml", simulator, entries)
    process, url = start_exporter_process(config, directory, "--log.level", "debug")
    try:
        yield Running(process, url, simulator, keys, directory)
    finally:
        stop_cleanly(process)


def test_every_result_class_is_exported(every_class: Running) -> None:
    eventually(lambda: assert_every_class(scrape(every_class.url)))


def assert_every_class(metrics: Scrape) -> None:
    problems: list[str] = []
    for name, expect in EVERY_CLASS.items():
        for probe, (result, status) in (("rest", expect.rest), ("realtime", expect.realtime)):
            labels = {"key": name, "probe": probe}
            seen = (
                metrics.result(name, probe),
                metrics.value("openai_probe_success", **labels),
                metrics.value("openai_probe_http_status_code", **labels),
            )
            wanted = (result, 1.0 if result == "ok" else 0.0, float(status))
            if seen != wanted:
                problems.append(f"{name}/{probe}: (result, success, status) {seen} != {wanted}")
            errors = {s.labels["code"] for s in metrics.find("openai_probe_errors_total", **labels)}
            code = expect.rest_code if probe == "rest" else expect.realtime_code
            # A healthy probe may have counted a timeout once on a loaded machine; nothing else.
            if result == "ok" and errors - {"timeout"}:
                problems.append(f"{name}/{probe}: healthy yet errors_total has {errors}")
            if result != "ok" and (not errors or (code and code not in errors)):
                problems.append(f"{name}/{probe}: errors_total codes {errors}, want {code!r}")
            failures = metrics.value("openai_probe_consecutive_failures", **labels)
            if (failures == 0) != (result == "ok"):
                problems.append(f"{name}/{probe}: consecutive_failures {failures} for {result}")
        valid = metrics.value("openai_key_valid", key=name)
        if valid != (None if expect.valid is None else float(expect.valid)):
            problems.append(f"{name}: openai_key_valid {valid}, want {expect.valid}")
        close = metrics.value("openai_realtime_close_code", key=name)
        if expect.close_code is not None and close != expect.close_code:
            problems.append(f"{name}: openai_realtime_close_code {close}, want {expect.close_code}")
    assert not problems, "\n".join(problems)


def test_key_info_and_format_issues(every_class: Running) -> None:
    metrics = scrape(every_class.url)
    for index, name in enumerate(EVERY_CLASS):
        key = every_class.keys[name]
        (info,) = metrics.find("openai_key_info", key=name)
        assert info.value == 1
        if name == "empty":
            assert (info.labels["fingerprint"], info.labels["kind"]) == ("", "unknown")
            assert metrics.value("openai_key_format_issue", key=name, issue="empty") == 1
            continue
        prefix = PREFIXES[index % len(PREFIXES)]
        assert info.labels == {
            "key": name,
            "fingerprint": f"{key[:8]}...{key[-4:]}",
            "kind": KINDS[prefix],
            "provider": "openai",
        }
        issues = {s.labels["issue"] for s in metrics.find("openai_key_format_issue", key=name)}
        if name == "malformed":
            assert "line_break" in issues
        else:  # an admin key cannot call models: its own finding
            expected = {"admin_key"} if prefix == "sk-admin-" else set()
            assert issues == expected, f"{name}: {issues}"


def test_phases_latency_histogram_and_requests(every_class: Running) -> None:
    metrics = scrape(every_class.url)
    rest = {"key": "ok", "probe": "rest"}
    realtime = {"key": "ok", "probe": "realtime"}
    phases = {
        probe: {
            s.labels["phase"]: s.value
            for s in metrics.find("openai_probe_phase_duration_seconds", **labels)
        }
        for probe, labels in (("rest", rest), ("realtime", realtime))
    }
    assert set(phases["rest"]) == {"connect", "first_byte", "transfer"}, phases
    assert set(phases["realtime"]) == {"connect", "session_created", "session_updated"}, phases
    for labels in (rest, realtime):
        duration = metrics.value("openai_probe_duration_seconds", **labels)
        assert duration is not None and duration > 0
    # The latency histogram is per probe kind over every key; it counts each probe that sent a
    # request, so its count is the sum of the keys' request counters.
    for probe in ("rest", "realtime"):
        buckets = [
            (float(s.labels["le"]), s.value)
            for s in metrics.find("openai_probe_latency_seconds_bucket", probe=probe)
        ]
        assert all(
            "key" not in s.labels for s in metrics.find("openai_probe_latency_seconds_bucket")
        )
        assert buckets == sorted(buckets), "buckets must be cumulative and ordered"
        assert buckets[-1][0] == float("inf")
        count = metrics.value("openai_probe_latency_seconds_count", probe=probe)
        assert count == buckets[-1][1] >= 1
        total = metrics.value("openai_probe_latency_seconds_sum", probe=probe)
        assert total is not None and total > 0
        requests = metrics.find("openai_probe_requests_total", probe=probe)
        sent = sum(1 for s in requests if s.value)  # keys that sent something
        assert sent >= 1
        # Each request-sending probe is counted once; counters and histogram are read in one
        # scrape, so they agree exactly.
        assert count == sum(s.value for s in requests)
    # A timed-out probe (hang) lands above the 0.5s bucket of the REST histogram.
    rest_count = metrics.value("openai_probe_latency_seconds_count", probe="rest")
    assert metrics.value("openai_probe_latency_seconds_bucket", probe="rest", le="0.5") < rest_count
    for name in ("malformed", "empty"):
        assert metrics.value("openai_probe_requests_total", key=name, probe="rest") == 0
        assert metrics.value("openai_probe_duration_seconds", key=name, probe="rest") == 0


def test_realtime_closes_and_ratelimit_gauges(every_class: Running) -> None:
    metrics = scrape(every_class.url)
    closes = {
        s.labels["code"]: s.value for s in metrics.find("openai_realtime_closes_total", key="ok")
    }
    assert set(closes) == {"1000"} and closes["1000"] >= 1
    unknown = metrics.find("openai_realtime_closes_total", key="rt-unknown-close", code="4999")
    assert unknown and unknown[0].value >= 1
    # Closes are per key: the realtime probe label is the only one, so none carries `probe`.
    assert all("probe" not in s.labels for s in metrics.find("openai_realtime_closes_total"))
    ratelimit = (
        "openai_ratelimit_limit_requests",
        "openai_ratelimit_remaining_requests",
        "openai_ratelimit_limit_tokens",
        "openai_ratelimit_remaining_tokens",
    )
    for name in ratelimit:
        assert metrics.value(name, key="no-ratelimit-headers") is None, name
    # The simulator's exact headers: its fixed limits, and remaining requests as the limit less
    # the key's REST requests of the last minute when it answered.
    for key in ("ok", "rate"):
        assert metrics.value("openai_ratelimit_limit_requests", key=key) == RATE_LIMIT_REQUESTS
        assert metrics.value("openai_ratelimit_limit_tokens", key=key) == RATE_LIMIT_TOKENS
        assert metrics.value("openai_ratelimit_remaining_tokens", key=key) == RATE_LIMIT_TOKENS
    assert metrics.value("openai_ratelimit_remaining_requests", key="rate") == 0

    def remaining_and_request_times() -> tuple[float, list[float]] | None:
        """The gauge, with the key's request times, read while no request of it arrived."""
        before = sim_stats(every_class.base_url, every_class.keys["ok"])
        value = scrape(every_class.url).value("openai_ratelimit_remaining_requests", key="ok")
        after = sim_stats(every_class.base_url, every_class.keys["ok"])
        if value is None or before["rest_requests"] != after["rest_requests"]:
            return None
        return value, list(after["rest_request_times"])

    remaining, times = wait_until(remaining_and_request_times, 20, "a quiet moment of key ok")

    def expected(last: float) -> set[float]:
        used = sum(1 for when in times if last - RATE_WINDOW_S <= when <= last)
        return {RATE_LIMIT_REQUESTS - used, RATE_LIMIT_REQUESTS - used + 1}  # the window's edge

    # The exporter shows the last answer, or the one before while the last is on its way.
    candidates = set().union(*(expected(last) for last in times[-2:]))
    assert remaining in candidates, (remaining, len(times))
    assert remaining < RATE_LIMIT_REQUESTS


def test_last_run_and_last_success_timestamps(every_class: Running) -> None:
    metrics = scrape(every_class.url)
    now = time.time()
    for probe in ("rest", "realtime"):
        labels = {"key": "ok", "probe": probe}
        run = metrics.value("openai_probe_last_run_timestamp_seconds", **labels)
        success = metrics.value("openai_probe_last_success_timestamp_seconds", **labels)
        assert run is not None and success is not None
        assert now - 10 < run <= success <= now + 1
        failing = {"key": "invalid", "probe": probe}
        failed_run = metrics.value("openai_probe_last_run_timestamp_seconds", **failing)
        assert failed_run is not None and now - 10 < failed_run <= now + 1
        assert metrics.value("openai_probe_last_success_timestamp_seconds", **failing) is None


def test_build_info_and_exporter_metrics(every_class: Running) -> None:
    metrics = scrape(every_class.url)
    (build,) = metrics.find("openai_key_exporter_build_info")
    assert build.value == 1
    assert build.labels["version"] == __version__
    assert re.fullmatch(r"3\.\d+\.\d+", build.labels["python_version"])
    assert metrics.value("openai_key_exporter_config_last_reload_successful") == 1
    assert metrics.value("openai_key_exporter_keys") == len(every_class.keys)


def test_rest_and_realtime_side_by_side(every_class: Running) -> None:
    """A key good for REST but refused on Realtime, and the reverse, are told apart."""
    eventually(lambda: assert_side_by_side(scrape(every_class.url)))


def assert_side_by_side(metrics: Scrape) -> None:
    side_by_side = {
        name: (metrics.result(name, "rest"), metrics.result(name, "realtime"))
        for name in ("rt-forbidden", "rt-missing-scopes", "rest-missing-scopes")
    }
    assert side_by_side == {
        "rt-forbidden": ("ok", "model_not_found"),
        "rt-missing-scopes": ("ok", "insufficient_permissions"),
        "rest-missing-scopes": ("insufficient_permissions", "ok"),
    }
    for name in side_by_side:
        assert metrics.value("openai_key_valid", key=name) == 1
    assert metrics.value("openai_probe_success", key="rt-forbidden", probe="rest") == 1
    assert metrics.value("openai_probe_success", key="rt-forbidden", probe="realtime") == 0
    assert metrics.value("openai_probe_success", key="rest-missing-scopes", probe="rest") == 0
    assert metrics.value("openai_probe_success", key="rest-missing-scopes", probe="realtime") == 1


def test_valid_key_stays_valid_while_it_times_out(every_class: Running) -> None:
    """A timeout says nothing about the key: valid=1 stays; only a conclusive answer changes it."""
    key, url = every_class.keys["flip"], every_class.url
    assert scrape(url).value("openai_key_valid", key="flip") == 1
    sim_override(every_class.base_url, key, "hang")
    try:
        wait_until(
            lambda: (
                scrape(url).result("flip", "rest") == "timeout"
                and scrape(url).result("flip", "realtime") == "timeout"
            ),
            8,
            "flip times out",
            log=every_class.process,
        )
        metrics = scrape(url)
        assert metrics.value("openai_key_valid", key="flip") == 1
        assert metrics.value("openai_probe_success", key="flip", probe="rest") == 0
        assert (
            metrics.value("openai_probe_consecutive_failures", key="flip", probe="rest") or 0
        ) >= 1
        sim_override(every_class.base_url, key, "invalid_api_key")
        wait_until(
            lambda: scrape(url).value("openai_key_valid", key="flip") == 0,
            8,
            "flip turns invalid after a conclusive 401",
        )
    finally:
        sim_override(every_class.base_url, key, None)
    wait_until(
        lambda: scrape(url).value("openai_key_valid", key="flip") == 1, 8, "flip valid again"
    )


HEALTHY = ("ok", "no-ratelimit-headers")
SENT = ("rest_request_times", "realtime_session_times")


def assert_no_extra_request(name: str, kind: str, times: list[float]) -> None:
    # One request sent late (a busy machine) sits close to the next on-time one; a third
    # within little more than one interval would be a request the schedule never made.
    spans = [later - earlier for earlier, later in zip(times, times[2:], strict=False)]
    assert not spans or min(spans) > 2.5, f"{name} {kind}: 3 requests in {min(spans):.2f}s"


def test_one_request_per_interval(every_class: Running) -> None:
    """Interval 2s over 10s: each healthy key gets 5 requests (+-1) per probe."""
    started = time.monotonic()
    time.sleep(10.0)
    for name in HEALTHY:
        stats = sim_stats(every_class.base_url, every_class.keys[name])
        for kind in SENT:
            window = [t for t in stats[kind] if started <= t < started + 10.0]
            assert 4 <= len(window) <= 6, f"{name} {kind}: {len(window)} in 10s"
            assert_no_extra_request(name, kind, stats[kind])


def test_scrape_flood_adds_no_upstream_request(every_class: Running) -> None:
    """500 concurrent scrapes: every one answered from the stored results, none sent upstream."""

    async def flood() -> list[int]:
        limits = httpx.Limits(max_connections=500, max_keepalive_connections=0)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            responses = await asyncio.gather(
                *(client.get(f"{every_class.url}/metrics") for _ in range(500))
            )
        return [response.status_code for response in responses]

    started = time.monotonic()
    statuses = asyncio.run(flood())
    ended = time.monotonic()
    # Past --web.max-requests (40) concurrent scrapes a scraper gets 503, as from Go exporters.
    assert set(statuses) <= {200, 503}, statuses
    assert statuses.count(200) >= 40, statuses
    time.sleep(1.0)  # a request a scrape had caused would have arrived by now
    allowed = (ended + 1.0 - started) / 2.0 + 1  # the schedule's own, at interval 2s
    for name in HEALTHY:
        stats = sim_stats(every_class.base_url, every_class.keys[name])
        for kind in SENT:
            during = [t for t in stats[kind] if started <= t <= ended + 1.0]
            assert len(during) <= allowed, f"{name} {kind}: {len(during)} during the flood"
            assert_no_extra_request(name, kind, stats[kind])


def test_probe_requests_total_matches_simulator(every_class: Running) -> None:
    """The exporter counts a request once it has its outcome, the simulator when it arrives:
    between two reads of the simulator's count, the exporter's lies within them (one request
    in flight), above them only by requests that timed out before the simulator saw them."""
    for _ in range(3):
        for name in ("ok", "invalid", "server", "hang", "rt-drop"):
            key = every_class.keys[name]
            before = sim_stats(every_class.base_url, key)
            metrics = scrape(every_class.url)
            after = sim_stats(every_class.base_url, key)
            for probe, counted in (("rest", "rest_requests"), ("realtime", "realtime_sessions")):
                labels = {"key": name, "probe": probe}
                exported = metrics.value("openai_probe_requests_total", **labels)
                unseen = metrics.value("openai_probe_errors_total", **labels, code="timeout")
                assert exported is not None
                assert before[counted] - 1 <= exported <= after[counted] + (unseen or 0), (
                    name,
                    probe,
                )

    def agree() -> bool:
        """At a quiet moment (no request in flight) the counts are equal, timeouts aside."""
        before = sim_stats(every_class.base_url, every_class.keys["ok"])
        metrics = scrape(every_class.url)
        after = sim_stats(every_class.base_url, every_class.keys["ok"])
        for probe, counted in (("rest", "rest_requests"), ("realtime", "realtime_sessions")):
            labels = {"key": "ok", "probe": probe}
            exported = metrics.value("openai_probe_requests_total", **labels) or 0
            unseen = metrics.value("openai_probe_errors_total", **labels, code="timeout") or 0
            if not before[counted] == after[counted] <= exported <= after[counted] + unseen:
                return False
        return True

    wait_until(agree, 6, "ok: requests_total equals the simulator's count", every=0.05)


def test_promtool_finds_nothing_to_say(every_class: Running) -> None:
    promtool = require_tool("promtool")
    text = scrape(every_class.url).text
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()
    assert checked.stdout.decode().strip() == "", checked.stdout.decode()
    assert checked.stderr.decode().strip() == "", checked.stderr.decode()


def test_no_sample_timestamps_and_help_on_every_metric(every_class: Running) -> None:
    text = scrape(every_class.url).text
    helped = set(re.findall(r"^# HELP (\S+) ", text, re.MULTILINE))
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE_LINE.match(line)
        assert match, line
        tokens = match.group("rest").split()
        assert len(tokens) == 1, f"sample with a timestamp or junk: {line!r}"
        name = match.group("name")
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in helped or family in helped, f"{name} has no HELP"


def test_landing_page(every_class: Running) -> None:
    eventually(lambda: assert_landing_page(every_class.url))


def assert_landing_page(url: str) -> None:
    response = httpx.get(f"{url}/", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "OpenAI Key Exporter" in page
    assert __version__ in page
    assert 'href="/metrics"' in page
    assert 'href="/-/healthy"' in page and 'href="/-/ready"' in page
    assert f'href="{url}/runbook"' in page  # --web.external-url defaults to the listen address
    # The status page: one row per key and probe (tests/status_page_test.py reads it in a browser).
    rows: dict[str, str] = {}
    for match in re.finditer(
        r'<tr class="[a-z]+" data-key="([^"]+)" data-probe="[a-z]+">.*?</tr>', page
    ):
        rows[match.group(1)] = rows.get(match.group(1), "") + match.group(0)
    for name, expect in EVERY_CLASS.items():
        assert name in rows, f"{name} missing from the landing page"
        for result in (expect.rest[0], expect.realtime[0]):
            assert f"<code>{result}</code>" in rows[name], f"{name}: {result} not in {rows[name]}"
    assert "FAILING" in rows["invalid"]
    assert f"{url}/runbook#key-invalid" in rows["invalid"]


def test_no_key_in_metrics_landing_page_or_debug_logs(every_class: Running) -> None:
    keys = [key for key in every_class.keys.values() if key]
    assert_no_secret(scrape(every_class.url).text, keys, "/metrics")
    assert_no_secret(httpx.get(f"{every_class.url}/", timeout=5).text, keys, "landing page")
    log = every_class.process.output()
    assert "level=debug" in log, "the exporter ran with --log.level debug"
    assert_no_secret(log, keys, "the logfmt log")
