"""Azure OpenAI's side of the simulator: `/openai/v1/...` with the key in `api-key`.

Shapes from openai-facts.md, "Azure OpenAI". What the facts confirm: the v1 paths, the
`api-key` header, the 401 body (code "401", "Access denied due to invalid subscription key
..."), and the Realtime handshake refused with HTTP 400 `OperationNotSupported`. Everything
else here is UNCONFIRMED and marked so where it is served; the exporter classifies each
plausible alternative the same way (tests/azure_classify_test.py).

Which behaviour a key gets: an override first (POST /_sim/override, the only way for a 32-hex
key); else an 84-character key carries `SIM<scenario>X`, the scenario's `_` written `U`
(Azure keys are letters and digits only, so OpenAI's `sim--scenario--` cannot be used);
any other key is one this resource does not know: 401. Deployments: a name starting
`missing` does not exist (404 DeploymentNotFound), a name starting `unsupported` serves a
model without Realtime (400 OperationNotSupported); any other deployment serves gpt-realtime.
"""

from __future__ import annotations

import contextlib
import re

from aiohttp import web

from exporter.provider import is_azure_key_shape
from exporter.simulator import openai_shapes as shapes
from exporter.simulator import rest
from exporter.simulator.connection import hang, session_websocket
from exporter.simulator.live import LiveSession
from exporter.simulator.realtime import RealtimeSession
from exporter.simulator.scenarios import Selection, selection
from exporter.simulator.timing import arrived_at

PREFIX = "/openai/v1"
AZURE_SCENARIOS = ("ok", "invalid_api_key", "rate_limited", "hang")  # what Azure shapes exist for
_MARKER = re.compile(r"SIM([a-z0-9U]+?)X")
# The model every other deployment serves: the OpenAI session it opens is the GA one.
DEPLOYED_REALTIME_MODEL = "gpt-realtime"

INVALID_KEY_MESSAGE = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
    "valid key for an active subscription and use a correct regional API endpoint for your "
    "resource."
)
# UNCONFIRMED: the API Management wording Azure is widely reported to send without a key.
MISSING_KEY_MESSAGE = (
    "Access denied due to missing subscription key. Make sure to include subscription key when "
    "making requests to an API."
)
OPERATION_NOT_SUPPORTED_MESSAGE = (
    "The realtime operation does not work with the specified model. "
    "Please choose different model and try again."
)
# UNCONFIRMED: Azure's usual text for a deployment that does not exist.
DEPLOYMENT_NOT_FOUND_MESSAGE = (
    "The API deployment for this resource does not exist. If you created the deployment within "
    "the last 5 minutes, please wait a moment and try again."
)


def make_azure_key(scenario: str, filler: str = "") -> str:
    """An 84-character Azure-shaped key that selects `scenario` on the Azure paths."""
    if scenario not in AZURE_SCENARIOS:
        raise ValueError(f"no Azure shape for scenario {scenario!r}: {', '.join(AZURE_SCENARIOS)}")
    head = "SIM" + scenario.replace("_", "U") + "X"
    body = (filler or "AzureSimKey0123456789") * 10
    return (head + re.sub(r"[^A-Za-z0-9]", "", body))[:84]


def _key(request: web.Request) -> str | None:
    key = request.headers.get("api-key", "").strip()
    return key or None


def _selected(request: web.Request, key: str) -> Selection | None:
    """The key's scenario, or None: a key this resource does not know (an OpenAI key too)."""
    if not is_azure_key_shape(key):
        return None
    override = request.app[rest.STATE].resolve(key)
    if override is not None and override.scenario in AZURE_SCENARIOS:
        return override
    match = _MARKER.match(key)
    if match is None:
        return None
    scenario = match.group(1).replace("U", "_")
    return selection(scenario, None) if scenario in AZURE_SCENARIOS else None


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    # Azure's envelope: `code` and `message` only (no `type`, no `param`).
    body = {"error": {"code": code, "message": message}}
    return rest.json_response(body, headers=headers, status=status)


