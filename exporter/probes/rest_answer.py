"""What a REST probe saw, an answer or an exception, as a ProbeResult: one reading for every path."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from aiohttp.http import HttpProcessingError  # aiohttp.http's public name for the parser's error

from exporter.classify import Result, caused_by_tls, classify_openai_error
from exporter.keys import lint_key
from exporter.models import read_statuses
from exporter.probes.rest_timing import ProbeClock
from exporter.redaction import scrub
from exporter.result import ProbeResult

MAX_BODY_BYTES = 4 * 1024 * 1024  # /models is a few dozen KiB, a probe's response less
_OPENAI_REQUEST_ID = re.compile(r"req_[0-9a-f]{1,60}")
_RATELIMIT_HEADERS = {
    "x-ratelimit-limit-requests": "limit_requests",
    "x-ratelimit-remaining-requests": "remaining_requests",
    "x-ratelimit-limit-tokens": "limit_tokens",
    "x-ratelimit-remaining-tokens": "remaining_tokens",
}


async def read_capped(stream: aiohttp.StreamReader) -> tuple[bytes, bool]:
    # Decoded bytes: a proxy may compress whatever we ask for, and the cap then also bounds
    # what a small compressed body expands to.
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.readany():  # b"" at the end
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return b"", True
        chunks.append(chunk)
    return b"".join(chunks), False


def failure(
    clock: ProbeClock,
    started: float,
    fresh: bool,
    result: Result,
    message: str,
    *,
    probe: str = "rest",
) -> ProbeResult:
    # The whole attempt, from before any connection: a timeout then reads as the timeout.
    return ProbeResult(
        probe=probe,
        result=result,
        duration=time.perf_counter() - started,
        phases=clock.phases(connection=fresh),
        error_code=result.value,
        message=message,
    )


def timed_out(
    error: TimeoutError,
    clock: ProbeClock,
    started: float,
    fresh: bool,
    budget: float,
    key: str,
    *,
    probe: str = "rest",
) -> ProbeResult:
    """The probe's own budget ran out, or (with an errno) the kernel gave up connecting."""
    if error.errno is not None:
        return failure(clock, started, fresh, *classify_exception(error, key), probe=probe)
    message = f"no answer within {budget:g}s"
    return failure(clock, started, fresh, Result.TIMEOUT, message, probe=probe)


def classify_exception(error: BaseException, key: str) -> tuple[Result, str]:
    text = scrub(f"{type(error).__name__}: {error}", [key])
    if isinstance(error, aiohttp.ClientSSLError | aiohttp.ServerFingerprintMismatch) or (
        caused_by_tls(error)
    ):
        return Result.TLS_ERROR, text
    if isinstance(error, aiohttp.ClientResponseError | HttpProcessingError):
        return Result.PROTOCOL_ERROR, text  # a status line or headers that are not HTTP
    if isinstance(error, aiohttp.ClientPayloadError):
        decoding = "decod" in str(error).lower() or "compress" in str(error).lower()
        return (Result.PROTOCOL_ERROR if decoding else Result.CONNECTION_ERROR), text
    if isinstance(error, aiohttp.ClientConnectionError | OSError):
        return Result.CONNECTION_ERROR, text
    if isinstance(error, ValueError):
        if not lint_key(key).sendable:
            return Result.KEY_MALFORMED, text  # a header with a control character: never sent
        # The key is fine, so the URL is at fault (a host the resolver cannot encode, a port
        # out of range) or another configured header: never the key's fault.
        return Result.CONNECTION_ERROR, f"{UNUSABLE_REQUEST}: {text}"
    return Result.OTHER, text


def is_model_list(payload: Any) -> bool:
    return isinstance(payload, dict) and isinstance(payload.get("data"), list)


UNUSABLE_REQUEST = "the request cannot be made (check base_url, organization and project)"


def from_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    oversize: bool,
    duration: float,
    phases: dict[str, float],
    key: str,
    models: frozenset[str] = frozenset(),
    *,
    probe: str = "rest",
    expected: tuple[Callable[[Any], bool], str] = (is_model_list, "a model list"),
) -> ProbeResult:
    """The answer as a result; a 2xx is ok only when `expected`'s test accepts its JSON.
    `models`: the ids whose listing and shutdown date to read from a model list."""
    accepts, answer_name = expected
    common: dict[str, Any] = {
        "probe": probe,
        "duration": duration,
        "phases": phases,
        "http_status": status,
        "request_id": _request_id(headers.get("x-request-id", ""), key),
        "ratelimit": _ratelimit(headers),
    }
    if oversize:
        return ProbeResult(
            result=Result.PROTOCOL_ERROR,
            error_code="protocol_error",
            message=f"HTTP {status} with a body over {MAX_BODY_BYTES // 1024 // 1024} MiB",
            **common,
        )
    payload = parse_json(body)
    if 200 <= status < 300:
        if accepts(payload):
            statuses = read_statuses(payload, models, key) if is_model_list(payload) else None
            return ProbeResult(result=Result.OK, models=statuses, **common)
        return ProbeResult(
            result=Result.PROTOCOL_ERROR,
            error_code="protocol_error",
            message=f"HTTP {status} but not {answer_name} ({_describe_body(headers, body, key)})",
            **common,
        )
    retry_after_seconds = retry_after(headers) if status == 429 else None
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        code = error.get("code") if isinstance(error.get("code"), str) else None
        error_type = error.get("type") if isinstance(error.get("type"), str) else None
        message = str(error.get("message") or "")[:300]
        result, label = classify_openai_error(status, error_type, code, message)
        if result is Result.OTHER:
            message = f"HTTP {status}: {message}"  # unrecognised: the status tells most
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


def _request_id(text: str, key: str) -> str:
    # OpenAI's own shape is kept as sent; anything else is scrubbed before it is cut, so
    # that a server echoing the key leaves no piece of it.
    if _OPENAI_REQUEST_ID.fullmatch(text):
        return text
    return scrub(text, [key])[:64]


def parse_json(body: bytes) -> Any:
    """The body's JSON value, or None for a body that is not JSON."""
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
