"""GPT-Live probe (opt-in, billed): start a minimal session and end it at once.

connect -> session.start {"model"} -> session.started -> session.close -> session.closed -> 1000.
A started session is billed per second from start to close ($0.05 a minute for gpt-live-1,
about $0.001 a probe), so this probe runs only for keys that list `live` in `probes`. It never
sends audio or anything that starts a response. A session that may have started is always
ended with session.close, also after a timeout or when the exporter stops (a bounded wait).
"""

from __future__ import annotations

import asyncio
import json
import math
import ssl
import time
from collections.abc import Iterable
from dataclasses import replace
from typing import Any, Literal

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidMessage,
    InvalidStatus,
    InvalidURI,
)

from exporter.classify import ERROR_CODES, Result, classify_openai_error
from exporter.config import KeyConfig
from exporter.probes.tls import tls_context
from exporter.probes.websocket_session import (
    CLOSE_TIMEOUT,
    SessionFailed,
    SessionTrace,
    abort_transport,
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
from exporter.provider import key_header
from exporter.redaction import scrub
from exporter.result import ProbeResult

# The end (session.close to the socket's close) gets this long after the probe's own timeout;
# under the runner's one second of slack, so a slow end still reports its billed seconds.
END_BUDGET = 0.8
ERROR_CLOSE_WAIT = 0.5  # after an error event: time for the close frame that may follow
MAX_EVENTS_BEFORE_STARTED = 1000
# What a probe costs: about one billed second of session at $0.05 a minute (OpenAI, 2026).
COST_PER_PROBE_USD = 0.001
_MONTH_SECONDS = 30 * 86400
_QUOTA_CODES = ("credit_balance_exhausted", "insufficient_quota")
_WAITING_FOR = {
    "connect": "no answer to the WebSocket upgrade",
    "session_started": "no session.started",
    "session_closed": "no session.closed",
}


class LiveProber:
    """Runs Live probes; on exporter shutdown, waits (bounded) for their sessions to end."""

    def __init__(self) -> None:
        self._proxies: dict[str, str | None] = {}
        self._in_flight: set[asyncio.Future[None]] = set()

    async def probe(self, config: KeyConfig, key: str) -> ProbeResult:
        url = config.live_url
        context = tls_context(config.tls_ca_file) if url.startswith("wss://") else None
        if url not in self._proxies:
            self._proxies[url] = session_proxy(url)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._in_flight.add(done)
        try:
            return await probe_live(config, key, context, self._proxies[url])
        finally:
            done.set_result(None)
            self._in_flight.discard(done)

    def forget(self, name: str) -> None:
        return None

    async def aclose(self) -> None:
        """Give cancelled probes the time to send session.close: a session left open is billed."""
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=END_BUDGET + CLOSE_TIMEOUT)


def estimated_monthly_cost(keys: Iterable[KeyConfig]) -> tuple[int, float]:
    """(keys with the Live probe, their estimated cost in USD over 30 days)."""
    count, total = 0, 0.0
    for key in keys:
        if "live" in key.probes:
            count += 1
            total += _MONTH_SECONDS / key.live.interval * COST_PER_PROBE_USD
    return count, total


