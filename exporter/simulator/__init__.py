"""An OpenAI stand-in (REST and Realtime on one port) whose behaviour each key chooses."""

from exporter.simulator.scenarios import SCENARIOS, Scenario, make_key, select_scenario
from exporter.simulator.server import RunningSimulator, serve_forever, start_simulator
from exporter.simulator.state import BILLABLE_EVENTS, key_id

__all__ = [
    "BILLABLE_EVENTS",
    "SCENARIOS",
    "RunningSimulator",
    "Scenario",
    "key_id",
    "make_key",
    "select_scenario",
    "serve_forever",
    "start_simulator",
]
