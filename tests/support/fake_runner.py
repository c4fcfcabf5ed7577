"""The probe runner's side the scheduler talks to, over a real StateStore, for scheduler tests."""

from __future__ import annotations

from exporter.config import KeyConfig
from exporter.result import ProbeResult
from exporter.state import KeyIdentity, StateStore


class StoreBackedRunner:
    """A runner's forget and consecutive_failures over a StateStore; a subclass writes `run`."""

    def __init__(self) -> None:
        self.store = StateStore()

    def forget(self, name: str) -> None:
        """Nothing to forget: no prober here keeps anything per key."""

    def consecutive_failures(self, name: str, probe: str) -> int:
        """The failures in a row the store holds for this key's probe (0 when none ran yet)."""
        state = self.store.get(name)
        probe_state = state.probe(probe) if state is not None else None
        return probe_state.consecutive_failures if probe_state is not None else 0

    def record(self, config: KeyConfig, result: ProbeResult) -> ProbeResult:
        """Stores the result as the exporter's runner does, and returns it."""
        self.store.record(config.name, KeyIdentity(), result)
        return result
