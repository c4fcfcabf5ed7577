"""REST probe: `GET {base_url}/models`, timed by phase, its answer classified."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import math
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, cast

import aiohttp
import yarl
from aiohttp.client_proto import ResponseHandler
from aiohttp.helpers import get_env_proxy_for_url

from exporter.classify import Result, caused_by_tls, classify_openai_error
from exporter.config import KeyConfig
from exporter.redaction import scrub
from exporter.state import ProbeResult

MAX_BODY_BYTES = 4 * 1024 * 1024  # /models is a few dozen KiB; more is not OpenAI
FRESH_CONNECTION_EVERY = 10  # reuse keeps probes cheap; a fresh one keeps connect/TLS measured
_RATELIMIT_HEADERS = {
    "x-ratelimit-limit-requests": "limit_requests",
    "x-ratelimit-remaining-requests": "remaining_requests",
    "x-ratelimit-limit-tokens": "limit_tokens",
    "x-ratelimit-remaining-tokens": "remaining_tokens",
}


def auth_headers(config: KeyConfig, key: str) -> dict[str, str]:
    # The wire drops whitespace at the end of a header value; some clients refuse to send it.
    headers = {"Authorization": f"Bearer {key}".rstrip(" \t")}
    if config.organization:
        headers["OpenAI-Organization"] = config.organization
    if config.project:
        headers["OpenAI-Project"] = config.project
    return headers


@functools.cache
def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Verification always on; a corporate root is added, never substituted for trust.

    One per CA file for the process, shared by both probes: each holds its own parsed copy of
    the system's roots (about 1 MiB).
    """
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


class _ProbeClock:
    """The moments of one probe, stamped where they happen: in the connector and the protocol.

    The probe's duration runs to the last byte of the body coming in, so the parsing afterwards
    never counts in it. It starts when the probe began connecting if it opened its own
    connection (as any new client of OpenAI would: connect, with DNS, TCP and a proxy's CONNECT,
    and tls are also phases of their own), and on a kept-alive one when the request head left,
    so the wait for a pooled connection never counts either.
    """

    __slots__ = ("connect_started", "first", "last", "sent", "tcp_done", "tls_done", "tls_started")

    def __init__(self) -> None:
        self.connect_started: float | None = None
        self.tcp_done: float | None = None
        self.tls_started: float | None = None
        self.tls_done: float | None = None
        self.sent: float | None = None
        self.first: float | None = None  # first byte of the answer
        self.last: float | None = None  # last byte in so far

    def phases(self, *, connection: bool) -> dict[str, float]:
        phases: dict[str, float] = {}
        if connection and self.connect_started is not None:
            connected = self.tls_started if self.tls_started is not None else self.tcp_done
            if connected is not None:
                phases["connect"] = max(0.0, connected - self.connect_started)
            if self.tls_started is not None and self.tls_done is not None:
                phases["tls"] = max(0.0, self.tls_done - self.tls_started)
        if self.sent is not None and self.first is not None and self.first >= self.sent:
            phases["first_byte"] = self.first - self.sent
            if self.last is not None:
                phases["transfer"] = max(0.0, self.last - self.first)
        return phases


# The clock of the probe running in this task; the connector and the protocol stamp it.
_CLOCK: contextvars.ContextVar[_ProbeClock | None] = contextvars.ContextVar(
    "rest_probe_clock", default=None
)


class _TimedResponseHandler(ResponseHandler):
    """aiohttp's protocol, stamping when the request leaves and when the answer's bytes arrive."""

    _clock: _ProbeClock | None = None

    def start_timeout(self) -> None:
        # aiohttp calls this as it hands the request head of a GET to the transport; a proxy's
        # CONNECT comes through here too, and its answer is not the one timed.
        clock = _CLOCK.get()
        if clock is not None:
            clock.sent, clock.first, clock.last = time.perf_counter(), None, None
        self._clock = clock
        super().start_timeout()

    def data_received(self, data: bytes) -> None:
        clock = self._clock
        if clock is not None and data:
            now = time.perf_counter()  # before parsing and decompressing: arrival, not work
            if clock.first is None:
                clock.first = now
            clock.last = now
        super().data_received(data)


