"""REST probe: `GET {base_url}/models`, timed by phase, its answer classified."""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from dataclasses import dataclass
from typing import Any, cast

import aiohttp
import yarl
from aiohttp.client_proto import ResponseHandler
from aiohttp.helpers import get_env_proxy_for_url

from exporter.config import KeyConfig
from exporter.models import watched_models
from exporter.probes.own_connection import probe_on_own_connection
from exporter.probes.rest_answer import (
    classify_exception,
    failure,
    from_response,
    read_capped,
    timed_out,
)
from exporter.probes.rest_timing import CLOCK, ProbeClock, TimedResponseHandler
from exporter.probes.tls import tls_context
from exporter.provider import auth_headers
from exporter.result import ProbeResult

FRESH_CONNECTION_EVERY = 10  # reuse keeps probes cheap; a fresh one keeps connect/TLS measured
USER_AGENT = "openai-key-exporter"


class _TimedConnector(aiohttp.TCPConnector):
    """A TCPConnector that opens TCP first and starts TLS on it after, timing both apart.

    aiohttp itself starts TLS on an open connection for HTTPS through a proxy; the same path
    serves direct connections here, so the handshake is timed alone in both cases.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        timed = functools.partial(TimedResponseHandler, loop=self._loop)
        self._factory = cast("functools.partial[ResponseHandler]", timed)

    async def _create_connection(
        self,
        req: aiohttp.ClientRequest,
        traces: list[Any],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 (aiohttp's signature)
    ) -> ResponseHandler:
        clock = CLOCK.get()
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
        clock = CLOCK.get()
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
        clock = CLOCK.get()
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
    TCP connect and TLS handshake are timed apart: those phases come from these probes. Such a
    probe goes through own_connection.py, or through aiohttp's client when a proxy carries it.
    """

    def __init__(self) -> None:
        # Per CA file and kind: the session and the TLS context its connector was built with.
        self._sessions: dict[
            tuple[str | None, bool], tuple[ssl.SSLContext, aiohttp.ClientSession]
        ] = {}
        self._retired: list[aiohttp.ClientSession] = []  # their roots were rotated away
        self._probe_count: dict[str, int] = {}
        self._targets: dict[str, _Target] = {}

    def _session(self, ca_file: str | None, fresh: bool) -> aiohttp.ClientSession:
        context = tls_context(ca_file)
        held = self._sessions.get((ca_file, fresh))
        if held is not None and held[0] is context and not held[1].closed:
            return held[1]
        if held is not None:
            # Its probes in flight finish on it; its idle connections time out; closed at the end.
            self._retired.append(held[1])
        if fresh:
            # Closed after each answer, and resolved every time: connect includes DNS.
            connector = _TimedConnector(
                ssl=context, limit=256, force_close=True, use_dns_cache=False
            )
        else:
            connector = _TimedConnector(
                ssl=context,
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
            headers={"User-Agent": USER_AGENT},
        )
        self._sessions[ca_file, fresh] = (context, session)
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
            try:
                target = _Target.of(config.base_url)
            except ValueError as error:  # a URL yarl cannot read: as if the request failed
                return failure(
                    ProbeClock(), time.perf_counter(), fresh, *classify_exception(error, key)
                )
            self._targets[config.base_url] = target
        if fresh and target.proxy is None:
            context = tls_context(config.tls_ca_file) if target.url.scheme == "https" else None
            headers = {"User-Agent": USER_AGENT, **auth_headers(config, key)}
            return await probe_on_own_connection(
                target.url, headers, context, config.timeout, key, watched_models(config)
            )
        session = self._session(config.tls_ca_file, fresh)
        return await probe_rest(session, config, key, target, fresh=fresh)

    def forget(self, name: str) -> None:
        self._probe_count.pop(name, None)

    async def aclose(self) -> None:
        for _, session in self._sessions.values():
            await session.close()
        for session in self._retired:
            await session.close()
        self._sessions.clear()
        self._retired.clear()


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
    clock = ProbeClock()
    token = CLOCK.set(clock)
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
                body, oversize = await read_capped(response.content)
                status, headers = response.status, response.headers
    except TimeoutError as error:
        return timed_out(error, clock, started, fresh, config.timeout, key)
    except (aiohttp.ClientError, OSError, ValueError) as error:
        return failure(clock, started, fresh, *classify_exception(error, key))
    finally:
        CLOCK.reset(token)
    finished = clock.last if clock.last is not None else time.perf_counter()
    began = clock.sent if clock.sent is not None else started
    if fresh and clock.connect_started is not None:
        began = clock.connect_started
    phases = clock.phases(connection=fresh)
    models = watched_models(config)
    return from_response(status, headers, body, oversize, finished - began, phases, key, models)
