"""REST side of the simulator: `GET /v1/models` answered the way the key's scenario says."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from exporter.simulator import openai_shapes as shapes
from exporter.simulator.connection import bearer_token, hang, reset_connection
from exporter.simulator.state import SimulatorState
from exporter.simulator.timing import arrived_at, sleep_until

STATE: web.AppKey[SimulatorState] = web.AppKey("simulator_state", SimulatorState)


@dataclass(frozen=True)
class RestCall:
    """One REST request with the key it carried and the argument of its scenario."""

    request: web.Request
    state: SimulatorState
    token: str
    arg: int | None
    model: str | None  # set for GET /v1/models/{model}
    arrived: float  # time.monotonic() when the request's bytes were read
    scenario: str = ""


RestBehaviour = Callable[[RestCall], Awaitable[web.StreamResponse]]


def openai_headers(processing_ms: int | None = None) -> dict[str, str]:
    if processing_ms is None:
        processing_ms = random.randint(15, 80)
    return {
        "x-request-id": shapes.request_id(),
        "openai-processing-ms": str(processing_ms),
        "openai-version": shapes.OPENAI_VERSION,
    }


def json_error(
    status: int,
    message: str,
    type_: str,
    code: str | None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    all_headers = openai_headers()
    all_headers.update(headers or {})
    return web.Response(
        status=status,
        body=shapes.error_body(message, type_, code),
        content_type="application/json",
        headers=all_headers,
    )


def json_response(
    body: object, headers: dict[str, str] | None = None, status: int = 200
) -> web.Response:
    return web.Response(
        status=status,
        body=shapes.dumps(body),
        content_type="application/json",
        headers=headers or {},
    )


def invalid_key_response(token: str) -> web.Response:
    return json_error(
        401, shapes.incorrect_key_message(token), "invalid_request_error", "invalid_api_key"
    )


def no_key_response() -> web.Response:
    return json_error(401, shapes.NO_KEY_MESSAGE, "invalid_request_error", None)


def _success_headers(processing_ms: int | None = None) -> dict[str, str]:
    headers = openai_headers(processing_ms)
    headers["openai-organization"] = "user-simulator"
    headers["openai-project"] = "proj_simulator"
    return headers


def _ratelimit_headers(state: SimulatorState, token: str) -> dict[str, str]:
    used = state.requests_last_minute(token)
    return {
        "x-ratelimit-limit-requests": str(shapes.RATE_LIMIT_REQUESTS),
        "x-ratelimit-remaining-requests": str(max(0, shapes.RATE_LIMIT_REQUESTS - used)),
        "x-ratelimit-reset-requests": "6ms",
        "x-ratelimit-limit-tokens": str(shapes.RATE_LIMIT_TOKENS),
        "x-ratelimit-remaining-tokens": str(shapes.RATE_LIMIT_TOKENS),
        "x-ratelimit-reset-tokens": "0s",
    }


# Keys of these scenarios may not use these models: OpenAI leaves them out of their list.
_HIDDEN_MODELS = {"live_model_not_found": frozenset(shapes.LIVE_MODELS)}


def _ok_body(call: RestCall) -> object | None:
    hidden = _HIDDEN_MODELS.get(call.scenario, frozenset())
    if call.model is None:
        return shapes.model_list(hidden)
    return None if call.model in hidden else shapes.model_object(call.model)


def _model_not_found(model: str) -> web.Response:
    return json_error(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    )


def _ok_response(
    call: RestCall, ratelimit: bool = True, processing_ms: int | None = None
) -> web.Response:
    body = _ok_body(call)
    if body is None:
        assert call.model is not None
        return _model_not_found(call.model)
    headers = _success_headers(processing_ms)
    if ratelimit:
        headers.update(_ratelimit_headers(call.state, call.token))
    return json_response(body, headers)


async def ok(call: RestCall) -> web.StreamResponse:
    return _ok_response(call)


async def ok_no_ratelimit_headers(call: RestCall) -> web.StreamResponse:
    return _ok_response(call, ratelimit=False)


async def invalid_api_key(call: RestCall) -> web.StreamResponse:
    return invalid_key_response(call.token)


async def missing_scopes(call: RestCall) -> web.StreamResponse:
    message = shapes.missing_scopes_message("api.model.read")
    return json_error(401, message, "invalid_request_error", None)


async def account_deactivated(call: RestCall) -> web.StreamResponse:
    message = shapes.ACCOUNT_DEACTIVATED_MESSAGE
    return json_error(401, message, "invalid_request_error", "account_deactivated")


async def mismatched_organization(call: RestCall) -> web.StreamResponse:
    message = shapes.MISMATCHED_ORGANIZATION_MESSAGE
    return json_error(401, message, "invalid_request_error", "mismatched_organization")


async def mismatched_project(call: RestCall) -> web.StreamResponse:
    message = shapes.MISMATCHED_PROJECT_MESSAGE
    return json_error(401, message, "invalid_request_error", "mismatched_project")


async def rate_limited(call: RestCall) -> web.StreamResponse:
    retry_after = call.arg if call.arg is not None else 20
    headers = {
        "retry-after": str(retry_after),
        "x-ratelimit-limit-requests": str(shapes.RATE_LIMIT_REQUESTS),
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": f"{retry_after}s",
        "x-ratelimit-limit-tokens": str(shapes.RATE_LIMIT_TOKENS),
        "x-ratelimit-remaining-tokens": str(shapes.RATE_LIMIT_TOKENS),
        "x-ratelimit-reset-tokens": "0s",
    }
    message = shapes.rate_limit_message(retry_after)
    return json_error(429, message, "requests", "rate_limit_exceeded", headers)


async def unsupported_region(call: RestCall) -> web.StreamResponse:
    message = shapes.UNSUPPORTED_REGION_MESSAGE
    return json_error(403, message, "request_forbidden", "unsupported_country_region_territory")


async def server_error(call: RestCall) -> web.StreamResponse:
    headers = openai_headers()
    message = shapes.server_error_message(headers["x-request-id"])
    return json_error(500, message, "server_error", None, headers)


async def overloaded(call: RestCall) -> web.StreamResponse:
    headers = openai_headers()
    message = shapes.overloaded_message(headers["x-request-id"])
    return json_error(503, message, "server_error", None, headers)


def edge_html_response(status: int, reason: str) -> web.Response:
    return web.Response(
        status=status,
        body=shapes.edge_html(status, reason),
        content_type="text/html",
        headers={"Server": "cloudflare"},
    )


async def bad_gateway(call: RestCall) -> web.StreamResponse:
    return edge_html_response(502, "Bad Gateway")


async def gateway_timeout(call: RestCall) -> web.StreamResponse:
    return edge_html_response(504, "Gateway Time-out")


async def slow(call: RestCall) -> web.StreamResponse:
    # The benchmark's timing reference: the delay counts from the request's arrival, and the whole
    # answer is ready before the wait (a Response's prepare() only buffers its head), so after
    # <arg> ms all that is left is one write of head and body.
    delay_ms = call.arg or 0
    response = _ok_response(call, processing_ms=delay_ms)
    try:
        await response.prepare(call.request)
        await sleep_until(call.arrived + delay_ms / 1000)
        woke = time.monotonic()
        await response.write_eof()
    except ConnectionError:
        return response  # the client left; aiohttp finds the same and says nothing
    call.state.record_answer(call.token, call.arrived, woke, time.monotonic())
    return response


async def hang_forever(call: RestCall) -> web.StreamResponse:
    await hang()


async def hang_body(call: RestCall) -> web.StreamResponse:
    body = shapes.dumps(shapes.model_list())
    response = web.StreamResponse(status=200, headers=_success_headers())
    response.content_type = "application/json"
    response.content_length = len(body)
    await response.prepare(call.request)
    with contextlib.suppress(ConnectionError):  # the client left; hang() ends on cancellation
        await response.write(body[: len(body) // 2])
    await hang()


async def reset(call: RestCall) -> web.StreamResponse:
    reset_connection(call.request)
    await hang()  # cancelled as soon as aiohttp sees the connection gone


async def non_json(call: RestCall) -> web.StreamResponse:
    return web.Response(status=200, body=shapes.NON_JSON_BODY, content_type="text/plain")


async def wrong_shape(call: RestCall) -> web.StreamResponse:
    return json_response(shapes.WRONG_SHAPE, _success_headers())


async def html_200(call: RestCall) -> web.StreamResponse:
    return web.Response(status=200, body=shapes.CAPTIVE_PORTAL_HTML, content_type="text/html")


_ENDLESS_CHUNK = b'{"id":"gpt-endless","object":"model","created":0,"owned_by":"system"},' * 1000


async def endless(call: RestCall) -> web.StreamResponse:
    response = web.StreamResponse(status=200, headers=_success_headers())
    response.content_type = "application/json"
    response.enable_chunked_encoding()
    await response.prepare(call.request)
    try:
        await response.write(b'{"object":"list","data":[')
        while (transport := call.request.transport) is not None and not transport.is_closing():
            await response.write(_ENDLESS_CHUNK)
            # Over TLS a reset connection fails its writes silently, and a drain with nothing
            # buffered never yields: the loop must get the chance to report the loss.
            await asyncio.sleep(0)
    except ConnectionError:
        pass  # the client went away, as it must
    await hang()


_DRIP_PIECES = 10


async def drip(call: RestCall) -> web.StreamResponse:
    body = shapes.dumps(shapes.model_list())
    total_s = (call.arg or 0) / 1000 * 0.9  # the last piece lands just before <arg> ms
    step_s = total_s / (_DRIP_PIECES - 1)
    size = -(-len(body) // _DRIP_PIECES)
    response = web.StreamResponse(status=200, headers=_success_headers())
    response.content_type = "application/json"
    response.content_length = len(body)
    await response.prepare(call.request)
    try:
        for index in range(_DRIP_PIECES):
            if index:
                await asyncio.sleep(step_s)
            await response.write(body[index * size : (index + 1) * size])
    except ConnectionError:
        await hang()  # the client left: wait for aiohttp to cancel this handler
    await response.write_eof()
    return response


REST_BEHAVIOURS: dict[str, RestBehaviour] = {
    "ok": ok,
    "ok_no_ratelimit_headers": ok_no_ratelimit_headers,
    "invalid_api_key": invalid_api_key,
    "live_key_in_band": invalid_api_key,
    "missing_scopes": missing_scopes,
    "rest_missing_scopes": missing_scopes,
    "account_deactivated": account_deactivated,
    "mismatched_organization": mismatched_organization,
    "mismatched_project": mismatched_project,
    "rate_limited": rate_limited,
    "unsupported_region": unsupported_region,
    "server_error": server_error,
    "overloaded": overloaded,
    "bad_gateway": bad_gateway,
    "gateway_timeout": gateway_timeout,
    "slow": slow,
    "hang": hang_forever,
    "hang_body": hang_body,
    "reset": reset,
    "non_json": non_json,
    "wrong_shape": wrong_shape,
    "html_200": html_200,
    "endless": endless,
    "drip": drip,
}  # every other scenario answers ok: the rt_* ones, and no credit (no free call sees it)


async def handle_models(request: web.Request) -> web.StreamResponse:
    """`GET /v1/models` and `GET /v1/models/{model}`."""
    arrived = arrived_at(request)
    state = request.app[STATE]
    token = bearer_token(request)
    state.record_rest(token, arrived)
    if token is None:
        return no_key_response()
    selected = state.resolve(token)
    if selected is None:
        return invalid_key_response(token)
    behaviour = REST_BEHAVIOURS.get(selected.scenario, ok)
    model = request.match_info.get("model")
    call = RestCall(request, state, token, selected.arg, model, arrived, selected.scenario)
    return await behaviour(call)


async def handle_unknown_path(request: web.Request) -> web.StreamResponse:
    """Any other path under /v1, answered as OpenAI answers a URL it does not serve."""
    return json_error(
        404,
        f"Invalid URL ({request.method} {request.path})",
        "invalid_request_error",
        None,
    )
