"""Prometheus exposition of the state store, kept rendered and deflated so a scrape only lists
blocks: each key is re-rendered when its state changes, never by a scrape."""

from __future__ import annotations

import itertools
import math
import platform
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
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
from exporter.gzip_body import EMPTY, Deflated, deflate, gzip_member, inflate, text_size
from exporter.readings import Readings
from exporter.state import LATENCY_BUCKETS, KeyState, LatencyHistogram, ProbeState

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
        "The key as last read: its redacted fingerprint (OpenAI's own redaction), kind and"
        " provider (openai or azure).",
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
    Family(
        "openai_probe_duration_seconds",
        "gauge",
        "Duration of the last probe, to the last byte of the answer: connect, TLS and the "
        "request when it opened its own connection, the request alone on a kept-alive one.",
    ),
    Family(
        "openai_probe_phase_duration_seconds",
        "gauge",
        "Duration of each phase of the last probe; connect and tls come from the last probe that opened a connection.",
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
    Family(
        "openai_probe_billed_tokens_total",
        "counter",
        "Tokens OpenAI billed for the opt-in inference probe (input and output); present only "
        "for keys with that probe.",
    ),
    Family(
        "openai_probe_result_since_timestamp_seconds",
        "gauge",
        "When the last probe's result class began: the start of the first probe in a row that "
        "ended in it, in Unix time.",
    ),
    Family(
        "openai_key_last_change_timestamp_seconds",
        "gauge",
        "When the key's value in its source last changed (the file's mtime for a file or .env, "
        "else when the exporter read it), first set at the first read, in Unix time. "
        "Application processes started before it still hold the old key.",
    ),
    Family(
        "openai_live_close_code",
        "gauge",
        "WebSocket close code of the last GPT-Live probe (1000 after a clean close).",
    ),
    Family("openai_live_closes_total", "counter", "GPT-Live WebSocket closes by close code."),
    Family(
        "openai_probe_billed_seconds_total",
        "counter",
        "Session seconds the opt-in billed probes (GPT-Live) were billed for, as OpenAI reported "
        "them (usage.seconds), else as measured from session start to close.",
    ),
    Family(
        "openai_model_listed",
        "gauge",
        "1 if the key's model list (GET /v1/models, the REST probe's own answer) holds the model, "
        "0 if not; absent when the key cannot read the list. For the models its probes use and "
        "those in its models: field.",
    ),
    Family(
        "openai_model_shutdown_timestamp_seconds",
        "gauge",
        "When OpenAI shuts the model down (its shutdown_date), in Unix time; absent when none.",
    ),
)
_INDEX = {family.name: index for index, family in enumerate(FAMILIES)}
LATENCY = Family(
    "openai_probe_latency_seconds",
    "histogram",
    "Duration of every probe that sent a request, over all keys of this exporter; a key's own is "
    "openai_probe_duration_seconds.",
)