def _refusal(request: web.Request, key: str | None) -> web.Response | None:
    """The answer to a key that is missing, unknown or throttled; None: go on."""
    if key is None:
        return _error(401, "401", MISSING_KEY_MESSAGE)
    selected = _selected(request, key)
    if selected is None or selected.scenario == "invalid_api_key":
        return _error(401, "401", INVALID_KEY_MESSAGE)
    if selected.scenario == "rate_limited":
        seconds = selected.arg if selected.arg is not None else 20
        # UNCONFIRMED: the 429 body's wording; the facts give only the status and retry-after.
        message = (
            "Requests to the Models_List Operation under Azure OpenAI API version v1 have "
            f"exceeded call rate limit of your current pricing tier. Please retry after {seconds} "
            "seconds."
        )
        return _error(429, "429", message, {"retry-after": str(seconds)})
    return None


async def handle_models(request: web.Request) -> web.StreamResponse:
    """`GET /openai/v1/models`: the resource's models."""
    state = request.app[rest.STATE]
    key = _key(request)
    state.record_rest(key, arrived_at(request))
    if (refused := _refusal(request, key)) is not None:
        return refused
    assert key is not None
    selected = _selected(request, key)
    if selected is not None and selected.scenario == "hang":
        await hang()
    # UNCONFIRMED: Azure's entries carry more fields (capabilities, lifecycle_status); the
    # envelope `{"object": "list", "data": [...]}` is what the probe reads.
    return rest.json_response(shapes.model_list(), {"x-request-id": shapes.request_id()})


def _deployment_refusal(deployment: str) -> web.Response | None:
    if not deployment or deployment.startswith("missing"):
        # UNCONFIRMED: that a missing deployment fails the handshake with this 404 body.
        return _error(404, "DeploymentNotFound", DEPLOYMENT_NOT_FOUND_MESSAGE)
    if deployment.startswith("unsupported"):
        return _error(400, "OperationNotSupported", OPERATION_NOT_SUPPORTED_MESSAGE)
    return None


async def handle_realtime(request: web.Request) -> web.StreamResponse:
    """`GET /openai/v1/realtime?model=<deployment>`: refusals at the handshake, then the GA
    session. UNCONFIRMED: that a rejected key fails the handshake (HTTP 401) rather than in
    band as on OpenAI; the probe classifies both."""
    state = request.app[rest.STATE]
    key = _key(request)
    state.record_realtime(key)
    if (refused := _refusal(request, key)) is not None:
        return refused
    assert key is not None
    selected = _selected(request, key)
    if selected is not None and selected.scenario == "hang":
        await hang()
    refusal = _deployment_refusal(request.query.get("model", ""))
    if refusal is not None:
        return refusal
    ws = session_websocket(request)
    if ws is None:
        return _error(400, "400", "This endpoint expects a WebSocket upgrade.")
    await ws.prepare(request)
    # The deployment's model opens the same GA session as on OpenAI (same events, facts).
    as_openai = request.clone(rel_url=f"/v1/realtime?model={DEPLOYED_REALTIME_MODEL}")
    with contextlib.suppress(ConnectionError):  # the client left mid-send
        await RealtimeSession(as_openai, ws, state, key, selected).run()
    return ws


async def handle_live(request: web.Request) -> web.StreamResponse:
    """`GET /openai/v1/live/sessions`: "same events" as OpenAI's (facts), the key in api-key."""
    state = request.app[rest.STATE]
    key = _key(request)
    state.record_live_connection(key)
    if (refused := _refusal(request, key)) is not None:
        return refused
    assert key is not None
    selected = _selected(request, key)
    assert selected is not None
    if selected.scenario == "hang":
        await hang()
    ws = session_websocket(request)
    if ws is None:
        return _error(400, "400", "This endpoint expects a WebSocket upgrade.")
    await ws.prepare(request)
    with contextlib.suppress(ConnectionError):  # the client left mid-send
        await LiveSession(ws, request, state, key, selected).run()
    return ws


async def handle_unknown_path(request: web.Request) -> web.StreamResponse:
    # UNCONFIRMED: Azure's answer to a path it does not serve.
    return _error(404, "404", "Resource not found")


def add_routes(app: web.Application) -> None:
    app.router.add_get(f"{PREFIX}/models", handle_models)
    app.router.add_get(f"{PREFIX}/realtime", handle_realtime)
    app.router.add_get(f"{PREFIX}/live/sessions", handle_live)
    app.router.add_route("*", "/openai/{tail:.*}", handle_unknown_path)
