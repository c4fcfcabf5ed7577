"""What every WebSocket session probe (Realtime, GPT-Live) shares: opening the socket, its proxy,
reading events, closing, and turning what went wrong into a classified ProbeResult.

The contract, for a probe built on it:
- `open_session` opens the socket with no timeout of its own (the probe's timeout governs every
  step), no compression, no pings, and at most MAX_MESSAGE_BYTES per message.
- `read_event` returns one JSON event object or raises `SessionFailed` (protocol_error) for a
  binary frame, text that is not JSON, or JSON that is not an object: a broken peer is a result.
- `SessionFailed` ends a probe early with its classified result; `classify_close`,
  `rejected_upgrade` and `transport_failure` classify a close frame, a refused upgrade and a
  failed transport the same way for every session probe.
- `close_socket` closes with 1000 and never waits longer than CLOSE_TIMEOUT.
- Every message that may carry what the server sent is scrubbed of the key.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus, InvalidURI
from websockets.proxy import get_proxy
from websockets.uri import parse_uri

from exporter.classify import Result, caused_by_tls, classify_openai_error
from exporter.probes.common import USER_AGENT
from exporter.probes.rest_answer import retry_after
from exporter.redaction import scrub
from exporter.result import ProbeResult

CLOSE_TIMEOUT = 1.0
MAX_MESSAGE_BYTES = 1024 * 1024  # a session's events are a few KiB
MAX_REFUSAL_BODY_BYTES = 65536  # of a refused upgrade's body, read for an OpenAI error
CLOSE_CODE_RESULTS = {
    1001: Result.SERVER_ERROR,  # going away: the server restarts or ends the session
    1006: Result.CONNECTION_ERROR,  # dropped without a close frame
    1009: Result.PROTOCOL_ERROR,  # message too big
    1011: Result.SERVER_ERROR,
    1012: Result.SERVER_ERROR,
    1013: Result.SERVER_ERROR,
}


class SessionFailed(Exception):
    """Ends a session probe early with a classified result: `code` is the error code the
    result carries (the result's own name unless OpenAI gave a more precise one)."""

    def __init__(self, result: Result, message: str, code: str = "") -> None:
        super().__init__(message)
        self.result, self.message, self.code = result, message, code or result.value


@dataclass
class SessionTrace:
    """What one session probe saw, for its result: phases, the upgrade's status, the close code,
    the error event, and the stage it was waiting at (which names a timeout)."""

    probe: str  # the probe kind its result is for
    started: float = field(default_factory=time.perf_counter)
    phases: dict[str, float] = field(default_factory=dict)
    mark: float = 0.0  # when the last phase ended (0: none yet)
    http_status: int = 0
    close_code: int | None = None
    error_event: dict[str, Any] | None = None
    stage: str = "connect"
    key: str = field(default="", repr=False)  # only to scrub what the server echoes back
    retry_after: float | None = None

    def phase_done(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases[phase] = now - (self.mark or self.started)
        self.mark = now


def session_proxy(url: str) -> str | None:
    """The proxy the environment (HTTPS_PROXY, NO_PROXY) names for a session URL; None for a
    URL no client can use: the probe then reports it as its result."""
    try:
        return get_proxy(parse_uri(url))
    except (InvalidURI, ValueError):
        return None


async def open_session(
    url: str,
    headers: dict[str, str],
    context: ssl.SSLContext | None,
    proxy: str | Literal[True] | None,
) -> ClientConnection:
    """A session's WebSocket as every session probe opens it."""
    return await connect(
        url,
        additional_headers=headers,
        ssl=context,
        open_timeout=None,  # the probe's timeout governs every step
        close_timeout=CLOSE_TIMEOUT,
        ping_interval=None,
        max_size=MAX_MESSAGE_BYTES,
        compression=None,
        user_agent_header=USER_AGENT,
        proxy=proxy,
    )


async def read_event(websocket: ClientConnection) -> dict[str, Any]:
    """The next event object; SessionFailed (protocol_error) for anything that is not one."""
    message = await websocket.recv()
    if isinstance(message, bytes):
        raise SessionFailed(Result.PROTOCOL_ERROR, f"binary frame of {len(message)} bytes")
    try:
        event = json.loads(message)
    except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
        raise SessionFailed(
            Result.PROTOCOL_ERROR, f"non-JSON text frame of {len(message)} characters"
        ) from None
    if not isinstance(event, dict):
        raise SessionFailed(Result.PROTOCOL_ERROR, "a JSON frame that is not an event object")
    return event


async def close_socket(websocket: ClientConnection) -> None:
    """Close with 1000, never waiting longer than CLOSE_TIMEOUT on a peer that keeps talking."""
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await websocket.close(1000)
    except (TimeoutError, OSError, ConnectionClosed):
        pass
    finally:
        abort_transport(websocket)


def abort_transport(websocket: ClientConnection) -> None:
    """Drop the connection under a session whose close did not finish: nothing is left open."""
    transport = websocket.transport
    if transport is not None and not transport.is_closing():
        transport.abort()


def text_of(value: object) -> str:
    """A field of an event that should be a string, or "" for anything else."""
    return value if isinstance(value, str) else ""


def classify_close(closed: ConnectionClosed, trace: SessionTrace) -> SessionFailed:
    """The socket closed under the probe: classified from the error event seen before it, else
    the close reason (OpenAI sends `type.code` there), else the close code. Records the code in
    `trace`."""
    frame = closed.rcvd
    code = frame.code if frame is not None else 1006
    reason = frame.reason if frame is not None else ""
    trace.close_code = code
    error = trace.error_event or {}
    error_code = text_of(error.get("code"))
    error_type = text_of(error.get("type"))
    message = text_of(error.get("message"))
    if not error_code and "." in reason:
        error_type, _, error_code = reason.partition(".")
    elif not error_type and reason:
        error_type = reason
    if error_code or message or code in (3000, 4000):
        result, label = classify_openai_error(None, error_type or None, error_code or None, message)
        if result is Result.OTHER and code in CLOSE_CODE_RESULTS:
            result = CLOSE_CODE_RESULTS[code]
        detail = message or reason or f"closed with {code}"
        return SessionFailed(result, scrub(f"close {code}: {detail}"[:300], [trace.key]), label)
    result = CLOSE_CODE_RESULTS.get(code, Result.OTHER)
    waiting = trace.stage.replace("_", ".")
    return SessionFailed(
        result,
        scrub(f"closed with {code} {reason[:100]!r} while waiting for {waiting}", [trace.key]),
    )


def rejected_upgrade(trace: SessionTrace, rejected: InvalidStatus) -> ProbeResult:
    """The server answered the upgrade with an HTTP status: read as the REST probe reads one."""
    response = rejected.response
    trace.http_status = response.status_code
    if response.status_code == 429:
        trace.retry_after = retry_after(response.headers)
    body = bytes(response.body or b"")[:MAX_REFUSAL_BODY_BYTES]
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        payload = None
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        message = text_of(error.get("message"))[:300]
        result, label = classify_openai_error(
            response.status_code,
            text_of(error.get("type")) or None,
            text_of(error.get("code")) or None,
            message,
        )
        return session_result(
            trace,
            result,
            scrub(f"upgrade refused with HTTP {response.status_code}: {message}", [trace.key]),
            label,
        )
    result = Result.SERVER_ERROR if response.status_code >= 500 else Result.OTHER
    if response.status_code == 429:
        result = Result.RATE_LIMITED
    content_type = response.headers.get("content-type", "no content type").split(";")[0][:60]
    message = f"upgrade refused with HTTP {response.status_code} ({content_type})"
    return session_result(trace, result, scrub(message, [trace.key]))


def transport_failure(error: BaseException, key: str) -> tuple[Result, str]:
    """A failed connection, TLS handshake or upgrade: its class and its scrubbed message."""
    text = scrub(f"{type(error).__name__}: {error}", [key])
    if caused_by_tls(error):
        return Result.TLS_ERROR, text
    if isinstance(error, OSError):
        return Result.CONNECTION_ERROR, text
    if isinstance(error, InvalidMessage) and isinstance(error.__cause__, EOFError | OSError):
        return Result.CONNECTION_ERROR, text  # the server hung up before answering the upgrade
    return Result.PROTOCOL_ERROR, text


def session_result(
    trace: SessionTrace, result: Result, message: str, code: str = ""
) -> ProbeResult:
    """The probe's result from what `trace` saw, its duration up to now."""
    return ProbeResult(
        retry_after=trace.retry_after,
        probe=trace.probe,
        result=result,
        duration=time.perf_counter() - trace.started,
        phases=dict(trace.phases),
        http_status=trace.http_status,
        error_code="" if result is Result.OK else (code or result.value),
        message=message,
        close_code=trace.close_code,
    )


def failed_result(trace: SessionTrace, failed: SessionFailed) -> ProbeResult:
    """The result `failed` carries, with what `trace` saw."""
    return session_result(trace, failed.result, failed.message, failed.code)
