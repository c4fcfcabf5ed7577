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
from typing import Any

import httpx

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
# httpcore scans every pooled connection (a select() each) for every request: a few kept-alive
# connections serve thousands of keys, more only cost CPU.
KEEPALIVE_CONNECTIONS = 8
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
    """Holds the connection pools; one probe at a time per key is the scheduler's job."""

    def __init__(self) -> None:
        # Per CA file: a pool that keeps connections, and one that closes each after its answer.
        self._clients: dict[tuple[str | None, bool], httpx.AsyncClient] = {}
        self._contexts: dict[str | None, ssl.SSLContext] = {}
        self._probe_count: dict[str, int] = {}

    def _context(self, ca_file: str | None) -> ssl.SSLContext:
        if ca_file not in self._contexts:
            self._contexts[ca_file] = tls_context(ca_file)
        return self._contexts[ca_file]

    def _client(self, ca_file: str | None, keepalive: bool) -> httpx.AsyncClient:
        # One client per kind, not one per fresh probe: building an httpx client reads the
        # proxy environment and costs more than a reused-connection probe.
        client = self._clients.get((ca_file, keepalive))
        if client is None:
            client = _new_client(self._context(ca_file), keepalive=keepalive)
            self._clients[(ca_file, keepalive)] = client
        return client

    async def probe(self, config: KeyConfig, key: str) -> ProbeResult:
        count = self._probe_count.get(config.name, 0)
        self._probe_count[config.name] = count + 1
        fresh = count % FRESH_CONNECTION_EVERY == 0
        return await probe_rest(self._client(config.tls_ca_file, not fresh), config, key)

    def forget(self, name: str) -> None:
        self._probe_count.pop(name, None)

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()


def _new_client(context: ssl.SSLContext, keepalive: bool) -> httpx.AsyncClient:
    # Without keep-alive the pool closes every connection once its response is read, so each
    # probe through it opens its own connection (and measures connect and TLS).
    limits = httpx.Limits(
        max_connections=256, max_keepalive_connections=KEEPALIVE_CONNECTIONS if keepalive else 0
    )
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
    return _from_response(response, body, oversize, clock, finished, key)


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
    response: httpx.Response,
    body: bytes,
    oversize: bool,
    clock: _PhaseClock,
    finished: float,
    key: str,
) -> ProbeResult:
    status = response.status_code
    common: dict[str, Any] = {
        "probe": "rest",
        "duration": finished - clock.started,
        "phases": clock.phases(finished),
        "http_status": status,
        "request_id": response.headers.get("x-request-id", "")[:64],
        "ratelimit": _ratelimit(response.headers),
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
            message=f"HTTP {status} but not a model list ({_describe_body(response, body)})",
            **common,
        )
    retry_after_seconds = retry_after(response.headers) if status == 429 else None
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
        message=f"HTTP {status} without an OpenAI error ({_describe_body(response, body)})",
        retry_after=retry_after_seconds,
        **common,
    )


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
        return None


def _describe_body(response: httpx.Response, body: bytes) -> str:
    content_type = response.headers.get("content-type", "no content type").split(";")[0]
    return f"{content_type}, {len(body)} bytes"


def _ratelimit(headers: httpx.Headers) -> dict[str, float]:
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
