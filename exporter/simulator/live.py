"""GPT-Live side of the simulator: the WebSocket at /v1/live/sessions, with per-key faults.

session.start -> session.started (about half a second after the socket opened) -> session.close
-> session.closed with usage.seconds -> close 1000. A started session is billed per second
until it closes; the simulator counts those seconds per key (stats: live_billed_seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import secrets
import time
from typing import Any

from aiohttp import WSMsgType, web

from exporter.simulator import openai_shapes as shapes
from exporter.simulator import rest
from exporter.simulator.connection import (
    bearer_token,
    drop_connection,
    hang,
    reset_connection,
    session_websocket,
)
from exporter.simulator.scenarios import Selection
from exporter.simulator.state import SimulatorState
from exporter.simulator.timing import arrived_at

STARTED_AFTER_S = 0.5  # OpenAI: session.started about half a second after the socket opens
# The fields of the strict session object; any other answers unknown_parameter.
SESSION_FIELDS = frozenset({"model", "instructions", "audio", "delegation", "input", "store"})
# Not documented: the code OpenAI closes with after an in-band admission error. The probe
# classifies by the error event, whatever the code.
CLOSE_AFTER_ADMISSION_ERROR = 1008

_EDGE_REJECTIONS: dict[str, rest.RestBehaviour] = {
    "unsupported_region": rest.unsupported_region,
    "overloaded": rest.overloaded,
    "bad_gateway": rest.bad_gateway,
    "gateway_timeout": rest.gateway_timeout,
}
# Refused in-band after session.start: (message, code, error type, close code or None to stay open)
_ADMISSION_ERRORS: dict[str, tuple[str, str, str, int | None]] = {
    "live_key_in_band": (
        "",
        "invalid_api_key",
        "invalid_request_error",
        CLOSE_AFTER_ADMISSION_ERROR,
    ),
    "account_deactivated": (
        shapes.ACCOUNT_DEACTIVATED_MESSAGE,
        "account_deactivated",
        "invalid_request_error",
        CLOSE_AFTER_ADMISSION_ERROR,
    ),
    # Unconfirmed: the error type of a credit refusal (the code is documented).
    "insufficient_quota": (
        "You have no credits remaining. Add credits to continue using the API at "
        "https://platform.openai.com/settings/organization/billing/.",
        "credit_balance_exhausted",
        "insufficient_quota",
        None,
    ),
    "server_error": ("", "", "server_error", 1011),
}


def _live_session_id() -> str:
    return "live_" + secrets.token_hex(12)


class LiveSession:
    """One accepted WebSocket: answers the client's events as the key's scenario says."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        request: web.Request,
        state: SimulatorState,
        token: str,
        selected: Selection,
    ) -> None:
        self.ws = ws
        self.request = request
        self.state = state
        self.token = token
        self.scenario = selected.scenario
        self.arg = selected.arg
        self.opened = time.monotonic()
        self.started_at: float | None = None
        self.starting: asyncio.Task[None] | None = None

    async def send(self, event: dict[str, Any]) -> None:
        if not self.ws.closed:
            await self.ws.send_str(shapes.dumps(event).decode())

    async def error(
        self,
        message: str,
        code: str | None,
        type_: str = "invalid_request_error",
        param: str | None = None,
        client_event_id: str | None = None,
    ) -> None:
        event = shapes.error_event(message, code, type_=type_, param=param)
        del event["error"]["event_id"]  # Live's errors carry client_event_id instead
        if client_event_id:
            event["error"]["client_event_id"] = client_event_id
        await self.send(event)

    async def run(self) -> None:
        try:
            async for message in self.ws:
                if message.type is WSMsgType.TEXT:
                    await self._on_text(message.data)
                elif message.type is WSMsgType.BINARY:
                    await self.error("Binary frames are not supported.", "invalid_json")
        finally:
            if self.starting is not None:
                self.starting.cancel()
            self._bill()  # a client that left without session.close: billed until it left

    def _bill(self) -> int:
        """Bill the session up to now, once: whole seconds, rounded up (unconfirmed)."""
        if self.started_at is None:
            return 0
        seconds = max(1, math.ceil(time.monotonic() - self.started_at))
        self.started_at = None
        self.state.record_live_billed(self.token, seconds)
        return seconds

    async def _on_text(self, text: str) -> None:
        try:
            event = json.loads(text)
        except ValueError:
            event = None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            await self.error("We could not parse the JSON body of your request.", "invalid_json")
            return
        event_type = event["type"]
        client_event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
        self.state.record_client_event(self.token, event_type)
        if event_type == "session.start":
            await self._session_start(event, client_event_id)
        elif event_type == "session.close":
            await self._session_close()
        else:
            await self.error(
                f"Invalid value: '{event_type[:60]}'.",
                "invalid_value",
                param="type",
                client_event_id=client_event_id,
            )

    async def _session_start(self, event: dict[str, Any], client_event_id: str | None) -> None:
        if self.starting is not None or self.started_at is not None:
            await self.error("The session has already started.", "session_already_started")
            return
        session = event.get("session")
        if not isinstance(session, dict):
            await self.error(
                "Missing required parameter: 'session'.",
                "missing_required_parameter",
                param="session",
                client_event_id=client_event_id,
            )
            return
        for name in sorted(session):
            if name not in SESSION_FIELDS:
                await self.error(
                    f"Unknown parameter: 'session.{str(name)[:60]}'.",
                    "unknown_parameter",
                    param=f"session.{str(name)[:60]}",
                    client_event_id=client_event_id,
                )
                return
        model = session.get("model")
        if not isinstance(model, str) or not model:
            await self.error(
                "Missing required parameter: 'session.model'.",
                "missing_required_parameter",
                param="session.model",
                client_event_id=client_event_id,
            )
            return
        if self.scenario in _ADMISSION_ERRORS:
            message, code, type_, close = _ADMISSION_ERRORS[self.scenario]
            if code == "invalid_api_key":
                message = shapes.incorrect_key_message(self.token)
            elif type_ == "server_error":
                message = shapes.server_error_message(shapes.request_id())
            await self.error(message, code or None, type_=type_)
            if close is not None:
                reason = f"{type_}.{code}" if code else type_
                await self.ws.close(code=close, message=reason.encode())
            return
        if self.scenario == "live_shape_retired":
            await self.error(
                "Unknown parameter: 'session.model'.",
                "unknown_parameter",
                param="session.model",
                client_event_id=client_event_id,
            )
            return
        if model not in shapes.LIVE_MODELS or self.scenario == "live_model_not_found":
            await self.error(
                f"The model `{model[:100]}` does not exist or you do not have access to it.",
                "model_not_found",
                param="session.model",
                client_event_id=client_event_id,
            )
            return
        if self.scenario == "live_silent":
            return
        self.starting = asyncio.create_task(self._start(model))

    async def _start(self, model: str) -> None:
        if self.scenario == "slow":
            await asyncio.sleep((self.arg or 0) / 1000)
        else:
            await asyncio.sleep(max(0.0, self.opened + STARTED_AFTER_S - time.monotonic()))
        self.started_at = time.monotonic()
        self.state.record_live_session(self.token)
        session = {
            "id": _live_session_id(),
            "object": "live.session",
            "model": model,
            "status": "active",
            "expires_at": int(time.time()) + 3600,
        }
        await self.send(
            {"type": "session.started", "event_id": shapes.event_id(), "session": session}
        )
        self.starting = None
        if self.scenario == "live_drop":
            drop_connection(self.request)

    async def _session_close(self) -> None:
        if self.starting is not None:
            self.starting.cancel()
            self.starting = None
        seconds = self._bill()
        await self.send(
            {
                "type": "session.closed",
                "event_id": shapes.event_id(),
                "reason": "close_requested",
                "usage": {"seconds": seconds},
            }
        )
        await self.ws.close(code=1000)


