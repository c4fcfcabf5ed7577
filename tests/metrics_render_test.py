"""The cached exposition: rendered once per change, joined per segment, identical to a fresh render."""

from __future__ import annotations

import random

from exporter.classify import Result
from exporter.metrics import SEGMENT_KEYS, ExporterMetrics, MetricsRenderer, render_key
from exporter.result import ProbeResult
from exporter.state import KeyIdentity, StateStore
from tests.support.metrics import fresh_render, key_samples, record_random_results


def test_incremental_render_matches_a_fresh_render_through_updates_and_reloads() -> None:
    rng = random.Random(8)
    names = [f'key-{index}"\\\n' for index in range(3 * SEGMENT_KEYS + 5)]  # escaping too
    store = StateStore()
    renderer = MetricsRenderer(ExporterMetrics())
    store.subscribe(renderer.update)
    store.configure({name: ("rest", "realtime") if len(name) % 2 else ("rest",) for name in names})
    for step in range(1500):
        record_random_results(store, rng, names)
        if step % 50 == 0:  # scrapes between bursts of probes
            assert key_samples(renderer.render()) == fresh_render(store), step
        if step % 400 == 399:  # a reload drops some keys and adds new ones
            kept = [name for name in names if rng.random() < 0.7]
            names = kept + [f"new-{step}-{index}" for index in range(SEGMENT_KEYS // 2)]
            store.configure({name: ("rest",) for name in names})
            renderer.retain(set(names))
            assert key_samples(renderer.render()) == fresh_render(store), step


def test_each_family_appears_once_with_its_header_before_its_samples() -> None:
    store = StateStore()
    renderer = MetricsRenderer(ExporterMetrics())
    store.subscribe(renderer.update)
    names = [f"key-{index}" for index in range(2 * SEGMENT_KEYS + 1)]
    store.configure({name: ("rest", "realtime") for name in names})
    rng = random.Random(1)
    for _ in range(300):
        record_random_results(store, rng, names)
    seen: list[str] = []
    for line in renderer.render().decode().splitlines():
        if line.startswith("# TYPE "):
            seen.append(line.split()[2])
        elif not line.startswith("#"):
            family = line.split("{")[0].split(" ")[0]
            assert family.startswith(seen[-1]), (family, seen[-1])
    assert len(seen) == len(set(seen))


def test_removed_keys_disappear_and_an_idle_scrape_changes_nothing() -> None:
    store = StateStore()
    renderer = MetricsRenderer(ExporterMetrics())
    store.subscribe(renderer.update)
    store.configure({"a": ("rest",), "b": ("rest",)})
    first = key_samples(renderer.render())
    assert key_samples(renderer.render()) == first
    store.configure({"b": ("rest",)})
    renderer.retain({"b"})
    samples = key_samples(renderer.render())
    assert samples and not any('key="a"' in line for line in samples)


def test_a_key_renders_exactly_as_before() -> None:
    """The exposition format is a contract; these lines are the reference rendering."""
    store = StateStore()
    store.configure({'we"ird\\': ("realtime",)})
    state = store.record(
        'we"ird\\',
        KeyIdentity(fingerprint="sk-...abcd", kind="project", issues=("line\nbreak",)),
        ProbeResult(
            probe="realtime",
            result=Result.OK,
            duration=0.25,
            phases={"connect": 0.001},
            http_status=101,
            close_code=1000,
            started_at=1700000000.5,
        ),
    )
    assert state is not None
    text = b"".join(render_key(state)).decode()
    key = 'key="we\\"ird\\\\"'
    expected = [
        f"openai_key_valid{{{key}}} 1",
        f'openai_key_info{{{key},fingerprint="sk-...abcd",kind="project",provider="openai"}} 1',
        f'openai_key_format_issue{{{key},issue="line\\nbreak"}} 1',
        f'openai_probe_success{{{key},probe="realtime"}} 1',
        f'openai_probe_result{{{key},probe="realtime",result="ok"}} 1',
        f'openai_probe_duration_seconds{{{key},probe="realtime"}} 0.25',
        f'openai_probe_phase_duration_seconds{{{key},probe="realtime",phase="connect"}} 0.001',
        f'openai_probe_http_status_code{{{key},probe="realtime"}} 101',
        f'openai_probe_requests_total{{{key},probe="realtime"}} 1',
        f'openai_probe_consecutive_failures{{{key},probe="realtime"}} 0',
        f'openai_probe_last_run_timestamp_seconds{{{key},probe="realtime"}} 1700000000.5',
        f'openai_probe_last_success_timestamp_seconds{{{key},probe="realtime"}} 1700000000.75',
        f"openai_realtime_close_code{{{key}}} 1000",
        f'openai_realtime_closes_total{{{key},code="1000"}} 1',
        f'openai_probe_result_since_timestamp_seconds{{{key},probe="realtime"}} 1700000000.5',
    ]
    lines = text.splitlines()
    for line in expected:
        assert line in lines, line
    assert len(lines) == len(expected)


def test_durations_round_to_the_microsecond_and_timestamps_to_the_millisecond() -> None:
    store = StateStore()
    store.configure({"k": ("rest",)})
    state = store.record(
        "k",
        KeyIdentity(),
        ProbeResult(
            probe="rest",
            result=Result.OK,
            duration=0.8971495679998043,
            phases={"first_byte": 3.996399937022943e-05},
            http_status=200,
            started_at=1795773257.631364,
        ),
    )
    assert state is not None
    lines = b"".join(render_key(state)).decode().splitlines()
    assert 'openai_probe_duration_seconds{key="k",probe="rest"} 0.89715' in lines
    assert (
        'openai_probe_phase_duration_seconds{key="k",probe="rest",phase="first_byte"} 4e-05'
        in lines
    )
    assert 'openai_probe_last_run_timestamp_seconds{key="k",probe="rest"} 1795773257.631' in lines


def test_the_latency_histogram_counts_every_key_per_probe_and_survives_removed_keys() -> None:
    store = StateStore()
    renderer = MetricsRenderer(ExporterMetrics(), store.latency)
    store.subscribe(renderer.update)
    store.configure({"a": ("rest", "realtime"), "b": ("rest",), "c": ("rest",)})
    for name, probe, duration in (("a", "rest", 0.04), ("b", "rest", 0.25), ("a", "realtime", 2.0)):
        store.record(name, KeyIdentity(), ProbeResult(probe, Result.OK, duration=duration))
    # A probe that sent nothing (a malformed key) has no latency to count.
    store.record("c", KeyIdentity(), ProbeResult("rest", Result.KEY_MALFORMED, requests_made=0))
    store.configure({"a": ("rest", "realtime")})  # "b" removed: what it counted stays counted
    renderer.retain({"a"})
    lines = [
        line
        for line in renderer.render().decode().splitlines()
        if line.startswith("openai_probe_latency_seconds")
    ]
    assert lines == [
        'openai_probe_latency_seconds_bucket{probe="realtime",le="0.05"} 0',
        'openai_probe_latency_seconds_bucket{probe="realtime",le="0.1"} 0',
        'openai_probe_latency_seconds_bucket{probe="realtime",le="0.25"} 0',
        'openai_probe_latency_seconds_bucket{probe="realtime",le="0.5"} 0',
        'openai_probe_latency_seconds_bucket{probe="realtime",le="1"} 0',
        'openai_probe_latency_seconds_bucket{probe="realtime",le="2.5"} 1',
        'openai_probe_latency_seconds_bucket{probe="realtime",le="5"} 1',
        'openai_probe_latency_seconds_bucket{probe="realtime",le="10"} 1',
        'openai_probe_latency_seconds_bucket{probe="realtime",le="+Inf"} 1',
        'openai_probe_latency_seconds_sum{probe="realtime"} 2',
        'openai_probe_latency_seconds_count{probe="realtime"} 1',
        'openai_probe_latency_seconds_bucket{probe="rest",le="0.05"} 1',
        'openai_probe_latency_seconds_bucket{probe="rest",le="0.1"} 1',
        'openai_probe_latency_seconds_bucket{probe="rest",le="0.25"} 2',
        'openai_probe_latency_seconds_bucket{probe="rest",le="0.5"} 2',
        'openai_probe_latency_seconds_bucket{probe="rest",le="1"} 2',
        'openai_probe_latency_seconds_bucket{probe="rest",le="2.5"} 2',
        'openai_probe_latency_seconds_bucket{probe="rest",le="5"} 2',
        'openai_probe_latency_seconds_bucket{probe="rest",le="10"} 2',
        'openai_probe_latency_seconds_bucket{probe="rest",le="+Inf"} 2',
        'openai_probe_latency_seconds_sum{probe="rest"} 0.29',
        'openai_probe_latency_seconds_count{probe="rest"} 2',
    ]
