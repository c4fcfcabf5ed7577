"""The opt-in inference probe against the simulator on real sockets: what it sends, how its
answers are classified (the same table as REST), the tokens it is billed, and what it costs."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

import httpx
import pytest

from exporter.classify import Result
from exporter.config import ConfigError, InferenceSettings, KeyConfig, parse_config
from exporter.keys import KeySource, SourceKind
from exporter.metrics import render_key
from exporter.probes.inference import (
    MAX_OUTPUT_TOKENS,
    InferenceProber,
    billed_tokens,
    log_cost,
    monthly_cost,
)
from exporter.runner import ProbeRunner
from exporter.simulator import RunningSimulator, make_key
from exporter.simulator.state import key_id
from exporter.state import StateStore
from tests.support.key_config import key_config
from tests.support.simulator import simulator

__all__ = ["simulator"]  # a fixture from tests/support


def _config(base_url: str, **changes: Any) -> KeyConfig:
    defaults = {"base_url": base_url, "timeout": 3.0, "probes": ("rest", "inference")}
    return key_config("billed", **(defaults | changes))


async def _probe(simulator: RunningSimulator, key: str, **changes: Any) -> Any:
    prober = InferenceProber()
    try:
        return await prober.probe(_config(simulator.base_url, **changes), key)
    finally:
        await prober.aclose()


async def test_a_healthy_key_costs_a_few_tokens_and_sends_the_smallest_request(
    simulator: RunningSimulator,
) -> None:
    key = make_key("ok", seed="inference-ok")
    result = await _probe(simulator, key)
    assert (result.probe, result.result, result.http_status) == ("inference", Result.OK, 200)
    assert 0 < result.billed_tokens <= 10 + MAX_OUTPUT_TOKENS
    entry = simulator.stats()["keys"][key_id(key)]
    assert entry["responses_requests"] == 1 and entry["rest_requests"] == 0
    (body,) = entry["responses_bodies"]
    assert body == {
        "model": "gpt-4.1-nano",
        "input": "ping",
        "max_output_tokens": 16,
        "store": False,
    }
    assert entry["billed_tokens"] == result.billed_tokens


@pytest.mark.parametrize("scenario", ["insufficient_quota", "credit_balance_exhausted"])
async def test_no_credit_is_insufficient_quota_on_the_billed_call_only(
    simulator: RunningSimulator, scenario: str
) -> None:
    key = make_key(scenario, seed="inference-broke")
    result = await _probe(simulator, key)
    assert (result.result, result.http_status, result.error_code) == (
        Result.INSUFFICIENT_QUOTA,
        429,
        scenario,
    )
    assert result.billed_tokens == 0
    # The free call does not see it: that is why the inference probe exists.
    async with httpx.AsyncClient(timeout=3) as http:
        models = await http.get(
            f"{simulator.base_url}/models", headers={"Authorization": f"Bearer {key}"}
        )
    assert models.status_code == 200 and models.json()["object"] == "list"


async def test_a_model_openai_refuses_is_model_not_found(simulator: RunningSimulator) -> None:
    key = make_key("ok", seed="inference-model")
    result = await _probe(simulator, key, inference=InferenceSettings(model="gpt-no-such-model"))
    assert (result.result, result.error_code) == (Result.MODEL_NOT_FOUND, "model_not_found")
    assert result.billed_tokens == 0


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ("invalid_api_key", Result.INVALID_API_KEY),
        ("rate_limited", Result.RATE_LIMITED),
        ("server_error", Result.SERVER_ERROR),
        ("non_json", Result.PROTOCOL_ERROR),
        ("reset", Result.CONNECTION_ERROR),
    ],
)
async def test_failures_are_classified_by_the_rest_table(
    simulator: RunningSimulator, scenario: str, expected: Result
) -> None:
    result = await _probe(simulator, make_key(scenario, seed=f"inference-{scenario}"))
    assert result.result is expected, result
    assert result.probe == "inference" and result.billed_tokens == 0


async def test_a_hang_is_a_timeout(simulator: RunningSimulator) -> None:
    result = await _probe(simulator, make_key("hang", seed="inference-hang"), timeout=0.5)
    assert result.result is Result.TIMEOUT


async def test_billed_tokens_are_counted_per_key_in_metrics(
    simulator: RunningSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = make_key("ok", seed="inference-metrics")
    store = StateStore()
    store.configure({"billed": ("rest", "inference")})
    runner = ProbeRunner(store, {"inference": InferenceProber()})
    config = _config(simulator.base_url, source=KeySource(SourceKind.ENV, "INFERENCE_TEST_KEY"))
    monkeypatch.setenv("INFERENCE_TEST_KEY", key)
    try:
        first = await runner.run(config, "inference")
        second = await runner.run(config, "inference")
    finally:
        await runner.aclose()
    state = store.get("billed")
    assert state is not None
    text = b"".join(render_key(state)).decode()
    total = first.billed_tokens + second.billed_tokens
    assert f'openai_probe_billed_tokens_total{{key="billed"}} {total}\n' in text
    assert 'openai_probe_result{key="billed",probe="inference",result="ok"} 1' in text
    store.configure({"free": ("rest", "realtime")})
    free = store.get("free")
    assert free is not None
    assert "openai_probe_billed_tokens_total" not in b"".join(render_key(free)).decode()


def test_billed_tokens_reads_every_usage_shape() -> None:
    assert billed_tokens({"usage": {"total_tokens": 11}}) == 11
    assert billed_tokens({"usage": {"input_tokens": 8, "output_tokens": 3}}) == 11
    assert billed_tokens({"usage": {"input_tokens": 8, "output_tokens": "x"}}) == 8
    assert billed_tokens({"usage": None}) == 0
    assert billed_tokens([]) == 0


def test_never_on_unless_listed_and_configurable_per_key_or_in_defaults() -> None:
    config = parse_config(
        "defaults:\n"
        "  inference: {model: gpt-4o-mini, interval: 30m}\n"
        "keys:\n"
        "  - {name: free, api_key_env: A}\n"
        "  - {name: billed, api_key_env: B, probes: [rest, realtime, inference]}\n"
        "  - name: own\n"
        "    api_key_env: C\n"
        "    probes: [inference]\n"
        "    inference: {model: gpt-4.1-nano}\n",
        "c.yml",
    )
    free, billed, own = config.keys
    assert "inference" not in free.probes
    assert billed.probes == ("rest", "realtime", "inference")
    assert (billed.inference.model, billed.interval_for("inference")) == ("gpt-4o-mini", 1800)
    assert (own.inference.model, own.inference.interval) == ("gpt-4.1-nano", 1800)
    assert KeyConfig(name="d", source=KeySource(SourceKind.ENV, "D")).inference.interval == 900


def test_a_bad_inference_block_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"keys\[0\]\.inference\.modle: unknown field"):
        parse_config("keys:\n  - {name: a, api_key_env: A, inference: {modle: x}}\n", "c.yml")
    with pytest.raises(ConfigError, match=r"keys\[0\]\.inference\.interval"):
        parse_config("keys:\n  - {name: a, api_key_env: A, inference: {interval: soon}}\n", "c.yml")


def test_monthly_cost_is_logged_and_bounded(caplog: pytest.LogCaptureFixture) -> None:
    source = KeySource(SourceKind.ENV, "A")
    keys = [
        KeyConfig(name="a", source=source, probes=("rest", "inference")),
        KeyConfig(name="b", source=source, probes=("rest",)),
    ]
    estimate = monthly_cost(keys)
    assert estimate.keys == 1
    assert estimate.probes == pytest.approx(2880)  # every 15 minutes for 30 days
    assert estimate.tokens == pytest.approx(2880 * 26)
    assert estimate.usd is not None and estimate.usd < 0.05
    with caplog.at_level(logging.INFO, logger="exporter.probes.inference"):
        log_cost(keys)
    assert "the inference probe is billed" in caplog.text
    unknown = [replace(keys[0], inference=InferenceSettings(model="my-own-model"))]
    assert monthly_cost(unknown).usd is None


async def test_promtool_accepts_the_exposition_with_the_billed_probe(
    simulator: RunningSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    from exporter.metrics import ExporterMetrics, MetricsRenderer
    from tests.conftest import require_tool

    promtool = require_tool("promtool")
    store = StateStore()
    renderer = MetricsRenderer(ExporterMetrics(), store.latency)
    store.subscribe(renderer.update)
    store.configure({"billed": ("rest", "inference")})
    runner = ProbeRunner(store, {"inference": InferenceProber()})
    monkeypatch.setenv("INFERENCE_TEST_KEY", make_key("ok", seed="promtool"))
    config = _config(simulator.base_url, source=KeySource(SourceKind.ENV, "INFERENCE_TEST_KEY"))
    try:
        await runner.run(config, "inference")
    finally:
        await runner.aclose()
    exposition = renderer.render()
    assert b"# HELP openai_probe_billed_tokens_total " in exposition
    checking = await asyncio.create_subprocess_exec(
        promtool,
        "check",
        "metrics",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    said, _ = await asyncio.wait_for(checking.communicate(exposition), 60)
    assert checking.returncode == 0 and not said, said
