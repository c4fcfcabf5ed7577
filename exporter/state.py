"""The one shared store: the latest result of each key and probe, and what accumulates from them."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from exporter.classify import RESULTS, Result, Validity, error_code_label
from exporter.models import ModelStatuses
from exporter.readings import NO_READINGS, Readings, incremented
from exporter.result import ProbeResult

# A reused REST connection skips these; a Realtime session connects every time.
_CARRIED_PHASES: dict[str, tuple[str, ...]] = {"rest": ("connect", "tls")}
# The kinds of probe, each a field of KeyState; the order is the order of output.
PROBE_KINDS: tuple[str, ...] = ("rest", "realtime", "live", "inference")
LATENCY_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _empty() -> Readings:
    # One shared empty mapping; mappings here are replaced, never changed in place.
    return NO_READINGS


@dataclass(frozen=True, slots=True)
class KeyIdentity:
    """The public face of a key as last read: never the key itself."""

    fingerprint: str = ""
    kind: str = "unknown"
    issues: tuple[str, ...] = ()
    provider: str = "openai"  # who issued it (config's provider): a label of openai_key_info
    # keys.value_digest of the value read (salted per process); None: not read yet
    value_digest: bytes | None = field(default=None, repr=False)


@dataclass(slots=True)
class ProbeState:
    last: ProbeResult | None = None
    consecutive_failures: int = 0
    last_success_at: float | None = None
    requests_total: int = 0
    errors_total: Readings = field(default_factory=_empty)  # by error code
    closes_total: Readings = field(default_factory=_empty)  # by WebSocket close code, as text
    billed_tokens_total: int = 0
    billed_seconds_total: float = 0.0
    result_since: float | None = None  # when the current result class began (a probe's start)
    result_probes: int = 0  # probes in a row that ended in the current result class

    @property
    def phases(self) -> Mapping[str, float]:
        """The last probe's phases, with connect and tls from the last probe that opened a
        connection (reused ones skip them); a failure never shows an older success's others."""
        return self.last.phases if self.last is not None else NO_READINGS

    def observe(self, result: ProbeResult) -> None:
        carried = _CARRIED_PHASES.get(result.probe, ())
        if self.last is not None and carried:
            previous = self.last.phases
            kept = {
                phase: previous[phase]
                for phase in carried
                if phase in previous and phase not in result.phases
            }
            if kept:  # in the stored result itself: one mapping per probe, not a second one
                result = replace(result, phases={**kept, **result.phases})
        if self.last is None or self.last.result is not result.result or self.result_since is None:
            self.result_since = result.started_at
            self.result_probes = 0
        self.result_probes += 1
        self.last = result
        self.requests_total += result.requests_made
        self.billed_tokens_total += result.billed_tokens
        if result.healthy:
            self.consecutive_failures = 0
            self.last_success_at = result.started_at + result.duration
        else:
            self.consecutive_failures += 1
            # Bounded here, not at render time: two unknown codes must not become two series.
            code = error_code_label(result.error_code or result.result.value)
            self.errors_total = incremented(self.errors_total, code)
        if result.close_code is not None:
            self.closes_total = incremented(self.closes_total, str(result.close_code))
        if result.billed_seconds:  # most probes bill nothing: no new float for them
            self.billed_seconds_total += result.billed_seconds


@dataclass(slots=True)
class LatencyHistogram:
    """Durations of every probe of one kind that sent a request, over all keys.

    Not per key: a histogram per key would be 11 series per key and probe, most of the
    exposition at 10,000 keys; a key's own latency is its duration gauge.
    """

    bucket_counts: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    count: int = 0
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        for index, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                self.bucket_counts[index] += 1


@dataclass(slots=True)
class KeyState:
    name: str
    # A field per kind of probe (PROBE_KINDS), None when not configured: slots, not a dict per
    # key (the memory row of docs/performance.md).
    rest: ProbeState | None = None
    realtime: ProbeState | None = None
    live: ProbeState | None = None
    inference: ProbeState | None = None
    identity: KeyIdentity = field(default_factory=KeyIdentity)
    valid: bool | None = None  # None until a conclusive answer
    # When the key's value in its source last changed (first set at the first read): processes
    # of the application started before it still hold the old key until restarted.
    key_changed_at: float | None = None
    key_read_at: float = 0.0  # when the value behind `identity` was read
    ratelimit: Mapping[str, float] = field(default_factory=_empty)
    # The watched models as the key's model list last showed them; () when never read, or
    # when the key cannot read the list (unknown is not "missing").
    models: ModelStatuses = ()

    @property
    def probes(self) -> dict[str, ProbeState]:
        """The configured probes' states, in PROBE_KINDS order (REST first)."""
        return {kind: state for kind in PROBE_KINDS if (state := getattr(self, kind)) is not None}

    def probe(self, kind: str) -> ProbeState | None:
        """The state of one kind of probe; None when the key is not probed so."""
        state: ProbeState | None = getattr(self, kind) if kind in PROBE_KINDS else None
        return state

    @property
    def probed_once(self) -> bool:
        return all(state.last is not None for state in self.probes.values())


