"""REST probe: `GET {base_url}/models`, timed by phase, its answer classified."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import ssl
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from types import SimpleNamespace
from typing import Any

import aiohttp
import httpx
import yarl
from aiohttp.helpers import get_env_proxy_for_url

from exporter.classify import Result, caused_by_tls, classify_openai_error
from exporter.config import KeyConfig
from exporter.redaction import scrub
from exporter.state import ProbeResult

# httpcore runs `import sniffio` on every request and lock; when sniffio is not installed (anyio 4
# no longer brings it) each of those failed imports searches sys.path again, a third of a
# millisecond every time. Remembering the absence keeps httpcore's answer ("asyncio") and its cost
# to once per process.
if importlib.util.find_spec("sniffio") is None:
    sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]

MAX_BODY_BYTES = 4 * 1024 * 1024  # /models is a few dozen KiB; more is not OpenAI
FRESH_CONNECTION_EVERY = 10  # reuse keeps probes cheap; a fresh one keeps connect/TLS measured
_RATELIMIT_HEADERS = {
    "x-ratelimit-limit-requests": "limit_requests",
    "x-ratelimit-remaining-requests": "remaining_requests",
    "x-ratelimit-limit-tokens": "limit_tokens",
    "x-ratelimit-remaining-tokens": "remaining_tokens",
}


def auth_headers(config: KeyConfig, key: str) -> dict[str, str]:
    # The wire drops whitespace at the end of a header value; h11 refuses to send it at all.
    headers = {"Authorization": f"Bearer {key}".rstrip(" \t")}
    if config.organization:
        headers["OpenAI-Organization"] = config.organization
    if config.project:
        headers["OpenAI-Project"] = config.project
    return headers


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Verification always on; a corporate root is added, never substituted for trust."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


@dataclass
class _PhaseClock:
    """Turns httpcore's trace events into phase durations."""

    started: float = field(default_factory=time.perf_counter)
    marks: dict[str, float] = field(default_factory=dict)

    async def __call__(self, event: str, info: dict[str, Any]) -> None:
        self.marks[event] = time.perf_counter()

    def span(self, start: str, end: str) -> float | None:
        if start in self.marks and end in self.marks:
            return max(0.0, self.marks[end] - self.marks[start])
        return None

    def phases(self, finished: float) -> dict[str, float]:
        phases: dict[str, float] = {}
        spans = {
            "connect": ("connection.connect_tcp.started", "connection.connect_tcp.complete"),
            "tls": ("connection.start_tls.started", "connection.start_tls.complete"),
            "first_byte": (
                "http11.send_request_headers.started",
                "http11.receive_response_headers.complete",
            ),
        }
        for phase, (start, end) in spans.items():
            seconds = self.span(start, end)
            if seconds is not None:
                phases[phase] = seconds
        headers_done = self.marks.get("http11.receive_response_headers.complete")
        if headers_done is not None:
            phases["transfer"] = max(0.0, finished - headers_done)
        return phases


class RestProber:
    """Holds the connection pools; one probe at a time per key is the scheduler's job.

    Most probes go through a shared aiohttp pool: its C HTTP parser costs a fifth of httpx's CPU
    per request, which is what lets one process probe thousands of keys on time. Every
    FRESH_CONNECTION_EVERY-th probe of a key opens its own connection through httpx, whose trace
    times TCP connect and TLS apart: those phases come from these probes.
    """

    def __init__(self) -> None:
        self._fresh_clients: dict[str | None, httpx.AsyncClient] = {}
        self._sessions: dict[str | None, aiohttp.ClientSession] = {}
        self._contexts: dict[str | None, ssl.SSLContext] = {}
        self._probe_count: dict[str, int] = {}
        self._proxies: dict[str, tuple[yarl.URL | None, aiohttp.BasicAuth | None]] = {}

    def _context(self, ca_file: str | None) -> ssl.SSLContext:
        if ca_file not in self._contexts:
            self._contexts[ca_file] = tls_context(ca_file)
        return self._contexts[ca_file]

    def _fresh_client(self, ca_file: str | None) -> httpx.AsyncClient:
        # One client, not one per fresh probe: building an httpx client reads the proxy
        # environment and costs more than a pooled probe.
        client = self._fresh_clients.get(ca_file)
        if client is None:
            client = _new_fresh_client(self._context(ca_file))
            self._fresh_clients[ca_file] = client
        return client

    def _session(self, ca_file: str | None) -> aiohttp.ClientSession:
        session = self._sessions.get(ca_file)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                ssl=self._context(ca_file),
                limit=256,
                limit_per_host=0,
                keepalive_timeout=30,
                enable_cleanup_closed=True,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                # The proxy is resolved once per URL below: with trust_env aiohttp would read
                # the environment and ~/.netrc in a thread for every request.
                trust_env=False,
                trace_configs=[_POOLED_TRACE],
                auto_decompress=True,
                skip_auto_headers={"User-Agent"},
                headers={"User-Agent": "openai-key-exporter"},
            )
            self._sessions[ca_file] = session
        return session

    async def probe(self, config: KeyConfig, key: str) -> ProbeResult:
        count = self._probe_count.get(config.name, 0)
        self._probe_count[config.name] = count + 1
        return await self.probe_through(config, key, fresh=count % FRESH_CONNECTION_EVERY == 0)

    async def probe_through(self, config: KeyConfig, key: str, *, fresh: bool) -> ProbeResult:
        """One probe on a connection of its own (httpx), or through the shared pool (aiohttp)."""
        if fresh:
            return await probe_rest(self._fresh_client(config.tls_ca_file), config, key)
        url = f"{config.base_url}/models"
        if url not in self._proxies:
            self._proxies[url] = _environment_proxy(url)
        session = self._session(config.tls_ca_file)
        return await probe_rest_pooled(session, config, key, self._proxies[url])

    def forget(self, name: str) -> None:
        self._probe_count.pop(name, None)

    async def aclose(self) -> None:
        for client in self._fresh_clients.values():
            await client.aclose()
        self._fresh_clients.clear()
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()


