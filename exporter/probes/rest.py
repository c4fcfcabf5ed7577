"""REST probe: `GET {base_url}/models` through aiohttp's client, timed by phase, classified."""

from __future__ import annotations

import asyncio
import ssl
import time

import aiohttp

from exporter.config import KeyConfig
from exporter.models import watched_models
from exporter.probes.common import USER_AGENT, Target, sendable
from exporter.probes.rest_answer import (
    classify_exception,
    failure,
    from_response,
    read_capped,
    timed_out,
)
from exporter.probes.rest_timing import CLOCK, ProbeClock, probe_tracing
from exporter.probes.tls import tls_context
from exporter.provider import auth_headers
from exporter.result import ProbeResult

FRESH_CONNECTION_EVERY = 10  # reuse keeps probes cheap; a fresh one keeps connect/TLS measured

_NO_AIOHTTP_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=None)  # asyncio.timeout rules


class RestProber:
    """Holds the connection pools; one probe at a time per key is the scheduler's job.

    Probes go through aiohttp, whose C HTTP parser keeps a probe's CPU low enough for one
    process to probe thousands of keys on time. Most share a pool of kept-alive connections;
    every FRESH_CONNECTION_EVERY-th probe of a key (and its first) goes through a session that
    opens a new connection per request and closes it after the answer: connect and tls are
    timed on those probes only.
    """

    def __init__(self) -> None:
        # Per CA file and kind: the session and the TLS context its connector was built with.
        self._sessions: dict[
            tuple[str | None, bool], tuple[ssl.SSLContext, aiohttp.ClientSession]
        ] = {}
        self._retired: list[aiohttp.ClientSession] = []  # their roots were rotated away
        self._probe_count: dict[str, int] = {}
        self._targets: dict[str, Target] = {}

    def _session(self, ca_file: str | None, fresh: bool) -> aiohttp.ClientSession:
        context = tls_context(ca_file)
        built = self._sessions.get((ca_file, fresh))
        if built is not None:
            built_with, session = built
            if built_with is context and not session.closed:
                return session
            # Its probes in flight finish on it; its idle connections time out; closed at the end.
            self._retired.append(session)
        if fresh:
            # Closed after each answer, and resolved every time: connect includes DNS.
            connector = aiohttp.TCPConnector(
                ssl=context, limit=256, force_close=True, use_dns_cache=False
            )
        else:
            connector = aiohttp.TCPConnector(
                ssl=context,
                limit=256,
                limit_per_host=0,
                keepalive_timeout=30,
                enable_cleanup_closed=True,
            )
        session = aiohttp.ClientSession(
            connector=connector,
            trust_env=False,  # the proxy comes from Target, resolved once per URL
            # Probes are independent: no cookie from one key's answer goes with another's.
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=_NO_AIOHTTP_TIMEOUT,
            auto_decompress=True,
            skip_auto_headers={"User-Agent"},
            headers={"User-Agent": USER_AGENT},
            trace_configs=[probe_tracing()],
        )
        self._sessions[ca_file, fresh] = (context, session)
        return session

    async def probe(self, config: KeyConfig, key: str) -> ProbeResult:
        count = self._probe_count.get(config.name, 0)
        # Counted modulo: small ints are shared objects, a growing count is one per key.
        self._probe_count[config.name] = (count + 1) % FRESH_CONNECTION_EVERY
        return await self.probe_on_connection(config, key, fresh=count == 0)

    async def probe_on_connection(self, config: KeyConfig, key: str, *, fresh: bool) -> ProbeResult:
        """One probe on a new connection when `fresh` (connect and tls timed, the connection
        closed after the answer), else on a kept-alive one from the pool."""
        target = self._targets.get(config.base_url)
        if target is None:
            try:
                target = Target.of(f"{config.base_url}/models")
            except ValueError as error:  # a URL yarl cannot read: as if the request failed
                return failure(
                    ProbeClock(), time.perf_counter(), fresh, *classify_exception(error, key)
                )
            self._targets[config.base_url] = target
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


async def probe_rest(
    session: aiohttp.ClientSession,
    config: KeyConfig,
    key: str,
    target: Target,
    *,
    fresh: bool = False,
) -> ProbeResult:
    """One probe through `session`; connect and tls reported when `fresh` (a new connection)."""
    clock = ProbeClock()
    token = CLOCK.set(clock)  # the TLS handshake of a connection opened here stamps it
    started = time.perf_counter()
    try:
        async with asyncio.timeout(config.timeout):
            async with session.get(
                target.url,
                headers=sendable(auth_headers(config, key)),
                allow_redirects=False,
                proxy=target.proxy,
                proxy_auth=target.proxy_auth,
                trace_request_ctx=clock,
            ) as response:
                body, oversize = await read_capped(response.content)
                finished = clock.last = time.perf_counter()
                status, headers = response.status, response.headers
    except TimeoutError as error:
        return timed_out(error, clock, started, fresh, config.timeout, key)
    except (aiohttp.ClientError, OSError, ValueError) as error:
        return failure(clock, started, fresh, *classify_exception(error, key))
    finally:
        CLOCK.reset(token)
    began = clock.sent if clock.sent is not None else started
    if fresh and clock.connect_started is not None:
        began = clock.connect_started
    phases = clock.phases(connection=fresh)
    models = watched_models(config)
    return from_response(status, headers, body, oversize, finished - began, phases, key, models)
