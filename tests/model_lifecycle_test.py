"""Model lifecycle read for free from the REST probe's own /v1/models answer: listed or not,
shutdown dates, on both REST paths, into the store, the metrics, check and the landing page."""

from __future__ import annotations

import datetime
import logging
import subprocess
from pathlib import Path

import pytest

from exporter.check import _checklist, _report
from exporter.classify import Result
from exporter.config import ConfigError, KeyConfig, LiveSettings, RealtimeSettings, parse_config
from exporter.links import DEFAULT_LINKS
from exporter.metrics import ExporterMetrics, MetricsRenderer, render_key
from exporter.models import ModelStatus, read_statuses, shutdown_timestamp, watched_models
from exporter.probes.rest import RestProber
from exporter.result import ProbeResult
from exporter.simulator import RunningSimulator, make_key
from exporter.state import KeyIdentity, StateStore
from tests.conftest import require_tool
from tests.support.key_config import key_config
from tests.support.simulator import simulator

__all__ = ["simulator"]  # a fixture from tests/support

GPT_REALTIME_SHUTDOWN = datetime.datetime(2027, 1, 20, tzinfo=datetime.UTC).timestamp()
GONE = "gpt-4o-realtime-preview-2024-12-17"  # shut down in 2026: no longer listed


def _config(simulator: RunningSimulator, **overrides: object) -> KeyConfig:
    defaults = {
        "base_url": simulator.base_url,
        "timeout": 2.0,
        "probes": ("rest", "realtime"),
        # The model being retired, set as an application still on it would.
        "realtime": RealtimeSettings(model="gpt-realtime"),
        "models": (GONE, "gpt-realtime-2.1"),
    }
    return key_config("voice", **(defaults | overrides))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2027-01-20", GPT_REALTIME_SHUTDOWN),
        ("2027-01-20T00:00:00Z", GPT_REALTIME_SHUTDOWN),
        ("2027-01-20T02:00:00+02:00", GPT_REALTIME_SHUTDOWN),
        ("2027-01-20T00:00:00", GPT_REALTIME_SHUTDOWN),  # no offset: read as UTC
        (None, None),
    ],
)
def test_shutdown_date_forms(text: str | None, expected: float | None) -> None:
    assert shutdown_timestamp("m", text) == expected


def test_unexpected_shutdown_date_is_ignored_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = make_key("ok")
    caplog.set_level(logging.WARNING, logger="exporter.models")
    for _ in range(3):
        assert shutdown_timestamp("odd-model", "next January", key) is None
        assert shutdown_timestamp("odd-model", {"when": key}, key) is None
    warnings = [r for r in caplog.records if "shutdown_date" in r.getMessage()]
    assert len(warnings) == 2  # one per form (text, object), not one per answer
    assert key not in caplog.text and key[-20:] not in caplog.text
    payload = {
        "data": [
            {"id": ["unhashable"]},
            {"id": {"an": "object"}},
            {"id": "odd-model", "shutdown_date": 1790000000},
            {"id": "odder", "shutdown_date": [2027, 1, 20]},
            "junk",
            None,
        ]
    }
    statuses = read_statuses(payload, frozenset({"odd-model", "odder"}), key)
    assert statuses == (ModelStatus("odd-model", True, None), ModelStatus("odder", True, None))


def test_watched_models_are_the_probes_and_the_models_field() -> None:
    plain = key_config("a", probes=("rest",))
    assert watched_models(plain) == frozenset()  # REST only, no models: nothing read at all
    default = key_config("d")  # both probes, the default Realtime model
    assert watched_models(default) == {"gpt-realtime-2.1"}
    billed = key_config("i", probes=("rest", "inference"))
    assert watched_models(billed) == {"gpt-4.1-nano"}
    voice = key_config(
        "b",
        probes=("rest", "realtime", "live"),
        realtime=RealtimeSettings(model="gpt-realtime"),
        live=LiveSettings(model="gpt-live-1"),
        models=("gpt-4o",),
    )
    assert watched_models(voice) == {"gpt-realtime", "gpt-live-1", "gpt-4o"}


@pytest.mark.parametrize("fresh", [True, False], ids=["own-connection", "pooled"])
async def test_rest_probe_reads_watched_models_on_both_paths(
    simulator: RunningSimulator, fresh: bool
) -> None:
    prober = RestProber()
    try:
        result = await prober.probe_on_connection(_config(simulator), make_key("ok"), fresh=fresh)
    finally:
        await prober.aclose()
    assert result.result is Result.OK
    assert result.models == (
        ModelStatus(GONE, False, None),
        ModelStatus("gpt-realtime", True, GPT_REALTIME_SHUTDOWN),
        ModelStatus("gpt-realtime-2.1", True, None),
    )
    assert simulator.stats()["totals"]["rest_requests"] == 1  # no second request


