"""Realtime probe: open a session over WebSocket as the application does, and stop before billing.

connect -> session.created -> session.update -> session.updated -> close 1000.
Never sends response.create or audio: those are the billed events.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import replace
from typing import Any, Literal
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidMessage,
    InvalidStatus,
    InvalidURI,
)

from exporter.classify import Result, classify_openai_error
from exporter.config import KeyConfig
from exporter.probes.tls import tls_context
from exporter.probes.websocket_session import (
    SessionFailed,
    SessionTrace,
    classify_close,
    close_socket,
    failed_result,
    open_session,
    read_event,
    rejected_upgrade,
    session_proxy,
    session_result,
    text_of,
    transport_failure,
)
from exporter.provider import auth_headers
from exporter.redaction import scrub
from exporter.result import ProbeResult

MAX_EVENTS_BEFORE_UPDATED = 1000  # a flood of events is a broken server, not a slow one
ERROR_CLOSE_WAIT = 1.0  # after an error event: time for the close frame that tells its code
GA_SESSION_UPDATE = {
    "type": "session.update",
    "session": {"type": "realtime", "output_modalities": ["text"]},
}
BETA_SESSION_UPDATE = {"type": "session.update", "session": {"modalities": ["text"]}}


class RealtimeProber:
    """Runs Realtime probes; keeps only the proxy the environment names for each URL."""

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
    trace = SessionTrace("realtime", key=key)
    headers = auth_headers(config, key)
    beta = config.realtime.api == "beta"
    if beta:
        headers["OpenAI-Beta"] = "realtime=v1"
    websocket: ClientConnection | None = None
    try:
        async with asyncio.timeout(config.timeout):
            websocket = await open_session(session_url(config), headers, context, proxy)
            trace.http_status = 101
            trace.phase_done("connect")
            await _converse(websocket, trace, beta)
        result = session_result(trace, Result.OK, "")
    except ConnectionClosed as closed:
        result = failed_result(trace, classify_close(closed, trace))
    except SessionFailed as failed:
        result = failed_result(trace, failed)
    except TimeoutError:
        waiting_for = {
            "connect": "no answer to the WebSocket upgrade",
            "session_created": "no session.created",
            "session_updated": "no session.updated",
        }[trace.stage]
        result = session_result(trace, Result.TIMEOUT, f"{waiting_for} within {config.timeout:g}s")
    except InvalidStatus as rejected:
        result = rejected_upgrade(trace, rejected)
    except (InvalidHandshake, InvalidMessage, OSError) as error:
        # Before ValueError: a failed certificate check (SSLCertVerificationError) is both.
        result = session_result(trace, *transport_failure(error, key))
    except (InvalidURI, ValueError) as error:
        # The runner sends only keys a header can carry: the URL is at fault, not the key.
        text = scrub(f"{type(error).__name__}: {error}", [key])
        result = session_result(trace, Result.CONNECTION_ERROR, f"{UNUSABLE_URL}: {text}")
    except Exception as error:  # whatever else, the socket below is still closed
        result = session_result(
            trace, Result.OTHER, scrub(f"{type(error).__name__}: {error}", [key])
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


async def _converse(websocket: ClientConnection, trace: SessionTrace, beta: bool) -> None:
    trace.stage = "session_created"
    event = await _next_event(websocket, trace)
    if event.get("type") != "session.created":
        raise SessionFailed(
            Result.PROTOCOL_ERROR,
            scrub(
                f"first event was {str(event.get('type'))[:60]!r}, not session.created",
                [trace.key],
            ),
        )
    trace.phase_done("session_created")
    trace.stage = "session_updated"
    await websocket.send(json.dumps(BETA_SESSION_UPDATE if beta else GA_SESSION_UPDATE))
    for _ in range(MAX_EVENTS_BEFORE_UPDATED):
        event = await _next_event(websocket, trace)
        if event.get("type") == "session.updated":
            trace.phase_done("session_updated")
            return
    raise SessionFailed(
        Result.PROTOCOL_ERROR, f"over {MAX_EVENTS_BEFORE_UPDATED} events without session.updated"
    )


async def _next_event(websocket: ClientConnection, trace: SessionTrace) -> dict[str, Any]:
    event = await read_event(websocket)
    if event.get("type") == "error":
        trace.error_event = event.get("error") if isinstance(event.get("error"), dict) else {}
        error = trace.error_event or {}
        code = error.get("code") if isinstance(error.get("code"), str) else None
        # OpenAI closes the socket right after a fatal error; wait for the close frame to learn
        # its code, but an error that leaves the session open (invalid_value...) ends the probe.
        try:
            async with asyncio.timeout(ERROR_CLOSE_WAIT):
                await websocket.recv()
        except TimeoutError:
            result, label = classify_openai_error(
                None, text_of(error.get("type")), code, text_of(error.get("message"))
            )
            raise SessionFailed(
                result if result is not Result.OTHER else Result.PROTOCOL_ERROR,
                scrub(text_of(error.get("message"))[:300], [trace.key]),
                label,
            ) from None
        raise SessionFailed(Result.PROTOCOL_ERROR, "an event arrived after an error event")
    return event