def _says_list_unreadable(result: Result) -> bool:
    """A REST answer that is not the list and not a passing failure: what the list said before
    no longer holds for this key. A timeout or a 429 keeps the last reading."""
    return RESULTS[result].validity is not Validity.UNKNOWN and result not in (
        Result.OK,
        Result.RATE_LIMITED,
    )


Listener = Callable[[KeyState], None]


def _restored_same_value(state: KeyState, identity: KeyIdentity) -> bool:
    """The first reading after a restore: the state file keeps no digest of the key, so the
    same fingerprint (first and last four characters, kind) is taken as the same value and the
    restored change time holds. A new key sharing both ends would be missed: unlikely."""
    return (
        state.identity.value_digest is None
        and state.key_changed_at is not None
        and identity.fingerprint == state.identity.fingerprint
        and identity.kind == state.identity.kind
    )


class StateStore:
    """Latest state per key. Probes write through `record`; readers never block writers."""

    def __init__(self) -> None:
        self._keys: dict[str, KeyState] = {}
        self.latency: dict[str, LatencyHistogram] = {}  # per probe kind; outlives removed keys
        self._listeners: list[Listener] = []
        self._ready = False
        self._configured = False  # no configuration applied yet: not ready, even with no keys
        # Keys of the first round not probed by every probe yet, kept up to date as results
        # come, so /-/ready answers without walking every key (readiness probes poll it).
        self._unprobed: set[str] = set()

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def configure(self, keys: dict[str, tuple[str, ...]]) -> None:
        """Match the configured keys and probes; unchanged ones keep their state."""
        self._configured = True
        for name in list(self._keys):
            if name not in keys:
                del self._keys[name]
        for name, probes in keys.items():
            state = self._keys.get(name)
            if state is None:
                state = KeyState(name=name)
                self._keys[name] = state
            for kind in PROBE_KINDS:
                kept = state.probe(kind)
                setattr(state, kind, (kept or ProbeState()) if kind in probes else None)
            if not self._ready and not state.probed_once:
                self._unprobed.add(name)
            self._changed(state)
        self._unprobed.intersection_update(keys)

    def record(
        self,
        name: str,
        identity: KeyIdentity,
        result: ProbeResult,
        changed_at: Callable[[float | None], float] | None = None,
        read_at: float | None = None,
    ) -> KeyState | None:
        """Store a probe's result; `changed_at(previous change)` says when the value read (at
        `read_at`) changed in its source, asked only when its digest differs from the last one."""
        state = self._keys.get(name)
        probe_state = state.probe(result.probe) if state is not None else None
        if state is None or probe_state is None:
            return None  # the key was removed by a reload while its probe ran
        read_at = time.time() if read_at is None else read_at
        if (
            identity.value_digest is not None
            and identity.value_digest != state.identity.value_digest
            and not _restored_same_value(state, identity)
            # A probe that read the old value before another recorded the new one is not a
            # change back: the value of the latest reading wins.
            and read_at >= state.key_read_at
        ):
            previous = state.key_changed_at
            state.key_changed_at = changed_at(previous) if changed_at else read_at
        if identity.value_digest is not None and read_at < state.key_read_at:
            identity = replace(identity, value_digest=state.identity.value_digest)
        state.key_read_at = max(state.key_read_at, read_at)
        if identity != state.identity:
            state.identity = identity  # the same key read again keeps one object, not one a probe
        probe_state.observe(result)
        if result.requests_made:
            self.latency.setdefault(result.probe, LatencyHistogram()).observe(result.duration)
        validity = RESULTS[result.result].validity
        if validity is Validity.VALID:
            state.valid = True
        elif validity is Validity.INVALID:
            state.valid = False
        if result.ratelimit:
            state.ratelimit = result.ratelimit  # results are never changed once made
        if result.models is not None:
            state.models = result.models
        elif result.probe == "rest" and _says_list_unreadable(result.result):
            state.models = ()  # the key cannot read the list (missing scope...): publish nothing
        self._changed(state)
        return state

    def changed(self, state: KeyState) -> None:
        """Tell the listeners of a change made outside `record` (state restored from a file)."""
        self._changed(state)

    def _changed(self, state: KeyState) -> None:
        if state.name in self._unprobed and state.probed_once:
            self._unprobed.discard(state.name)
        for listener in self._listeners:
            listener(state)

    def states(self) -> list[KeyState]:
        return list(self._keys.values())

    def get(self, name: str) -> KeyState | None:
        return self._keys.get(name)

    @property
    def ready(self) -> bool:
        """True once the first round is done; keys a reload adds later do not take it back,
        or every reload would take the exporter out of service until they are probed."""
        if not self._ready and self._configured and not self._unprobed:
            self._ready = True
        return self._ready

    @property
    def unprobed(self) -> int:
        """Keys the first round has not probed with every probe yet (0 once ready)."""
        return 0 if self._ready else len(self._unprobed)