def escape_label_value(value: str) -> str:
    """A label value as the text format writes it: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    # About 30 per key and probe: the common cases (counts, whole numbers) first.
    if isinstance(value, int):  # counts, codes, 0 and 1
        return str(int(value)) if -(10**15) < value < 10**15 else repr(float(value))
    if value.is_integer():  # False for NaN and infinities
        return str(int(value)) if abs(value) < 1e15 else repr(float(value))
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    return repr(float(value))


def _micros(seconds: float) -> float:
    """Durations to the microsecond: finer digits are clock noise and 8 bytes a sample."""
    return round(seconds, 6)


def _millis(timestamp: float) -> float:
    return round(timestamp, 3)


class _Lines:
    """Samples of one key, sorted into their families; labels arrive already rendered."""

    __slots__ = ("by_family",)

    def __init__(self) -> None:
        self.by_family: list[list[str]] = [[] for _ in FAMILIES]

    def add(self, family: str, labels: str, value: float, suffix: str = "") -> None:
        self.by_family[_INDEX[family]].append(f"{family}{suffix}{{{labels}}} {_number(value)}\n")


def _label(name: str, text: str) -> str:
    return f'{name}="{escape_label_value(text)}"'


def render_key(state: KeyState) -> list[bytes]:
    """One key's samples, one bytes block per family (empty when it has none)."""
    lines = _Lines()
    key = _label("key", state.name)  # rendered once, shared by every sample of the key
    if state.valid is not None:
        lines.add("openai_key_valid", key, 1 if state.valid else 0)
    identity = state.identity
    info = (
        f"{key},{_label('fingerprint', identity.fingerprint)},{_label('kind', identity.kind)},"
        f"{_label('provider', identity.provider)}"  # openai or azure: bounded
    )
    lines.add("openai_key_info", info, 1)
    for issue in identity.issues:
        lines.add("openai_key_format_issue", f"{key},{_label('issue', issue)}", 1)
    if state.key_changed_at is not None:
        lines.add("openai_key_last_change_timestamp_seconds", key, _millis(state.key_changed_at))
    for header, value in sorted(_pairs(state.ratelimit)):
        lines.add(f"openai_ratelimit_{header}", key, value)
    for probe, probe_state in state.probes.items():
        _render_probe(lines, key, probe, probe_state)
    if state.inference is not None:  # the only billed probe; free probes have nothing to count
        lines.add("openai_probe_billed_tokens_total", key, state.inference.billed_tokens_total)
    if state.live is not None:
        billed = sum(probe_state.billed_seconds_total for probe_state in state.probes.values())
        lines.add("openai_probe_billed_seconds_total", key, billed)
    for status in state.models:
        model = f"{key},{_label('model', status.model)}"
        lines.add("openai_model_listed", model, 1 if status.listed else 0)
        if status.shutdown_at is not None:
            lines.add("openai_model_shutdown_timestamp_seconds", model, status.shutdown_at)
    return [_join_encoded(block) for block in lines.by_family]


def _join_encoded(block: list[str]) -> bytes:
    return "".join(block).encode() if block else b""


def _pairs(values: Mapping[str, float]) -> Iterable[tuple[str, float]]:
    return values.pairs() if isinstance(values, Readings) else values.items()


def _numerically(item: tuple[str, float]) -> int:
    return int(item[0])


# WebSocket probes: (closes counter, last close code gauge)
_CLOSE_FAMILIES = {
    "realtime": ("openai_realtime_closes_total", "openai_realtime_close_code"),
    "live": ("openai_live_closes_total", "openai_live_close_code"),
}


def _render_probe(lines: _Lines, key: str, probe: str, state: ProbeState) -> None:
    last = state.last
    labels = f"{key},{_label('probe', probe)}"
    lines.add("openai_probe_requests_total", labels, state.requests_total)
    lines.add("openai_probe_consecutive_failures", labels, state.consecutive_failures)
    for code, count in sorted(state.errors_total.pairs()):
        code_labels = f"{labels},{_label('code', error_code_label(code))}"
        lines.add("openai_probe_errors_total", code_labels, count)
    if state.last_success_at is not None:
        lines.add(
            "openai_probe_last_success_timestamp_seconds", labels, _millis(state.last_success_at)
        )
    if probe in _CLOSE_FAMILIES:
        closes_family, code_family = _CLOSE_FAMILIES[probe]
        for close_code, closes in sorted(state.closes_total.pairs(), key=_numerically):
            lines.add(closes_family, f"{key},{_label('code', close_code)}", closes)
        if last is not None and last.close_code is not None:
            lines.add(code_family, key, last.close_code)
    if last is None:
        return
    lines.add("openai_probe_success", labels, 1 if last.healthy else 0)
    lines.add("openai_probe_result", f"{labels},{_label('result', last.result.value)}", 1)
    lines.add("openai_probe_duration_seconds", labels, _micros(last.duration))
    for phase, seconds in sorted(_pairs(state.phases)):
        lines.add(
            "openai_probe_phase_duration_seconds",
            f"{labels},{_label('phase', phase)}",
            _micros(seconds),
        )
    lines.add("openai_probe_http_status_code", labels, last.http_status)
    lines.add("openai_probe_last_run_timestamp_seconds", labels, _millis(last.started_at))
    if state.result_since is not None:
        lines.add(
            "openai_probe_result_since_timestamp_seconds", labels, _millis(state.result_since)
        )


