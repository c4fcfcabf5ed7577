"""`POST /v1/responses` in the simulator: the one billed call, answered as the key's scenario says.

Credit shows only here: an account without credit is refused a billed call, while the free
`GET /v1/models` still answers it (reference facts, "Credit").
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from exporter.simulator import openai_shapes as shapes
from exporter.simulator import rest
from exporter.simulator.connection import bearer_token
from exporter.simulator.timing import arrived_at

MIN_OUTPUT_TOKENS = 16  # the API refuses a smaller max_output_tokens
MAX_BODY_BYTES = 64 * 1024
# Scenarios whose REST fault (auth, limits, edge, broken transport) a billed call meets as well;
# every other scenario is a healthy account for this endpoint.
_SHARED_FAULTS = {
    "invalid_api_key",
    "account_deactivated",
    "mismatched_organization",
    "mismatched_project",
    "rate_limited",
    "unsupported_region",
    "server_error",
    "overloaded",
    "bad_gateway",
    "gateway_timeout",
    "hang",
    "reset",
    "non_json",
    "html_200",
}


async def _no_credit(scenario: str) -> web.Response:
    if scenario == "credit_balance_exhausted":
        # The newer wording. Its HTTP status and error.type are unconfirmed: 429 and
        # insufficient_quota, as for the older code; the exporter classifies by the code.
        message = shapes.CREDIT_BALANCE_EXHAUSTED_MESSAGE
        return rest.json_error(429, message, "insufficient_quota", "credit_balance_exhausted")
    message = shapes.INSUFFICIENT_QUOTA_MESSAGE
    return rest.json_error(429, message, "insufficient_quota", "insufficient_quota")


def _invalid(message: str, param: str, code: str, status: int = 400) -> web.Response:
    return web.Response(
        status=status,
        body=shapes.error_body(message, "invalid_request_error", code, param),
        content_type="application/json",
        headers=rest.openai_headers(),
    )


def _request_problem(body: Any) -> web.Response | None:
    """What the Responses API refuses in the request itself, before any billing."""
    if not isinstance(body, dict):
        return _invalid("We could not parse the JSON body of your request.", "", "invalid_json")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return _invalid(
            "Missing required parameter: 'model'.", "model", "missing_required_parameter"
        )
    limit = body.get("max_output_tokens")
    if limit is not None and (not isinstance(limit, int) or limit < MIN_OUTPUT_TOKENS):
        return _invalid(
            "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= "
            f"{MIN_OUTPUT_TOKENS}, but got {limit} instead.",
            "max_output_tokens",
            "integer_below_min_value",
        )
    if model not in shapes.TEXT_MODELS:
        # The status of this refusal is unconfirmed (400 or 404); the code is what classifies it.
        return _invalid(
            f"The requested model '{model}' does not exist.", "model", "model_not_found", 400
        )
    return None


async def handle_responses(request: web.Request) -> web.StreamResponse:
    """`POST /v1/responses`."""
    arrived = arrived_at(request)
    state = request.app[rest.STATE]
    token = bearer_token(request)
    if token is None:
        return rest.no_key_response()
    selected = state.resolve(token)
    if selected is None:
        return rest.invalid_key_response(token)
    if selected.scenario in _SHARED_FAULTS:
        call = rest.RestCall(request, state, token, selected.arg, None, arrived)
        return await rest.REST_BEHAVIOURS[selected.scenario](call)
    raw = await request.content.read(MAX_BODY_BYTES)
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        body = None
    problem = _request_problem(body)
    if problem is not None:
        return problem
    if selected.scenario in {"insufficient_quota", "credit_balance_exhausted"}:
        state.record_response(token, body, 0)
        return await _no_credit(selected.scenario)
    text = "Pong."
    input_tokens = 7 + len(str(body.get("input", "")).split())
    output_tokens = 2
    state.record_response(token, body, input_tokens + output_tokens)
    answer = shapes.response_object(body["model"], text, input_tokens, output_tokens)
    return rest.json_response(answer, rest.openai_headers())
