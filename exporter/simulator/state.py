"""What the simulator remembers: per-key counters, request times and scenario overrides."""

from __future__ import annotations

import collections
import hashlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from exporter.simulator.scenarios import SCENARIOS, Selection, select_scenario, selection

ANONYMOUS = "anonymous"  # stats entry for requests without an Authorization header
BILLABLE_EVENTS = frozenset(
    {
        "response.create",
        "input_audio_buffer.append",
        "input_audio_buffer.commit",
        "conversation.item.create",
    }
)
_MAX_TIMES = 100_000  # per key, so a long benchmark cannot grow memory without bound
RATE_WINDOW_S = 60.0  # x-ratelimit-remaining-requests counts requests per minute


def key_id(key: str) -> str:
    """The stats name of a key: the first 16 hex digits of its SHA-256, never the key itself."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass
class KeyStats:
    rest_requests: int = 0
    realtime_sessions: int = 0
    live_connections: int = 0  # GPT-Live WebSockets opened
    live_sessions: int = 0  # GPT-Live sessions started: each one is billed
    live_billed_seconds: int = 0
    billable_events: int = 0
    client_events: collections.Counter[str] = field(default_factory=collections.Counter)
    # time.monotonic() of each request: CLOCK_MONOTONIC, comparable across processes on a host
    rest_request_times: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=_MAX_TIMES)
    )
    realtime_session_times: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=_MAX_TIMES)
    )
    # Of each answer a timed scenario (slow) gave: (request arrived, woke at its deadline, answer
    # written), so a benchmark can tell the simulator's own lateness from its client's error.
    rest_answer_times: collections.deque[tuple[float, float, float]] = field(
        default_factory=lambda: collections.deque(maxlen=_MAX_TIMES)
    )
    responses_requests: int = 0  # POST /v1/responses, the only billed REST call simulated
    billed_tokens: int = 0
    responses_bodies: collections.deque[dict[str, Any]] = field(
        default_factory=lambda: collections.deque(maxlen=16)
    )
    # REST requests of the last RATE_WINDOW_S, pruned as it goes so each request costs O(1)
    last_minute: collections.deque[float] = field(default_factory=collections.deque)

    def prune(self, now: float) -> None:
        while self.last_minute and self.last_minute[0] < now - RATE_WINDOW_S:
            self.last_minute.popleft()

    def as_dict(self) -> dict[str, Any]:
        return {
            "rest_requests": self.rest_requests,
            "realtime_sessions": self.realtime_sessions,
            "live_connections": self.live_connections,
            "live_sessions": self.live_sessions,
            "live_billed_seconds": self.live_billed_seconds,
            "billable_events": self.billable_events,
            "client_events": dict(self.client_events),
            "rest_request_times": list(self.rest_request_times),
            "realtime_session_times": list(self.realtime_session_times),
            "rest_answer_times": [list(times) for times in self.rest_answer_times],
            "responses_requests": self.responses_requests,
            "billed_tokens": self.billed_tokens,
            "responses_bodies": list(self.responses_bodies),
        }


class SimulatorState:
    """Shared by every handler; a lock because tests may read stats from another thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, KeyStats] = {}
        self._overrides: dict[str, Selection] = {}

    def resolve(self, token: str) -> Selection | None:
        """The scenario for a bearer token: an override first, else what the key text says."""
        with self._lock:
            override = self._overrides.get(token)
        if override is not None:
            return override
        return select_scenario(token)

    def set_override(self, key: str, scenario: str | None, arg: int | None = None) -> None:
        """From now on `key` behaves as `scenario`; None returns it to what its text says."""
        if scenario is not None and scenario not in SCENARIOS:
            raise ValueError(f"unknown simulator scenario {scenario!r}")
        with self._lock:
            if scenario is None:
                self._overrides.pop(key, None)
            else:
                self._overrides[key] = selection(scenario, arg)

    def clear_overrides(self) -> None:
        with self._lock:
            self._overrides.clear()

    def _stats_for(self, token: str | None) -> KeyStats:
        name = ANONYMOUS if token is None else key_id(token)
        stats = self._keys.get(name)
        if stats is None:
            stats = self._keys[name] = KeyStats()
        return stats

    def record_rest(self, token: str | None, now: float | None = None) -> None:
        """A REST request, at `now` (when its bytes arrived) or else at this moment."""
        if now is None:
            now = time.monotonic()
        with self._lock:
            stats = self._stats_for(token)
            stats.rest_requests += 1
            stats.rest_request_times.append(now)
            stats.last_minute.append(now)
            stats.prune(now)

    def record_response(self, token: str | None, body: dict[str, Any], tokens: int) -> None:
        """A `POST /v1/responses`: what it asked for, and the tokens billed for its answer."""
        with self._lock:
            stats = self._stats_for(token)
            stats.responses_requests += 1
            stats.billed_tokens += tokens
            stats.responses_bodies.append(body)

    def record_answer(self, token: str, arrived: float, woke: float, written: float) -> None:
        """The timing of one answer of a timed scenario (time.monotonic() values)."""
        with self._lock:
            self._stats_for(token).rest_answer_times.append((arrived, woke, written))

    def record_realtime(self, token: str | None) -> None:
        with self._lock:
            stats = self._stats_for(token)
            stats.realtime_sessions += 1
            stats.realtime_session_times.append(time.monotonic())

    def record_live_connection(self, token: str | None) -> None:
        with self._lock:
            self._stats_for(token).live_connections += 1

    def record_live_session(self, token: str | None) -> None:
        """A GPT-Live session started: from here on it is billed."""
        with self._lock:
            self._stats_for(token).live_sessions += 1

    def record_live_billed(self, token: str | None, seconds: int) -> None:
        with self._lock:
            self._stats_for(token).live_billed_seconds += seconds

    def record_client_event(self, token: str | None, event_type: str) -> None:
        with self._lock:
            stats = self._stats_for(token)
            stats.client_events[event_type] += 1
            if event_type in BILLABLE_EVENTS:
                stats.billable_events += 1

    def requests_last_minute(self, token: str) -> int:
        """REST requests this key made in the last minute, for x-ratelimit-remaining-requests."""
        with self._lock:
            stats = self._keys.get(key_id(token))
            if stats is None:
                return 0
            stats.prune(time.monotonic())
            return len(stats.last_minute)

    def recent_rest_requests(self, token: str | None, window_s: float) -> int:
        """How many REST requests this key made in the last `window_s` seconds."""
        since = time.monotonic() - window_s
        with self._lock:
            stats = self._keys.get(ANONYMOUS if token is None else key_id(token))
            if stats is None:
                return 0
            count = 0
            for when in reversed(stats.rest_request_times):
                if when < since:
                    break
                count += 1
            return count

    def reset(self) -> None:
        with self._lock:
            self._keys.clear()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            keys = {name: stats.as_dict() for name, stats in self._keys.items()}
        totals_events: collections.Counter[str] = collections.Counter()
        for entry in keys.values():
            totals_events.update(entry["client_events"])
        totals = {
            "rest_requests": sum(entry["rest_requests"] for entry in keys.values()),
            "realtime_sessions": sum(entry["realtime_sessions"] for entry in keys.values()),
            "live_sessions": sum(entry["live_sessions"] for entry in keys.values()),
            "live_billed_seconds": sum(entry["live_billed_seconds"] for entry in keys.values()),
            "billable_events": sum(entry["billable_events"] for entry in keys.values()),
            "client_events": dict(totals_events),
        }
        return {"keys": keys, "totals": totals}
