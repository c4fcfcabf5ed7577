"""Readiness (/-/ready) from the store: ready once every configured key was probed by each of
its probes, counted as results come rather than by walking every key at each poll."""

from __future__ import annotations

from exporter.classify import Result
from exporter.result import ProbeResult
from exporter.state import KeyIdentity, StateStore

IDENTITY = KeyIdentity("sk-proj-...sQoA", "project")


def _result(probe: str, result: Result = Result.OK) -> ProbeResult:
    return ProbeResult(probe=probe, result=result, error_code=result.value)


def test_ready_once_every_key_was_probed_by_each_of_its_probes() -> None:
    store = StateStore()
    assert not store.ready  # no configuration yet
    store.configure({"web": ("rest", "realtime"), "batch": ("rest",), "gone": ("rest",)})
    assert (store.ready, store.unprobed) == (False, 3)
    store.record("web", IDENTITY, _result("rest"))
    assert store.unprobed == 3  # its Realtime probe has not run yet
    store.record("web", IDENTITY, _result("realtime", Result.TIMEOUT))  # any result counts
    store.record("batch", IDENTITY, _result("rest", Result.INVALID_API_KEY))
    assert (store.ready, store.unprobed) == (False, 1)
    # Before the first round ends, a reload that adds a probe to a probed key waits for it, and
    # a key it removes is waited for no more.
    store.configure({"web": ("rest", "realtime"), "batch": ("rest", "realtime")})
    assert (store.ready, store.unprobed) == (False, 1)
    store.record("batch", IDENTITY, _result("realtime"))
    assert (store.ready, store.unprobed) == (True, 0)
    # Once ready, keys a reload adds do not take the exporter out of service.
    store.configure({"web": ("rest", "realtime"), "new": ("rest",)})
    assert (store.ready, store.unprobed) == (True, 0)


def test_no_keys_is_ready_once_configured() -> None:
    store = StateStore()
    store.configure({})
    assert store.ready


def test_a_restored_result_counts_as_probed() -> None:
    """Results read back from the state file (`--storage.path`) reach the store through
    `changed`, as they do the renderer."""
    store = StateStore()
    store.configure({"web": ("rest",)})
    state = store.get("web")
    assert state is not None and state.rest is not None
    state.rest.observe(_result("rest"))
    store.changed(state)
    assert store.ready