async def _mark_headers_sent(
    session: aiohttp.ClientSession, context: SimpleNamespace, params: object
) -> None:
    context.trace_request_ctx["sent"] = time.perf_counter()


async def _mark_headers_received(
    session: aiohttp.ClientSession, context: SimpleNamespace, params: object
) -> None:
    context.trace_request_ctx["received"] = time.perf_counter()


def _pooled_trace() -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig()
    trace.on_request_headers_sent.append(_mark_headers_sent)
    trace.on_request_end.append(_mark_headers_received)  # fires once the response head is read
    trace.freeze()
    return trace


_POOLED_TRACE = _pooled_trace()


def _environment_proxy(url: str) -> tuple[yarl.URL | None, aiohttp.BasicAuth | None]:
    """HTTP(S)_PROXY and NO_PROXY for this URL, read as httpx and websockets read them."""
    try:
        return get_env_proxy_for_url(yarl.URL(url))
    except LookupError:
        return None, None


async def probe_rest_pooled(
    session: aiohttp.ClientSession,
    config: KeyConfig,
    key: str,
    proxy: tuple[yarl.URL | None, aiohttp.BasicAuth | None] = (None, None),
) -> ProbeResult:
    """The same probe through the shared pool: first byte and transfer timed, not connect."""
    started = time.perf_counter()
    marks: dict[str, float] = {}

    def phases(finished: float) -> dict[str, float]:
        timed: dict[str, float] = {}
        if "sent" in marks and "received" in marks:
            timed["first_byte"] = max(0.0, marks["received"] - marks["sent"])
        if "received" in marks:
            timed["transfer"] = max(0.0, finished - marks["received"])
        return timed

    def failure(result: Result, message: str) -> ProbeResult:
        finished = time.perf_counter()
        return ProbeResult(
            probe="rest",
            result=result,
            duration=finished - started,
            phases=phases(finished),
            error_code=result.value,
            message=message,
        )

    try:
        async with asyncio.timeout(config.timeout):
            async with session.get(
                f"{config.base_url}/models",
                headers=auth_headers(config, key),
                allow_redirects=False,
                trace_request_ctx=marks,
                proxy=proxy[0],
                proxy_auth=proxy[1],
            ) as response:
                body, oversize = await _read_capped_stream(response.content)
                status, headers = response.status, response.headers
    except TimeoutError:
        return failure(Result.TIMEOUT, f"no answer within {config.timeout:g}s")
    except (aiohttp.ClientError, OSError, ValueError) as error:
        return failure(*_classify_aiohttp_exception(error, key))
    finished = time.perf_counter()
    return _from_response(
        status, headers, body, oversize, finished - started, phases(finished), key
    )


async def _read_capped_stream(stream: aiohttp.StreamReader) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream.iter_chunked(64 * 1024):  # decoded, as with httpx
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return b"", True
        chunks.append(chunk)
    return b"".join(chunks), False


def _classify_aiohttp_exception(error: BaseException, key: str) -> tuple[Result, str]:
    text = scrub(f"{type(error).__name__}: {error}", [key])
    if isinstance(error, aiohttp.ClientSSLError | aiohttp.ServerFingerprintMismatch) or (
        caused_by_tls(error)
    ):
        return Result.TLS_ERROR, text
    if isinstance(error, aiohttp.ClientResponseError):
        return Result.PROTOCOL_ERROR, text  # a status line or headers that are not HTTP
    if isinstance(error, aiohttp.ClientPayloadError):
        decoding = "decod" in str(error).lower() or "compress" in str(error).lower()
        return (Result.PROTOCOL_ERROR if decoding else Result.CONNECTION_ERROR), text
    if isinstance(error, aiohttp.ClientConnectionError | OSError):
        return Result.CONNECTION_ERROR, text
    if isinstance(error, ValueError):
        return Result.KEY_MALFORMED, text  # a header aiohttp refuses to send
    return Result.OTHER, text


def _new_fresh_client(context: ssl.SSLContext) -> httpx.AsyncClient:
    # Without keep-alive the pool closes every connection once its response is read, so each
    # probe through it opens its own connection (and measures connect and TLS).
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=0)
    return httpx.AsyncClient(verify=context, limits=limits, trust_env=True, follow_redirects=False)