class _LiveRun:
    """One probe's session: what was sent and seen, for the result and for the end."""

    def __init__(self, key: str) -> None:
        self.trace = SessionTrace("live", key=key)
        self.websocket: ClientConnection | None = None
        self.start_sent = False
        self.refused = False  # an error event answered session.start: no session to end
        self.started_at: float | None = None
        self.billed: float | None = None  # usage.seconds from session.closed
        self.closed_seen = False
        self.lost: ConnectionClosed | None = None  # the socket closed under the end

    async def start(
        self, config: KeyConfig, context: ssl.SSLContext | None, proxy: str | Literal[True] | None
    ) -> None:
        trace = self.trace
        # The key's header only, no query parameters: the model goes in session.start.
        headers = key_header(config.provider, trace.key)
        websocket = self.websocket = await open_session(config.live_url, headers, context, proxy)
        trace.http_status = 101
        trace.phase_done("connect")
        trace.stage = "session_started"
        # Only the model: the session object is strict, any other field could be refused.
        start = {"type": "session.start", "session": {"model": config.live.model}}
        await websocket.send(json.dumps(start))
        self.start_sent = True
        for _ in range(MAX_EVENTS_BEFORE_STARTED):
            event = await read_event(websocket)
            if event.get("type") == "session.started":
                self.started_at = time.perf_counter()
                trace.phase_done("session_started")
                return
            if event.get("type") == "error":
                await self._refusal(event)
        raise SessionFailed(
            Result.PROTOCOL_ERROR,
            f"over {MAX_EVENTS_BEFORE_STARTED} events without session.started",
        )

    async def _refusal(self, event: dict[str, Any]) -> None:
        """An error event before session.started: the start was refused, nothing is billed."""
        assert self.websocket is not None
        self.refused = True
        error = event.get("error") if isinstance(event.get("error"), dict) else {}
        self.trace.error_event = error
        try:  # a close frame may follow (its code is undocumented): learn it, briefly
            async with asyncio.timeout(ERROR_CLOSE_WAIT):
                await self.websocket.recv()
        except ConnectionClosed as closed:
            self.trace.close_code = closed.rcvd.code if closed.rcvd is not None else 1006
        except TimeoutError:
            pass
        result, label = classify_live_error(error or {})
        message = scrub(text_of((error or {}).get("message"))[:300], [self.trace.key])
        raise SessionFailed(result, message or f"error event {label}", label)

    async def end(self) -> None:
        """session.close and session.closed when a session may have started, then close 1000;
        within END_BUDGET whatever the peer does."""
        websocket = self.websocket
        if websocket is None:
            return
        try:
            async with asyncio.timeout(END_BUDGET):
                if self.start_sent and not self.refused:
                    await self._close_session(websocket)
                await close_socket(websocket)
            received = websocket.protocol.close_rcvd
            if received is not None and self.trace.close_code is None:
                self.trace.close_code = received.code
        except ConnectionClosed as closed:
            self.lost = closed
        except (TimeoutError, OSError, SessionFailed):
            pass
        finally:
            abort_transport(websocket)

    async def _close_session(self, websocket: ClientConnection) -> None:
        self.trace.stage = "session_closed"
        await websocket.send(json.dumps({"type": "session.close"}))
        while True:
            event = await read_event(websocket)
            if event.get("type") == "session.closed":
                self.closed_seen = True
                self.trace.phase_done("session_closed")
                usage = event.get("usage")
                seconds = usage.get("seconds") if isinstance(usage, dict) else None
                if isinstance(seconds, int | float) and not isinstance(seconds, bool):
                    self.billed = (
                        float(seconds) if math.isfinite(seconds) and seconds >= 0 else None
                    )
                return

    def billed_seconds(self) -> float:
        """What OpenAI said it billed; else, for a session seen to start, the time it was open
        as measured here (an estimate); else 0: a start never seen is not known to be billed."""
        if self.billed is not None:
            return self.billed
        if self.started_at is not None:
            return time.perf_counter() - self.started_at
        return 0.0


def classify_live_error(error: dict[str, Any]) -> tuple[Result, str]:
    """An error event on the Live socket: the issue's table, then the shared one."""
    code = text_of(error.get("code")) or None
    error_type = text_of(error.get("type")) or None
    param = text_of(error.get("param"))
    if code in _QUOTA_CODES:
        return Result.INSUFFICIENT_QUOTA, code or "insufficient_quota"
    if code is not None and code in ERROR_CODES:
        return ERROR_CODES[code], code
    # The strict session object refused what the probe sends: the interface changed under it.
    if code == "unknown_parameter" or (
        error_type == "invalid_request_error" and param.startswith("session")
    ):
        return Result.API_SHAPE_RETIRED, code or "invalid_request_error"
    result, label = classify_openai_error(None, error_type, code, text_of(error.get("message")))
    return (result if result is not Result.OTHER else Result.PROTOCOL_ERROR), label


async def probe_live(
    config: KeyConfig,
    key: str,
    context: ssl.SSLContext | None,
    proxy: str | Literal[True] | None = True,
) -> ProbeResult:
    run = _LiveRun(key)
    try:
        result = await _classified_start(run, config, context, proxy)
    except BaseException:  # cancelled (the runner's timeout, a reload, shutdown)
        await run.end()  # the session is billed until it ends: end it, briefly, then go
        raise
    await run.end()
    if result.healthy:
        result = _classified_end(run)
    return replace(result, billed_seconds=run.billed_seconds())


def _classified_end(run: _LiveRun) -> ProbeResult:
    """The result of a session that started, once it was asked to end."""
    trace = run.trace
    if run.closed_seen:
        result = session_result(trace, Result.OK, "")
        return replace(result, close_code=trace.close_code or 1000)
    if run.lost is not None:
        return failed_result(trace, classify_close(run.lost, trace))
    message = f"{_WAITING_FOR['session_closed']} within {END_BUDGET:g}s"
    return session_result(trace, Result.TIMEOUT, message)


async def _classified_start(
    run: _LiveRun,
    config: KeyConfig,
    context: ssl.SSLContext | None,
    proxy: str | Literal[True] | None,
) -> ProbeResult:
    """The start, classified: OK once session.started came, else what went wrong."""
    trace, key = run.trace, run.trace.key
    try:
        async with asyncio.timeout(config.timeout):
            await run.start(config, context, proxy)
        return session_result(trace, Result.OK, "")
    except ConnectionClosed as closed:
        return failed_result(trace, classify_close(closed, trace))
    except SessionFailed as failed:
        return failed_result(trace, failed)
    except TimeoutError:
        waiting_for = _WAITING_FOR[trace.stage]
        return session_result(trace, Result.TIMEOUT, f"{waiting_for} within {config.timeout:g}s")
    except InvalidStatus as rejected:
        return rejected_upgrade(trace, rejected)
    except (InvalidHandshake, InvalidMessage, OSError) as error:
        return session_result(trace, *transport_failure(error, key))
    except (InvalidURI, ValueError) as error:
        text = scrub(f"{type(error).__name__}: {error}", [key])
        return session_result(trace, Result.OTHER, text)