async def handle_live(request: web.Request) -> web.StreamResponse:
    """`GET /v1/live/sessions`: refusals before the upgrade, else a LiveSession."""
    state = request.app[rest.STATE]
    token = bearer_token(request)
    state.record_live_connection(token)
    if token is None:
        return rest.json_error(
            401,
            "Missing bearer authentication in header",
            "invalid_request_error",
            "missing_authorization",
        )
    selected = state.resolve(token)
    scenario = selected.scenario if selected else None
    if scenario == "hang":
        await hang()
    if scenario == "reset":
        reset_connection(request)
        await hang()
    if selected is None or scenario == "invalid_api_key":
        return rest.invalid_key_response(token)
    if scenario in _EDGE_REJECTIONS:
        call = rest.RestCall(request, state, token, selected.arg, None, arrived_at(request))
        return await _EDGE_REJECTIONS[scenario](call)
    ws = session_websocket(request)
    if ws is None:
        message = (
            "This endpoint expects a WebSocket upgrade (wss://api.openai.com/v1/live/sessions)."
        )
        return rest.json_error(400, message, "invalid_request_error", None)
    await ws.prepare(request)
    with contextlib.suppress(ConnectionError):  # the client left mid-send
        await LiveSession(ws, request, state, token, selected).run()
    return ws
