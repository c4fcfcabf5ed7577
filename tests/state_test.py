"""The state store: what a key keeps across probes and reloads, kept small for 10,000 keys."""

from __future__ import annotations

from exporter.classify import Result
from exporter.readings import Readings
from exporter.result import ProbeResult
from exporter.state import KeyIdentity, StateStore

IDENTITY = KeyIdentity("sk-proj-...sQoA", "project")


def rest(phases: dict[str, float], result: Result = Result.OK) -> ProbeResult:
    return ProbeResult(probe="rest", result=result, phases=phases, error_code=result.value)


def test_a_reload_keeps_unchanged_probes_and_drops_removed_ones() -> None:
    store = StateStore()
    store.configure({"web": ("rest", "realtime")})
    state = store.get("web")
    assert state is not None and list(state.probes) == ["rest", "realtime"]
    store.record("web", IDENTITY, rest({"first_byte": 0.1}))
    kept = state.rest
    store.configure({"web": ("rest",)})
    assert state.rest is kept and state.realtime is None and list(state.probes) == ["rest"]
    assert state.probe("realtime") is None and state.probe("websocket") is None
    # A Realtime probe that was running when the reload removed it records nothing.
    late = ProbeResult(probe="realtime", result=Result.OK)
    assert store.record("web", IDENTITY, late) is None
    assert store.record("gone", IDENTITY, rest({})) is None


def test_results_keep_compact_readings_and_connect_and_tls_carry_over() -> None:
    store = StateStore()
    store.configure({"web": ("rest",)})
    store.record("web", IDENTITY, rest({"connect": 0.01, "tls": 0.02, "first_byte": 0.1}))
    store.record("web", IDENTITY, rest({"first_byte": 0.2, "transfer": 0.001}))
    state = store.get("web")
    assert state is not None and state.rest is not None and state.rest.last is not None
    phases = state.rest.phases
    assert isinstance(phases, Readings) and phases is state.rest.last.phases  # one mapping
    assert phases == {"connect": 0.01, "tls": 0.02, "first_byte": 0.2, "transfer": 0.001}
    assert isinstance(state.rest.last.ratelimit, Readings)
    # A failure keeps the carried connect and tls, never an older success's other phases.
    store.record("web", IDENTITY, rest({}, Result.TIMEOUT))
    assert state.rest.phases == {"connect": 0.01, "tls": 0.02}
    assert state.rest.errors_total == {"timeout": 1}


def test_the_same_identity_read_again_keeps_one_object() -> None:
    store = StateStore()
    store.configure({"web": ("rest",)})
    store.record("web", IDENTITY, rest({}))
    state = store.get("web")
    assert state is not None
    first = state.identity
    store.record("web", KeyIdentity("sk-proj-...sQoA", "project"), rest({}))
    assert state.identity is first
    store.record("web", KeyIdentity("sk-proj-...zzzz", "project"), rest({}))
    assert state.identity.fingerprint == "sk-proj-...zzzz"