class _TimedConnector(aiohttp.TCPConnector):
    """A TCPConnector that opens TCP first and starts TLS on it after, timing both apart.

    aiohttp itself starts TLS on an open connection for HTTPS through a proxy; the same path
    serves direct connections here, so the handshake is timed alone in both cases.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        timed = functools.partial(_TimedResponseHandler, loop=self._loop)
        self._factory = cast("functools.partial[ResponseHandler]", timed)

    async def _create_connection(
        self,
        req: aiohttp.ClientRequest,
        traces: list[Any],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 (aiohttp's signature)
    ) -> ResponseHandler:
        clock = _CLOCK.get()
        if clock is not None:
            clock.connect_started = time.perf_counter()  # DNS is part of connect
        return await super()._create_connection(req, traces, timeout)

    async def _wrap_create_connection(
        self, *args: Any, **kwargs: Any
    ) -> tuple[asyncio.Transport, ResponseHandler]:
        sslcontext = kwargs.pop("ssl", None)
        kwargs.pop("server_hostname", None)
        # The TCP leg needs no HTTP protocol: TLS gets a new one, as in aiohttp's proxy path.
        factory = args[0] if sslcontext is None else asyncio.Protocol
        transport, protocol = await super()._wrap_create_connection(factory, *args[1:], **kwargs)
        clock = _CLOCK.get()
        if clock is not None:
            clock.tcp_done = time.perf_counter()
        if sslcontext is None:
            return transport, protocol
        client_error = kwargs.get("client_error", aiohttp.ClientConnectorError)
        tls_transport, tls_protocol = await self._start_tls_connection(
            transport, kwargs["req"], kwargs["timeout"], client_error
        )
        return tls_transport, tls_protocol  # type: ignore[return-value]

    async def _start_tls_connection(
        self,
        underlying_transport: asyncio.Transport,
        req: aiohttp.ClientRequest,
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 (aiohttp's signature)
        client_error: type[Exception] = aiohttp.ClientConnectorError,
    ) -> tuple[asyncio.BaseTransport, ResponseHandler]:
        clock = _CLOCK.get()
        if clock is not None:
            clock.tls_started = time.perf_counter()
        connection = await super()._start_tls_connection(
            underlying_transport, req, timeout, client_error
        )
        if clock is not None:
            clock.tls_done = time.perf_counter()
        return connection


_NO_AIOHTTP_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=None)  # asyncio.timeout rules


class RestProber:
    """Holds the connection pools; one probe at a time per key is the scheduler's job.

    Probes go through aiohttp, whose C HTTP parser costs a fifth of httpx's CPU per request,
    which is what lets one process probe thousands of keys on time. Most share a pool of
    kept-alive connections; every FRESH_CONNECTION_EVERY-th probe of a key opens its own, whose
    TCP connect and TLS handshake are timed apart: those phases come from these probes.
    """

    def __init__(self) -> None:
        self._sessions: dict[tuple[str | None, bool], aiohttp.ClientSession] = {}
        self._probe_count: dict[str, int] = {}
        self._targets: dict[str, _Target] = {}

    def _session(self, ca_file: str | None, fresh: bool) -> aiohttp.ClientSession:
        session = self._sessions.get((ca_file, fresh))
        if session is None or session.closed:
            if fresh:
                # Closed after each answer, and resolved every time: connect includes DNS.
                connector = _TimedConnector(
                    ssl=tls_context(ca_file), limit=256, force_close=True, use_dns_cache=False
                )
            else:
                connector = _TimedConnector(
                    ssl=tls_context(ca_file),
                    limit=256,
                    limit_per_host=0,
                    keepalive_timeout=30,
                    enable_cleanup_closed=True,
                )
            session = aiohttp.ClientSession(
                connector=connector,
                trust_env=False,  # the proxy comes from _Target, resolved once per URL
                # Probes are independent: no cookie from one key's answer goes with another's.
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=_NO_AIOHTTP_TIMEOUT,
                auto_decompress=True,
                skip_auto_headers={"User-Agent"},
                headers={"User-Agent": "openai-key-exporter"},
            )
            self._sessions[ca_file, fresh] = session
        return session

    async def probe(self, config: KeyConfig, key: str) -> ProbeResult:
        count = self._probe_count.get(config.name, 0)
        # Counted modulo: small ints are shared objects, a growing count is one per key.
        self._probe_count[config.name] = (count + 1) % FRESH_CONNECTION_EVERY
        return await self.probe_through(config, key, fresh=count == 0)

    async def probe_through(self, config: KeyConfig, key: str, *, fresh: bool) -> ProbeResult:
        """One probe on a connection of its own (connect and TLS timed), or through the pool."""
        target = self._targets.get(config.base_url)
        if target is None:
            target = self._targets[config.base_url] = _Target.of(config.base_url)
        session = self._session(config.tls_ca_file, fresh)
        return await probe_rest(session, config, key, target, fresh=fresh)

    def forget(self, name: str) -> None:
        self._probe_count.pop(name, None)

    async def aclose(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()


@dataclass(frozen=True, slots=True)
class _Target:
    """The URL a probe asks for, parsed once, and the proxy the environment names for it."""

    url: yarl.URL
    proxy: yarl.URL | None = None
    proxy_auth: aiohttp.BasicAuth | None = None

    @classmethod
    def of(cls, base_url: str) -> _Target:
        url = yarl.URL(f"{base_url}/models")
        # HTTP(S)_PROXY and NO_PROXY, read as websockets reads them, once per URL: aiohttp's
        # trust_env would read the environment and ~/.netrc in a thread for every request.
        try:
            proxy, proxy_auth = get_env_proxy_for_url(url)
        except LookupError:
            return cls(url)
        return cls(url, proxy, proxy_auth)


async def probe_rest(
    session: aiohttp.ClientSession,
    config: KeyConfig,
    key: str,
    target: _Target | None = None,
    *,
    fresh: bool = False,
) -> ProbeResult:
    """One probe through `session`; connect and tls reported when `fresh` (its own connection)."""
    if target is None:
        target = _Target.of(config.base_url)
    clock = _ProbeClock()
    token = _CLOCK.set(clock)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(config.timeout):
            async with session.get(
                target.url,
                headers=auth_headers(config, key),
                allow_redirects=False,
                proxy=target.proxy,
                proxy_auth=target.proxy_auth,
            ) as response:
                body, oversize = await _read_capped(response.content)
                status, headers = response.status, response.headers
    except TimeoutError:
        return _failure(
            clock, started, fresh, Result.TIMEOUT, f"no answer within {config.timeout:g}s"
        )
    except (aiohttp.ClientError, OSError, ValueError) as error:
        return _failure(clock, started, fresh, *_classify_exception(error, key))
    finally:
        _CLOCK.reset(token)
    finished = clock.last if clock.last is not None else time.perf_counter()
    began = clock.sent if clock.sent is not None else started
    if fresh and clock.connect_started is not None:
        began = clock.connect_started
    return _from_response(
        status, headers, body, oversize, finished - began, clock.phases(connection=fresh), key
    )


async def _read_capped(stream: aiohttp.StreamReader) -> tuple[bytes, bool]:
    # Decoded bytes: a proxy may compress whatever we ask for, and the cap then also bounds
    # what a small compressed body expands to.
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.readany():  # b"" at the end
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return b"", True
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks), False


def _failure(
    clock: _ProbeClock, started: float, fresh: bool, result: Result, message: str
) -> ProbeResult:
    # The whole attempt, from before any connection: a timeout then reads as the timeout.
    return ProbeResult(
        probe="rest",
        result=result,
        duration=time.perf_counter() - started,
        phases=clock.phases(connection=fresh),
        error_code=result.value,
        message=message,
    )


def _classify_exception(error: BaseException, key: str) -> tuple[Result, str]:
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