async def test_live_model_is_listed_only_for_keys_that_may_use_it(
    simulator: RunningSimulator,
) -> None:
    config = _config(
        simulator, probes=("rest", "live"), live=LiveSettings(model="gpt-live-1"), models=()
    )
    prober = RestProber()
    try:
        allowed = await prober.probe_on_connection(config, make_key("ok"), fresh=True)
        denied = await prober.probe_on_connection(
            config, make_key("live_model_not_found"), fresh=True
        )
    finally:
        await prober.aclose()
    assert allowed.models == (ModelStatus("gpt-live-1", True, None),)
    assert denied.models == (ModelStatus("gpt-live-1", False, None),)


async def test_a_key_that_cannot_read_the_list_publishes_nothing(
    simulator: RunningSimulator,
) -> None:
    config = _config(simulator)
    store = StateStore()
    store.configure({"voice": ("rest",)})
    prober = RestProber()
    try:
        ok = await prober.probe_on_connection(config, make_key("ok"), fresh=False)
        store.record("voice", KeyIdentity(), ok)
        exposition = b"".join(render_key(_state(store)))
        assert b'openai_model_listed{key="voice",model="gpt-realtime"} 1\n' in exposition
        assert f'openai_model_listed{{key="voice",model="{GONE}"}} 0\n'.encode() in exposition
        assert (
            b'openai_model_shutdown_timestamp_seconds{key="voice",model="gpt-realtime"} '
            + str(int(GPT_REALTIME_SHUTDOWN)).encode()
            in exposition
        )
        assert b'model="gpt-realtime-2.1"} ' not in exposition.split(b"shutdown")[-1]
        # A passing failure keeps the last reading: a timeout is not news about the models.
        store.record("voice", KeyIdentity(), ProbeResult(probe="rest", result=Result.TIMEOUT))
        assert len(_state(store).models) == 3
        scoped = await prober.probe_on_connection(config, make_key("missing_scopes"), fresh=False)
    finally:
        await prober.aclose()
    assert scoped.result is Result.INSUFFICIENT_PERMISSIONS and scoped.models is None
    store.record("voice", KeyIdentity(), scoped)
    exposition = b"".join(render_key(_state(store)))
    assert b"openai_model_" not in exposition  # unknown, not "missing"


def _state(store: StateStore):  # type: ignore[no-untyped-def]
    state = store.get("voice")
    assert state is not None
    return state


def test_metrics_with_models_pass_promtool(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    store = StateStore()
    renderer = MetricsRenderer(ExporterMetrics(), store.latency)
    store.subscribe(renderer.update)
    store.configure({"voice": ("rest",)})
    statuses = (ModelStatus("gpt-realtime", True, GPT_REALTIME_SHUTDOWN), ModelStatus(GONE, False))
    store.record("voice", KeyIdentity(), ProbeResult("rest", Result.OK, models=statuses))
    body = renderer.render()
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert b"# HELP openai_model_listed " in body
    assert b"# TYPE openai_model_shutdown_timestamp_seconds gauge" in body


def test_check_lists_each_model_with_days_left() -> None:
    config = key_config("voice", probes=("rest",), models=("gpt-realtime", GONE, "soon"))
    store = StateStore()
    store.configure({"voice": ("rest",)})
    now = datetime.datetime.now(datetime.UTC).timestamp()
    statuses = (
        ModelStatus("gpt-realtime", True, now + 40 * 86400),
        ModelStatus(GONE, False),
        ModelStatus("soon", True, now + 5.5 * 86400),
    )
    result = ProbeResult("rest", Result.OK, models=statuses)
    store.record("voice", KeyIdentity(fingerprint="sk-...abcd", kind="project"), result)
    report = _report(config, _state(store), DEFAULT_LINKS)
    items = {item.item: item for item in _checklist(config, report, DEFAULT_LINKS)}
    assert items["Model gpt-realtime"].status == "pass"
    assert "40 days left" in items["Model gpt-realtime"].detail
    assert items[f"Model {GONE}"].status == "fail"
    assert "not listed" in items[f"Model {GONE}"].detail
    assert items["Model soon"].status == "fail"
    assert "6 days left" in items["Model soon"].detail


def test_config_models_field(tmp_path: Path) -> None:
    env = "keys: [{name: a, api_key_env: A, models: [gpt-realtime, gpt-realtime]}]\n"
    config = parse_config(env, "c.yml")
    assert config.keys[0].models == ("gpt-realtime",)
    with pytest.raises(ConfigError, match=r"c\.yml:1: keys\[0\]\.models: must be a list"):
        parse_config("keys: [{name: a, api_key_env: A, models: gpt-realtime}]\n", "c.yml")
