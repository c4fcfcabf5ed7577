"""Prometheus exposition of the state store, kept pre-rendered per key so scrapes only join bytes."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from exporter import __version__
from exporter.classify import error_code_label
from exporter.state import LATENCY_BUCKETS, KeyState, ProbeState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_FROM_PROBES = "From the scheduled probes, never from the scrape."


@dataclass(frozen=True)
class Family:
    name: str
    kind: str
    help: str

    @property
    def header(self) -> bytes:
        return f"# HELP {self.name} {self.help}\n# TYPE {self.name} {self.kind}\n".encode()


FAMILIES: tuple[Family, ...] = (
    Family(
        "openai_key_valid",
        "gauge",
        f"1 if OpenAI accepted the key, 0 if it rejected it; absent until a conclusive answer. {_FROM_PROBES}",
    ),
    Family(
        "openai_key_info",
        "gauge",
        "The key as last read: its redacted fingerprint (OpenAI's own redaction) and kind.",
    ),
    Family(
        "openai_key_format_issue",
        "gauge",
        "1 per problem found in the key's text or source, without sending it anywhere.",
    ),
    Family(
        "openai_probe_success",
        "gauge",
        f"1 if the last probe got the healthy answer. {_FROM_PROBES}",
    ),
    Family(
        "openai_probe_result",
        "gauge",
        "1 for the last probe's result class; the result label names the runbook section.",
    ),
    Family("openai_probe_duration_seconds", "gauge", "Total duration of the last probe."),
    Family(
        "openai_probe_phase_duration_seconds",
        "gauge",
        "Duration of each phase of the last probe; connect and tls come from the last probe that opened a connection.",
    ),
    Family(
        "openai_probe_latency_seconds", "histogram", "Duration of every probe that sent a request."
    ),
    Family(
        "openai_probe_http_status_code",
        "gauge",
        "HTTP status of the last probe (101 for an upgraded WebSocket; 0 when none came).",
    ),
    Family(
        "openai_probe_errors_total",
        "counter",
        "Failed probes by OpenAI error code, or by result class when OpenAI gave none.",
    ),
    Family(
        "openai_probe_requests_total",
        "counter",
        "Requests and sessions sent upstream, so the probe budget is visible.",
    ),
    Family(
        "openai_probe_consecutive_failures", "gauge", "Failed probes in a row; 0 after a success."
    ),
    Family(
        "openai_probe_last_run_timestamp_seconds",
        "gauge",
        "When the last probe started, in Unix time.",
    ),
    Family(
        "openai_probe_last_success_timestamp_seconds",
        "gauge",
        "When the last healthy probe finished, in Unix time.",
    ),
    Family(
        "openai_ratelimit_limit_requests",
        "gauge",
        "x-ratelimit-limit-requests from OpenAI's last answer, when sent.",
    ),
    Family(
        "openai_ratelimit_remaining_requests",
        "gauge",
        "x-ratelimit-remaining-requests from OpenAI's last answer, when sent.",
    ),
    Family(
        "openai_ratelimit_limit_tokens",
        "gauge",
        "x-ratelimit-limit-tokens from OpenAI's last answer, when sent.",
    ),
    Family(
        "openai_ratelimit_remaining_tokens",
        "gauge",
        "x-ratelimit-remaining-tokens from OpenAI's last answer, when sent.",
    ),
    Family(
        "openai_realtime_close_code",
        "gauge",
        "WebSocket close code of the last Realtime probe (1000 after our own clean close).",
    ),
    Family("openai_realtime_closes_total", "counter", "Realtime WebSocket closes by close code."),
)
_INDEX = {family.name: index for index, family in enumerate(FAMILIES)}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


class _Lines:
    """Samples of one key, sorted into their families."""

    def __init__(self) -> None:
        self.by_family: list[list[str]] = [[] for _ in FAMILIES]

    def add(self, family: str, labels: dict[str, str], value: float, suffix: str = "") -> None:
        rendered = ",".join(f'{name}="{_escape(text)}"' for name, text in labels.items())
        self.by_family[_INDEX[family]].append(f"{family}{suffix}{{{rendered}}} {_number(value)}\n")


def render_key(state: KeyState) -> list[bytes]:
    """One key's samples, one bytes block per family (empty when it has none)."""
    lines = _Lines()
    key = {"key": state.name}
    if state.valid is not None:
        lines.add("openai_key_valid", key, 1 if state.valid else 0)
    identity = state.identity
    lines.add(
        "openai_key_info", {**key, "fingerprint": identity.fingerprint, "kind": identity.kind}, 1
    )
    for issue in identity.issues:
        lines.add("openai_key_format_issue", {**key, "issue": issue}, 1)
    for header, value in sorted(state.ratelimit.items()):
        lines.add(f"openai_ratelimit_{header}", key, value)
    for probe, probe_state in state.probes.items():
        _render_probe(lines, {**key, "probe": probe}, probe_state)
    return ["".join(block).encode() for block in lines.by_family]


