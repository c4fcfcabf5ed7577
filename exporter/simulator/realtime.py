"""Realtime side of the simulator: the WebSocket at /v1/realtime, GA protocol, per-key faults."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import secrets
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

CLOSE_AUTH = 3000  # OpenAI's code for a key or permission problem
CLOSE_PROTOCOL = 4000  # OpenAI's code for a bad request (beta shape, model)
CLOSE_UNKNOWN = 4999

# Scenarios whose key problem OpenAI reports in-band, with the code in the close reason.
_IN_BAND_KEY_ERRORS: dict[str, tuple[str, str | None]] = {
    "account_deactivated": (shapes.ACCOUNT_DEACTIVATED_MESSAGE, "account_deactivated"),
    "mismatched_organization": (
        shapes.MISMATCHED_ORGANIZATION_MESSAGE,
        "mismatched_organization",
    ),
    "mismatched_project": (shapes.MISMATCHED_PROJECT_MESSAGE, "mismatched_project"),
    "rt_missing_scopes": (shapes.missing_scopes_message("api.model.realtime"), None),
}

# Scenarios that fail at the edge, before the upgrade: the same HTTP answer as on REST.
_EDGE_REJECTIONS: dict[str, rest.RestBehaviour] = {
    "unsupported_region": rest.unsupported_region,
    "overloaded": rest.overloaded,
    "bad_gateway": rest.bad_gateway,
    "gateway_timeout": rest.gateway_timeout,
}

_CLIENT_EVENTS = frozenset(
    {
        "session.update",
        "input_audio_buffer.append",
        "input_audio_buffer.commit",
        "input_audio_buffer.clear",
        "conversation.item.create",
        "conversation.item.retrieve",
        "conversation.item.truncate",
        "conversation.item.delete",
        "response.create",
        "response.cancel",
        "output_audio_buffer.clear",
    }
)
_SESSION_TYPES = ("realtime", "transcription")
_FLOOD_TYPES = ("rate_limits.updated", "input_audio_buffer.cleared", "output_audio_buffer.cleared")


class Replies(enum.Enum):
    """How the server answers client events once the socket is open."""

    NORMAL = "normal"
    NO_SESSION_UPDATED = "no_session_updated"  # rt_silent_update
    NONE = "none"  # rt_silent and the broken first frames: count events, answer nothing


def _wants_beta(request: web.Request) -> bool:
    values = request.headers.getall("OpenAI-Beta", [])
    return any(part.strip() == "realtime=v1" for value in values for part in value.split(","))


def _item_id() -> str:
    return "item_" + secrets.token_hex(11)


class RealtimeSession:
    """One accepted WebSocket: the script the scenario dictates, and a reader answering events."""

    def __init__(
        self,
        request: web.Request,
        ws: web.WebSocketResponse,
        state: SimulatorState,
        token: str | None,
        selected: Selection | None,
    ) -> None:
        self.request = request
        self.ws = ws
        self.state = state
        self.token = token
        self.scenario = selected.scenario if selected else None
        self.arg = selected.arg if selected else None
        self.replies = Replies.NORMAL
        self.session: dict[str, Any] = {}

    async def send(self, event: dict[str, Any]) -> None:
        if not self.ws.closed:
            await self.ws.send_str(shapes.dumps(event).decode())

    async def fail(self, event: dict[str, Any], code: int, reason: str) -> None:
        """An error event, then the close frame, as OpenAI does when it refuses a session."""
        await self.send(event)
        await self.ws.close(code=code, message=reason.encode())

    async def run(self) -> None:
        if await self._refused():
            return
        reader = asyncio.create_task(self._read_loop())
        try:
            await self._script()
            await reader
        finally:
            reader.cancel()

    async def _refused(self) -> bool:
        """Authentication, then the beta header, then the model: the first failure closes."""
        if self.token is None:
            event = shapes.error_event(shapes.MISSING_AUTH_RT_MESSAGE, None)
            await self.fail(event, CLOSE_AUTH, "invalid_request_error")
            return True
        if self.scenario in (None, "invalid_api_key", "live_key_in_band"):
            event = shapes.error_event(shapes.incorrect_key_message(self.token), "invalid_api_key")
            await self.fail(event, CLOSE_AUTH, "invalid_request_error.invalid_api_key")
            return True
        if self.scenario in _IN_BAND_KEY_ERRORS:
            message, code = _IN_BAND_KEY_ERRORS[self.scenario]
            reason = "invalid_request_error" + (f".{code}" if code else "")
            await self.fail(shapes.error_event(message, code), CLOSE_AUTH, reason)
            return True
        if _wants_beta(self.request):
            event = shapes.error_event(shapes.BETA_RT_MESSAGE, "beta_api_shape_disabled")
            reason = "invalid_request_error.beta_api_shape_disabled"
            await self.fail(event, CLOSE_PROTOCOL, reason)
            return True
        model = self.request.query.get("model", "")
        if not model:
            message = "Missing required parameter: 'model'."
            event = shapes.error_event(message, "missing_model", param="model")
            await self.fail(event, CLOSE_PROTOCOL, "invalid_request_error.missing_model")
            return True
        if model not in shapes.REALTIME_MODELS:
            message = (
                f"Invalid model: '{model}'. The model does not exist or is not a Realtime model."
            )
            event = shapes.error_event(message, "invalid_model", param="model")
            await self.fail(event, CLOSE_PROTOCOL, "invalid_request_error.invalid_model")
            return True
        if self.scenario == "server_error":
            message = shapes.server_error_message(shapes.request_id())
            event = shapes.error_event(message, None, type_="server_error")
            await self.fail(event, 1011, "server_error")
            return True
        if self.scenario == "rt_unknown_close":
            await self.ws.close(code=CLOSE_UNKNOWN, message=b"sim.unknown_close_code")
            return True
        if self.scenario == "rt_drop":
            drop_connection(self.request)
            await hang()
        return False

    async def _script(self) -> None:
        """What the server sends of its own accord, while the reader answers the client."""
        model = self.request.query["model"]
        scenario = self.scenario
        if scenario == "rt_silent":
            self.replies = Replies.NONE
            return
        if scenario == "rt_binary":
            self.replies = Replies.NONE
            await self.ws.send_bytes(b"\x00\x01\x02\xffnot-an-event")
            return
        if scenario == "rt_garbage":
            self.replies = Replies.NONE
            await self.ws.send_str("<<simulated garbage: this is not JSON>>")
            return
        if scenario == "rt_unexpected_event":
            self.replies = Replies.NONE
            item = {"id": _item_id(), "object": "realtime.item", "type": "message"}
            await self.send(
                {"type": "conversation.item.done", "event_id": shapes.event_id(), "item": item}
            )
            return
        if scenario == "rt_silent_update":
            self.replies = Replies.NO_SESSION_UPDATED
        if scenario == "slow":
            await asyncio.sleep((self.arg or 0) / 1000)
        if scenario == "rt_flood":
            await self._flood(self.arg or 0)
        self.session = shapes.realtime_session(model)
        await self.send(
            {"type": "session.created", "event_id": shapes.event_id(), "session": self.session}
        )
        if scenario == "rt_session_expired":
            await asyncio.sleep((self.arg or 0) / 1000)
            event = shapes.error_event(shapes.SESSION_EXPIRED_MESSAGE, "session_expired")
            await self.fail(event, 1001, "invalid_request_error.session_expired")

    async def _flood(self, count: int) -> None:
        for index in range(count):
            event_type = _FLOOD_TYPES[index % len(_FLOOD_TYPES)]
            event: dict[str, Any] = {"type": event_type, "event_id": shapes.event_id()}
            if event_type == "rate_limits.updated":
                event["rate_limits"] = [
                    {"name": "requests", "limit": 10000, "remaining": 9999, "reset_seconds": 0.006}
                ]
            await self.send(event)

    async def _read_loop(self) -> None:
        async for message in self.ws:
            if message.type is WSMsgType.TEXT:
                await self._on_text(message.data)
            elif message.type is WSMsgType.BINARY and self.replies is not Replies.NONE:
                await self._error("Binary frames are not supported.", "invalid_json", None, None)

    async def _error(
        self, message: str, code: str, param: str | None, client_event_id: str | None
    ) -> None:
        await self.send(
            shapes.error_event(message, code, param=param, client_event_id=client_event_id)
        )

    async def _on_text(self, text: str) -> None:
        try:
            event = json.loads(text)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            if self.replies is not Replies.NONE:
                message = "We could not parse the JSON body of your request."
                await self._error(message, "invalid_json", None, None)
            return
        event_type = event.get("type")
        client_event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
        if not isinstance(event_type, str):
            if self.replies is not Replies.NONE:
                message = "Missing required parameter: 'type'."
                await self._error(message, "missing_required_parameter", "type", client_event_id)
            return
        self.state.record_client_event(self.token, event_type)
        if self.replies is Replies.NONE:
            return
        if event_type not in _CLIENT_EVENTS:
            supported = ", ".join(f"'{name}'" for name in sorted(_CLIENT_EVENTS))
            message = f"Invalid value: '{event_type}'. Supported values are: {supported}."
            await self._error(message, "invalid_value", "type", client_event_id)
            return
        if event_type == "session.update":
            await self._session_update(event, client_event_id)
        elif event_type == "response.create":
            await self._response_create(client_event_id)
        elif event_type == "input_audio_buffer.commit":
            await self.send(
                {
                    "type": "input_audio_buffer.committed",
                    "event_id": shapes.event_id(),
                    "previous_item_id": None,
                    "item_id": _item_id(),
                }
            )
        elif event_type == "conversation.item.create":
            item = event.get("item")
            added: dict[str, Any] = {
                **(item if isinstance(item, dict) else {}),
                "id": _item_id(),
                "object": "realtime.item",
            }
            await self.send(
                {
                    "type": "conversation.item.added",
                    "event_id": shapes.event_id(),
                    "previous_item_id": None,
                    "item": added,
                }
            )

    async def _session_update(self, event: dict[str, Any], client_event_id: str | None) -> None:
        update = event.get("session")
        if not isinstance(update, dict):
            message = "Missing required parameter: 'session'."
            await self._error(message, "missing_required_parameter", "session", client_event_id)
            return
        session_type = update.get("type")
        if session_type is None:
            message = "Missing required parameter: 'session.type'."
            await self._error(
                message, "missing_required_parameter", "session.type", client_event_id
            )
            return
        if session_type not in _SESSION_TYPES:
            message = (
                f"Invalid value: '{session_type}'. "
                "Supported values are: 'realtime' and 'transcription'."
            )
            await self._error(message, "invalid_value", "session.type", client_event_id)
            return
        if self.replies is Replies.NO_SESSION_UPDATED:
            return
        if self.scenario == "rt_flood":
            await self._flood(max(1, (self.arg or 0) // 3))
        fixed = ("id", "object", "model", "expires_at")
        self.session.update({k: v for k, v in update.items() if k not in fixed})
        await self.send(
            {"type": "session.updated", "event_id": shapes.event_id(), "session": self.session}
        )

    async def _response_create(self, client_event_id: str | None) -> None:
        if self.scenario in {"insufficient_quota", "credit_balance_exhausted"}:
            await self.send(
                shapes.error_event(
                    shapes.INSUFFICIENT_QUOTA_MESSAGE,
                    "insufficient_quota",
                    type_="insufficient_quota",
                    client_event_id=client_event_id,
                )
            )
            return
        response: dict[str, Any] = {
            "object": "realtime.response",
            "id": "resp_" + secrets.token_hex(11),
            "status": "in_progress",
            "status_details": None,
            "output": [],
            "usage": None,
        }
        await self.send(
            {"type": "response.created", "event_id": shapes.event_id(), "response": response}
        )
        done = {**response, "status": "completed"}
        await self.send({"type": "response.done", "event_id": shapes.event_id(), "response": done})


async def handle_realtime(request: web.Request) -> web.StreamResponse:
    """`GET /v1/realtime`: faults before the upgrade, else a session run by RealtimeSession."""
    state = request.app[rest.STATE]
    token = bearer_token(request)
    state.record_realtime(token)
    selected = state.resolve(token) if token is not None else None
    scenario = selected.scenario if selected else None

    if scenario == "hang":
        await hang()
    if scenario == "reset":
        reset_connection(request)
        await hang()
    if token is not None and selected is not None and scenario in _EDGE_REJECTIONS:
        call = rest.RestCall(request, state, token, selected.arg, None, arrived_at(request))
        return await _EDGE_REJECTIONS[scenario](call)
    if scenario == "rt_forbidden":
        model = request.query.get("model", "gpt-realtime")
        message = f"Project `proj_simulator` does not have access to model `{model}`"
        return rest.json_error(403, message, "invalid_request_error", "model_not_found")
    if scenario == "rt_azure_400":
        return rest.json_response(
            {
                "error": {
                    "code": "OperationNotSupported",
                    "message": "The realtime operation does not work with the specified model. "
                    "Please choose different model and try again.",
                }
            },
            status=400,
        )
    if scenario == "rt_html_502":
        return rest.edge_html_response(502, "Bad Gateway")

    ws = session_websocket(request)
    if ws is None:
        message = "This endpoint expects a WebSocket upgrade (wss://api.openai.com/v1/realtime)."
        return rest.json_error(400, message, "invalid_request_error", None)
    await ws.prepare(request)
    # ConnectionError: the client left mid-send; aiohttp cleans up the rest.
    with contextlib.suppress(ConnectionError):
        await RealtimeSession(request, ws, state, token, selected).run()
    return ws
