"""An OpenAI stand-in (REST, Realtime and GPT-Live on one port) whose behaviour each key chooses.

A key selects its scenario by its text: `sim--<scenario>[--<arg>]--` anywhere in the bearer
token (`make_key` builds one); any other key is unknown to it, as to OpenAI. `SCENARIOS` says
what each scenario does. Control API beside /v1: `GET /_sim/stats`, `POST /_sim/reset`,
`POST /_sim/override` (`{"key", "scenario", "arg"}`), `DELETE /_sim/override` and
`POST /_sim/admin/keys` (a key the Admin API lists: exporter/simulator/admin.py).

    async with await start_simulator() as simulator:
        httpx.get(f"{simulator.base_url}/models", headers={"Authorization": f"Bearer {key}"})
"""

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