def _render_probe(lines: _Lines, labels: dict[str, str], state: ProbeState) -> None:
    last = state.last
    lines.add("openai_probe_requests_total", labels, state.requests_total)
    lines.add("openai_probe_consecutive_failures", labels, state.consecutive_failures)
    for code, count in sorted(state.errors_total.items()):
        lines.add("openai_probe_errors_total", {**labels, "code": error_code_label(code)}, count)
    if state.latency_count:
        for bound, count in zip(LATENCY_BUCKETS, state.bucket_counts, strict=True):
            lines.add(
                "openai_probe_latency_seconds", {**labels, "le": _number(bound)}, count, "_bucket"
            )
        inf = {**labels, "le": "+Inf"}
        lines.add("openai_probe_latency_seconds", inf, state.latency_count, "_bucket")
        lines.add("openai_probe_latency_seconds", labels, state.latency_sum, "_sum")
        lines.add("openai_probe_latency_seconds", labels, state.latency_count, "_count")
    if state.last_success_at is not None:
        lines.add("openai_probe_last_success_timestamp_seconds", labels, state.last_success_at)
    if labels["probe"] == "realtime":
        key_only = {"key": labels["key"]}
        for close_code, closes in sorted(state.closes_total.items()):
            lines.add("openai_realtime_closes_total", {**key_only, "code": str(close_code)}, closes)
        if last is not None and last.close_code is not None:
            lines.add("openai_realtime_close_code", key_only, last.close_code)
    if last is None:
        return
    lines.add("openai_probe_success", labels, 1 if last.healthy else 0)
    lines.add("openai_probe_result", {**labels, "result": last.result.value}, 1)
    lines.add("openai_probe_duration_seconds", labels, last.duration)
    for phase, seconds in sorted(state.phases.items()):
        lines.add("openai_probe_phase_duration_seconds", {**labels, "phase": phase}, seconds)
    lines.add("openai_probe_http_status_code", labels, last.http_status)
    lines.add("openai_probe_last_run_timestamp_seconds", labels, last.started_at)


class ExporterMetrics:
    """The exporter's own metrics: build, configuration reloads, sharding, process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        build = Gauge(
            "openai_key_exporter_build_info",
            "Version of the exporter and of Python it runs on.",
            ["version", "python_version"],
            registry=self.registry,
        )
        build.labels(__version__, platform.python_version()).set(1)
        self.reload_ok = Gauge(
            "openai_key_exporter_config_last_reload_successful",
            "1 if the last configuration (re)load succeeded.",
            registry=self.registry,
        )
        self.reload_time = Gauge(
            "openai_key_exporter_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully, in Unix time.",
            registry=self.registry,
        )
        self.keys_configured = Gauge(
            "openai_key_exporter_keys",
            "Keys this exporter probes (its shard's share).",
            registry=self.registry,
        )
        self.shard = Gauge(
            "openai_key_exporter_shard_info",
            "This replica's shard: it probes the keys whose name hashes to index out of total.",
            ["index", "total"],
            registry=self.registry,
        )

    def config_loaded(self, ok: bool, key_count: int | None = None) -> None:
        self.reload_ok.set(1 if ok else 0)
        if ok:
            self.reload_time.set(time.time())
        if key_count is not None:
            self.keys_configured.set(key_count)

    def set_shard(self, index: int, total: int) -> None:
        self.shard.clear()
        self.shard.labels(str(index), str(total)).set(1)


class MetricsRenderer:
    """Keeps each key's rendered samples; re-renders a key only when its state changes."""

    def __init__(self, exporter_metrics: ExporterMetrics) -> None:
        self._exporter_metrics = exporter_metrics
        self._blocks: dict[str, list[bytes]] = {}
        self._generation = 0
        self._body: tuple[int, bytes] | None = None

    def update(self, state: KeyState) -> None:
        self._blocks[state.name] = render_key(state)
        self._generation += 1

    def retain(self, names: set[str]) -> None:
        for name in set(self._blocks) - names:
            del self._blocks[name]
            self._generation += 1

    def _key_body(self) -> bytes:
        if self._body is not None and self._body[0] == self._generation:
            return self._body[1]
        parts: list[bytes] = []
        blocks = list(self._blocks.values())
        for index, family in enumerate(FAMILIES):
            samples = [block[index] for block in blocks if block[index]]
            if samples:
                parts.append(family.header)
                parts.extend(samples)
        body = b"".join(parts)
        self._body = (self._generation, body)
        return body

    def render(self) -> bytes:
        return self._key_body() + generate_latest(self._exporter_metrics.registry)