async def probe_rest(client: httpx.AsyncClient, config: KeyConfig, key: str) -> ProbeResult:
    clock = _PhaseClock()
    url = f"{config.base_url}/models"
    timeout = httpx.Timeout(config.timeout)
    try:
        async with asyncio.timeout(config.timeout):
            request = client.build_request(
                "GET",
                url,
                headers=auth_headers(config, key),
                timeout=timeout,
                extensions={"trace": clock},
            )
            response = await client.send(request, stream=True)
            try:
                body, oversize = await _read_capped(response)
            finally:
                await response.aclose()
    except (TimeoutError, httpx.TimeoutException):
        return _failure(clock, Result.TIMEOUT, f"no answer within {config.timeout:g}s")
    except httpx.HTTPError as error:
        return _failure(clock, *_classify_exception(error, key))
    finished = time.perf_counter()
    return _from_response(
        response.status_code,
        response.headers,
        body,
        oversize,
        finished - clock.started,
        clock.phases(finished),
        key,
    )


async def _read_capped(response: httpx.Response) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    # Decoded bytes: a proxy may compress whatever we ask for, and the cap then also bounds
    # what a small compressed body expands to.
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return b"", True
        chunks.append(chunk)
    return b"".join(chunks), False


def _classify_exception(error: httpx.HTTPError, key: str) -> tuple[Result, str]:
    text = scrub(f"{type(error).__name__}: {error}", [key])
    if caused_by_tls(error):
        return Result.TLS_ERROR, text
    if isinstance(error, httpx.LocalProtocolError):
        return Result.KEY_MALFORMED, text
    if isinstance(error, httpx.RemoteProtocolError) and not _is_disconnect(error):
        return Result.PROTOCOL_ERROR, text  # malformed or oversized headers, not a hang-up
    if isinstance(error, httpx.TransportError):
        return Result.CONNECTION_ERROR, text
    return Result.OTHER, text


def _is_disconnect(error: httpx.RemoteProtocolError) -> bool:
    text = str(error).lower()
    return "disconnected" in text or "without sending" in text or "peer closed" in text


def _failure(clock: _PhaseClock, result: Result, message: str) -> ProbeResult:
    finished = time.perf_counter()
    return ProbeResult(
        probe="rest",
        result=result,
        duration=finished - clock.started,
        phases=clock.phases(finished),
        error_code=result.value,
        message=message,
    )


def _from_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    oversize: bool,
    duration: float,
    phases: dict[str, float],
    key: str,
) -> ProbeResult:
    common: dict[str, Any] = {
        "probe": "rest",
        "duration": duration,
        "phases": phases,
        "http_status": status,
        "request_id": headers.get("x-request-id", "")[:64],
        "ratelimit": _ratelimit(headers),
    }
    if oversize:
        return ProbeResult(
            result=Result.PROTOCOL_ERROR,
            error_code="protocol_error",
            message=f"HTTP {status} with a body over {MAX_BODY_BYTES // 1024 // 1024} MiB",
            **common,
        )
    payload = _json(body)
    if 200 <= status < 300:
        if isinstance(payload, dict) and isinstance(payload.get("data"), list):
            return ProbeResult(result=Result.OK, **common)
        return ProbeResult(
            result=Result.PROTOCOL_ERROR,
            error_code="protocol_error",
            message=f"HTTP {status} but not a model list ({_describe_body(headers, body, key)})",
            **common,
        )
    retry_after_seconds = retry_after(headers) if status == 429 else None
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        code = error.get("code") if isinstance(error.get("code"), str) else None
        error_type = error.get("type") if isinstance(error.get("type"), str) else None
        message = str(error.get("message") or "")[:300]
        result, label = classify_openai_error(status, error_type, code, message)
        return ProbeResult(
            result=result,
            error_code=label,
            message=scrub(message, [key]),
            retry_after=retry_after_seconds,
            **common,
        )
    if status >= 500:
        result = Result.SERVER_ERROR
    elif status == 429:
        result = Result.RATE_LIMITED
    else:
        result = Result.OTHER
    return ProbeResult(
        result=result,
        error_code=result.value,
        message=f"HTTP {status} without an OpenAI error ({_describe_body(headers, body, key)})",
        retry_after=retry_after_seconds,
        **common,
    )


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
        return None


def _describe_body(headers: Mapping[str, str], body: bytes, key: str) -> str:
    content_type = headers.get("content-type", "no content type").split(";")[0][:60]
    return scrub(f"{content_type}, {len(body)} bytes", [key])


def _ratelimit(headers: Mapping[str, str]) -> dict[str, float]:
    values: dict[str, float] = {}
    for header, name in _RATELIMIT_HEADERS.items():
        try:
            value = float(headers[header])
        except (KeyError, ValueError):
            continue
        if math.isfinite(value) and value >= 0:
            values[name] = value
    return values


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from a `retry-after` header (delta-seconds or an HTTP date), None if unusable."""
    text = headers.get("retry-after", "").strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(text).timestamp() - time.time()
        except (TypeError, ValueError, IndexError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None
