"""Realtime probe: open a session over WebSocket as the application does, and stop before billing.

connect -> session.created -> session.update -> session.updated -> close 1000.
Never sends response.create or audio: those are the billed events.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidMessage,
    InvalidStatus,
    InvalidURI,
)
from websockets.proxy import get_proxy
from websockets.uri import parse_uri

from exporter.classify import Result, caused_by_tls, classify_openai_error
from exporter.config import KeyConfig
from exporter.probes.common import USER_AGENT
from exporter.probes.rest_answer import retry_after
from exporter.probes.tls import tls_context
from exporter.provider import auth_headers
from exporter.redaction import scrub
from exporter.result import ProbeResult

CLOSE_TIMEOUT = 1.0
MAX_MESSAGE_BYTES = 1024 * 1024  # session.created is a few KiB
MAX_EVENTS_BEFORE_UPDATED = 1000  # a flood of events is a broken server, not a slow one
GA_SESSION_UPDATE = {
    "type": "session.update",
    "session": {"type": "realtime", "output_modalities": ["text"]},
}
BETA_SESSION_UPDATE = {"type": "session.update", "session": {"modalities": ["text"]}}
CLOSE_CODE_RESULTS = {
    1001: Result.SERVER_ERROR,  # going away: the server restarts or ends the session
    1006: Result.CONNECTION_ERROR,  # dropped without a close frame
    1009: Result.PROTOCOL_ERROR,  # message too big
    1011: Result.SERVER_ERROR,
    1012: Result.SERVER_ERROR,
    1013: Result.SERVER_ERROR,
}


class Verdict(Exception):
    """Ends a session probe (Realtime or Live) early with a classified result."""

    def __init__(self, result: Result, message: str, code: str = "") -> None:
        super().__init__(message)
        self.result, self.message, self.code = result, message, code or result.value


@dataclass
class Session:
    started: float = field(default_factory=time.perf_counter)
    phases: dict[str, float] = field(default_factory=dict)
    mark: float = 0.0
    http_status: int = 0
    close_code: int | None = None
    error_event: dict[str, Any] | None = None
    stage: str = "connect"
    key: str = field(default="", repr=False)  # only to scrub what the server echoes back
    retry_after: float | None = None
    probe: str = "realtime"  # the kind of probe its results are for (live.py shares this)

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
    """A session's WebSocket as every session probe opens it (Realtime, GPT-Live)."""
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


class RealtimeProber:
    def __init__(self) -> None:
        self._proxies: dict[str, str | None] = {}  # HTTPS_PROXY/NO_PROXY, per Realtime URL

    async def probe(self, config: KeyConfig, key: str) -> ProbeResult:
        url = config.realtime_url
        context = tls_context(config.tls_ca_file) if url.startswith("wss://") else None
        if url not in self._proxies:
            # Read once: websockets would look the environment up again for every session.
            self._proxies[url] = session_proxy(session_url(config))
        return await probe_realtime(config, key, context, self._proxies[url])

    def forget(self, name: str) -> None:
        return None

    async def aclose(self) -> None:
        return None


def session_url(config: KeyConfig) -> str:
    separator = "&" if "?" in config.realtime_url else "?"
    return f"{config.realtime_url}{separator}model={quote(config.realtime.model)}"


UNUSABLE_URL = "the Realtime URL cannot be used (check base_url or realtime.url)"


async def probe_realtime(
    config: KeyConfig,
    key: str,
    context: ssl.SSLContext | None,
    proxy: str | Literal[True] | None = True,
) -> ProbeResult:
    session = Session(key=key)
    headers = auth_headers(config, key)
    beta = config.realtime.api == "beta"
    if beta:
        headers["OpenAI-Beta"] = "realtime=v1"
    websocket: ClientConnection | None = None
    try:
        async with asyncio.timeout(config.timeout):
            websocket = await open_session(session_url(config), headers, context, proxy)
            session.http_status = 101
            session.phase_done("connect")
            await _converse(websocket, session, beta)
        result = session_result(session, Result.OK, "")
    except ConnectionClosed as closed:
        verdict = closed_verdict(closed, session)
        result = session_result(session, verdict.result, verdict.message, verdict.code)
    except Verdict as verdict:
        result = session_result(session, verdict.result, verdict.message, verdict.code)
    except TimeoutError:
        waiting_for = {
            "connect": "no answer to the WebSocket upgrade",
            "session_created": "no session.created",
            "session_updated": "no session.updated",
        }[session.stage]
        result = session_result(
            session, Result.TIMEOUT, f"{waiting_for} within {config.timeout:g}s"
        )
    except InvalidStatus as rejected:
        result = rejected_upgrade(session, rejected)
    except (InvalidHandshake, InvalidMessage, OSError) as error:
        # Before ValueError: a failed certificate check (SSLCertVerificationError) is both.
        result = session_result(session, *transport_failure(error, key))
    except (InvalidURI, ValueError) as error:
        # The runner sends only keys a header can carry: the URL is at fault, not the key.
        text = scrub(f"{type(error).__name__}: {error}", [key])
        result = session_result(session, Result.CONNECTION_ERROR, f"{UNUSABLE_URL}: {text}")
    except Exception as error:  # whatever else, the session below is still closed
        result = session_result(
            session, Result.OTHER, scrub(f"{type(error).__name__}: {error}", [key])
        )
    except BaseException:
        if websocket is not None and websocket.transport is not None:
            websocket.transport.abort()  # cancelled: no time for a close handshake
        raise
    if websocket is not None:
        await close_socket(websocket)
        if result.healthy:
            result = replace(result, close_code=1000)
    return result