def render_latency(histograms: Mapping[str, LatencyHistogram]) -> bytes:
    """The exporter-wide latency histogram, one per probe kind: a few lines, rendered per scrape."""
    if not histograms:
        return b""
    name = LATENCY.name
    lines = [LATENCY.header.decode()]
    for probe, histogram in sorted(histograms.items()):
        labels = _label("probe", probe)
        for bound, count in zip(LATENCY_BUCKETS, histogram.bucket_counts, strict=True):
            lines.append(f'{name}_bucket{{{labels},le="{_number(bound)}"}} {count}\n')
        lines.append(f'{name}_bucket{{{labels},le="+Inf"}} {histogram.count}\n')
        lines.append(f"{name}_sum{{{labels}}} {_number(histogram.total)}\n")
        lines.append(f"{name}_count{{{labels}}} {histogram.count}\n")
    return "".join(lines).encode()


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


SEGMENT_KEYS = 64  # keys joined together; a probe re-joins only its own segment
# Renderings a segment holds before joining them without waiting for a scrape. A join deflates
# each family that changed for the whole segment, so it is paid once per JOIN_AFTER renderings;
# the renderings that wait are plain text (about 2.6 KB a key).
JOIN_AFTER = 16


class _Segment:
    """Up to SEGMENT_KEYS keys: their samples joined per family and held deflated, and where
    each key's lie.

    Each key's bytes live only inside the deflated blocks (plus a fresh rendering until the next
    join), so the exposition is held once, and as Prometheus asks for it (gzip_body.py).
    """

    __slots__ = ("families", "lengths", "names", "pending", "position")

    def __init__(self) -> None:
        self.families: list[Deflated] = [EMPTY] * len(FAMILIES)
        self.names: list[str] = []  # output order
        self.position: dict[str, int] = {}  # name -> index in names
        # per family: bytes of each key (a key's samples of one family are far below 64 KiB);
        # machine ints, not 3,000 lists of int objects
        self.lengths: list[array[int]] = [array("H") for _ in FAMILIES]
        self.pending: dict[str, list[bytes] | None] = {}  # new renderings; None: key removed

    def join(self) -> None:
        """Splice the pending renderings into the joined blocks.

        Unchanged keys are copied as runs between the changed ones, and a family none of the
        changed keys' samples moved in is kept deflated as it is.
        """
        changed: list[tuple[int, list[bytes] | None]] = []
        added: list[tuple[str, list[bytes]]] = []
        for name, fresh in self.pending.items():
            index = self.position.get(name)
            if index is not None:
                changed.append((index, fresh))
            elif fresh is not None:
                added.append((name, fresh))
        self.pending.clear()
        changed.sort(key=lambda item: item[0])
        families: list[Deflated] = []
        for family, (held, lengths) in enumerate(zip(self.families, self.lengths, strict=True)):
            block = inflate(held)
            offsets = [0, *itertools.accumulate(lengths)]
            if not added and all(
                fresh is not None and block[offsets[index] : offsets[index + 1]] == fresh[family]
                for index, fresh in changed
            ):
                # Most families do not change with a probe (validity, info, result, status...).
                families.append(held)
                continue
            view = memoryview(block)
            pieces: list[bytes | memoryview] = []
            copied_up_to = 0  # index of the first key not yet copied
            for index, fresh in changed:
                pieces.append(view[offsets[copied_up_to] : offsets[index]])
                if fresh is not None:
                    pieces.append(fresh[family])
                    lengths[index] = len(fresh[family])
                copied_up_to = index + 1
            pieces.append(view[offsets[copied_up_to] :])
            for _, fresh in added:
                pieces.append(fresh[family])
                lengths.append(len(fresh[family]))
            families.append(deflate(b"".join(pieces)))
            view.release()
        self.families = families
        self.names.extend(name for name, _ in added)
        if any(fresh is None for _, fresh in changed):
            self._drop({index for index, fresh in changed if fresh is None})
        else:
            for name, _ in added:
                self.position[name] = len(self.position)

    def size(self) -> int:
        """Keys placed here, including those whose first rendering is not joined in yet."""
        return len(self.position) + sum(1 for name in self.pending if name not in self.position)

    def _drop(self, removed: set[int]) -> None:
        """Forget removed keys' places (their bytes are already out of the joined blocks)."""
        keep = [index for index in range(len(self.names)) if index not in removed]
        self.names = [self.names[index] for index in keep]
        self.lengths = [array("H", (lengths[index] for index in keep)) for lengths in self.lengths]
        self.position = {name: index for index, name in enumerate(self.names)}


_HEADERS = [deflate(family.header) for family in FAMILIES]


@dataclass(frozen=True, slots=True)
class Exposition:
    """What one scrape sends, taken at once: the keys' samples as held (deflated, shared with
    every other scrape and never changed), then the exporter-wide samples rendered for it."""

    held: list[Deflated]
    fresh: list[bytes]

    @property
    def size(self) -> int:
        """Bytes of the plain text."""
        return sum(map(text_size, self.held)) + sum(map(len, self.fresh))

    def plain(self) -> Iterator[bytes]:
        """The text, block by block: inflated as it is sent, never held whole."""
        yield from map(inflate, self.held)
        yield from self.fresh

    def gzipped(self) -> list[bytes]:
        """One gzip member: the held pieces as they are, the fresh blocks deflated now."""
        return gzip_member([*self.held, *map(deflate, self.fresh)])


class MetricsRenderer:
    """Keeps the rendered samples; re-renders a key only when its state changes.

    Keys are grouped in segments; a scrape re-joins only the segments whose keys changed since
    the previous one, and sends one block per segment and family, instead of one per key.
    """

    def __init__(
        self,
        exporter_metrics: ExporterMetrics,
        latency: Mapping[str, LatencyHistogram] | None = None,
    ) -> None:
        self._exporter_metrics = exporter_metrics
        self._latency = latency if latency is not None else {}  # the store's, read at each scrape
        self._segment_of: dict[str, _Segment] = {}
        self._segments: list[_Segment] = []
        self._dirty: dict[int, _Segment] = {}
        self._held: list[Deflated] | None = None  # the keys' samples, shared until a change
        # Exporter-wide samples rendered elsewhere when their data changes (the key inventory).
        self.extra_exposition: Callable[[], bytes] = bytes

    def update(self, state: KeyState) -> None:
        segment = self._segment_of.get(state.name)
        if segment is None:
            segment = self._segment_with_room()
            self._segment_of[state.name] = segment
        segment.pending[state.name] = render_key(state)
        if len(segment.pending) >= JOIN_AFTER:
            # Joined now rather than at the next scrape: renderings waiting for a scrape would
            # be a plain copy of the exposition when scrapes are rare.
            segment.join()
            self._dirty.pop(id(segment), None)
            self._held = None
        else:
            self._dirty[id(segment)] = segment

    def _segment_with_room(self) -> _Segment:
        last = self._segments[-1] if self._segments else None
        if last is None or last.size() >= SEGMENT_KEYS:
            last = _Segment()
            self._segments.append(last)
        return last

    def retain(self, names: set[str]) -> None:
        for name in set(self._segment_of) - names:
            segment = self._segment_of.pop(name)
            if name in segment.position:
                segment.pending[name] = None
            else:
                del segment.pending[name]
            self._dirty[id(segment)] = segment

    def _join_dirty(self) -> None:
        if self._dirty:
            self._held = None  # it lists the blocks these joins replace
        for segment in self._dirty.values():
            segment.join()
        self._dirty.clear()
        self._segments = [segment for segment in self._segments if segment.names]

    def _keys_held(self) -> list[Deflated]:
        self._join_dirty()
        held: list[Deflated] = []
        # Segments by family, transposed by zip in C: the cost of a scrape stays out of Python's
        # loop over every segment.
        columns = zip(*(segment.families for segment in self._segments), strict=True)
        for header, blocks in zip(_HEADERS, columns, strict=False):
            samples = [block for block in blocks if text_size(block)]
            if samples:
                held.append(header)
                held.extend(samples)
        return held

    def scrape(self) -> Exposition:
        """The exposition to send now: the keys' samples as held, then the exporter-wide ones."""
        if self._held is None or self._dirty:
            self._held = self._keys_held()
        fresh = [
            render_latency(self._latency),
            self.extra_exposition(),
            generate_latest(self._exporter_metrics.registry),
        ]
        return Exposition(self._held, fresh)

    def render(self) -> bytes:
        """The whole text at once (for checks and tests; a scrape streams it)."""
        return b"".join(self.scrape().plain())