async def close_socket(websocket: ClientConnection) -> None:
    """Close with 1000, never waiting longer than CLOSE_TIMEOUT on a peer that keeps talking."""
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await websocket.close(1000)
    except (TimeoutError, OSError, ConnectionClosed):
        pass
    finally:
        transport = websocket.transport
        if transport is not None and not transport.is_closing():
            transport.abort()


async def _converse(websocket: ClientConnection, session: Session, beta: bool) -> None:
    session.stage = "session_created"
    event = await _next_event(websocket, session)
    if event.get("type") != "session.created":
        raise Verdict(
            Result.PROTOCOL_ERROR,
            scrub(
                f"first event was {str(event.get('type'))[:60]!r}, not session.created",
                [session.key],
            ),
        )
    session.phase_done("session_created")
    session.stage = "session_updated"
    await websocket.send(json.dumps(BETA_SESSION_UPDATE if beta else GA_SESSION_UPDATE))
    for _ in range(MAX_EVENTS_BEFORE_UPDATED):
        event = await _next_event(websocket, session)
        if event.get("type") == "session.updated":
            session.phase_done("session_updated")
            return
    raise Verdict(
        Result.PROTOCOL_ERROR, f"over {MAX_EVENTS_BEFORE_UPDATED} events without session.updated"
    )


async def _next_event(websocket: ClientConnection, session: Session) -> dict[str, Any]:
    message = await websocket.recv()
    if isinstance(message, bytes):
        raise Verdict(Result.PROTOCOL_ERROR, f"binary frame of {len(message)} bytes")
    try:
        event = json.loads(message)
    except (ValueError, RecursionError):
        raise Verdict(
            Result.PROTOCOL_ERROR, f"non-JSON text frame of {len(message)} characters"
        ) from None
    if not isinstance(event, dict):
        raise Verdict(Result.PROTOCOL_ERROR, "a JSON frame that is not an event object")
    if event.get("type") == "error":
        session.error_event = event.get("error") if isinstance(event.get("error"), dict) else {}
        error = session.error_event or {}
        code = error.get("code") if isinstance(error.get("code"), str) else None
        # OpenAI closes the socket right after a fatal error; wait for the close frame to learn
        # its code, but an error that leaves the session open (invalid_value...) ends the probe.
        try:
            async with asyncio.timeout(1.0):
                await websocket.recv()
        except TimeoutError:
            result, label = classify_openai_error(
                None, text_of(error.get("type")), code, text_of(error.get("message"))
            )
            raise Verdict(
                result if result is not Result.OTHER else Result.PROTOCOL_ERROR,
                scrub(text_of(error.get("message"))[:300], [session.key]),
                label,
            ) from None
        raise Verdict(Result.PROTOCOL_ERROR, "an event arrived after an error event")
    return event


def text_of(value: object) -> str:
    return value if isinstance(value, str) else ""


def closed_verdict(closed: ConnectionClosed, session: Session) -> Verdict:
    frame = closed.rcvd
    code = frame.code if frame is not None else 1006
    reason = frame.reason if frame is not None else ""
    session.close_code = code
    error = session.error_event or {}
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
        return Verdict(result, scrub(f"close {code}: {detail}"[:300], [session.key]), label)
    result = CLOSE_CODE_RESULTS.get(code, Result.OTHER)
    waiting = session.stage.replace("_", ".")
    return Verdict(
        result,
        scrub(f"closed with {code} {reason[:100]!r} while waiting for {waiting}", [session.key]),
    )


def rejected_upgrade(session: Session, rejected: InvalidStatus) -> ProbeResult:
    response = rejected.response
    session.http_status = response.status_code
    if response.status_code == 429:
        session.retry_after = retry_after(response.headers)
    body = bytes(response.body or b"")[:65536]
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
            session,
            result,
            scrub(f"upgrade refused with HTTP {response.status_code}: {message}", [session.key]),
            label,
        )
    result = Result.SERVER_ERROR if response.status_code >= 500 else Result.OTHER
    if response.status_code == 429:
        result = Result.RATE_LIMITED
    content_type = response.headers.get("content-type", "no content type").split(";")[0][:60]
    message = f"upgrade refused with HTTP {response.status_code} ({content_type})"
    return session_result(session, result, scrub(message, [session.key]))


def transport_failure(error: BaseException, key: str) -> tuple[Result, str]:
    text = scrub(f"{type(error).__name__}: {error}", [key])
    if caused_by_tls(error):
        return Result.TLS_ERROR, text
    if isinstance(error, OSError):
        return Result.CONNECTION_ERROR, text
    if isinstance(error, InvalidMessage) and isinstance(error.__cause__, EOFError | OSError):
        return Result.CONNECTION_ERROR, text  # the server hung up before answering the upgrade
    return Result.PROTOCOL_ERROR, text


def session_result(session: Session, result: Result, message: str, code: str = "") -> ProbeResult:
    return ProbeResult(
        retry_after=session.retry_after,
        probe=session.probe,
        result=result,
        duration=time.perf_counter() - session.started,
        phases=dict(session.phases),
        http_status=session.http_status,
        error_code="" if result is Result.OK else (code or result.value),
        message=message,
        close_code=session.close_code,
    )
