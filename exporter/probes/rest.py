"""REST probe: `GET {base_url}/models` through aiohttp's client, timed by phase, classified."""

from __future__ import annotations

import asyncio
import ssl
import time

import aiohttp

from exporter.config import KeyConfig
from exporter.models import watched_models
from exporter.probes.common import Target, sendable
from exporter.probes.http_sessions import HttpSessions
from exporter.probes.rest_answer import (
    classify_exception,
    failure,
    from_response,
    read_capped,
    timed_out,
)
from exporter.probes.rest_timing import CLOCK, ProbeClock, probe_tracing
from exporter.provider import auth_headers
from exporter.result import ProbeResult

FRESH_CONNECTION_EVERY = 10  # reuse keeps probes cheap; a fresh one keeps connect/TLS measured


def _fresh_connector(context: ssl.SSLContext) -> aiohttp.TCPConnector:
    # Closed after each answer, and resolved every time: connect includes DNS.
    return aiohttp.TCPConnector(ssl=context, limit=256, force_close=True, use_dns_cache=False)


def _pooled_connector(context: ssl.SSLContext) -> aiohttp.TCPConnector:
    return aiohttp.TCPConnector(
        ssl=context, limit=256, limit_per_host=0, keepalive_timeout=30, enable_cleanup_closed=True
    )


class RestProber:
    """Holds the connection pools; one probe at a time per key is the scheduler's job.

    Probes go through aiohttp, whose C HTTP parser keeps a probe's CPU low enough for one
    process to probe thousands of keys on time. Most share a pool of kept-alive connections;
    every FRESH_CONNECTION_EVERY-th probe of a key (and its first) goes through a session that
    opens a new connection per request and closes it after the answer: connect and tls are
    timed on those probes only.
    """

    def __init__(self) -> None:
        # Sessions by CA file and `fresh`.
        self._sessions = HttpSessions(
            {True: _fresh_connector, False: _pooled_connector}, [probe_tracing()]
        )
        self._probe_count: dict[str, int] = {}
        self._targets: dict[str, Target] = {}

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
        session = self._sessions.get(config.tls_ca_file, fresh)
        return await probe_rest(session, config, key, target, fresh=fresh)

    def forget(self, name: str) -> None:
        self._probe_count.pop(name, None)

    async def aclose(self) -> None:
        await self._sessions.aclose()


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
    duration = clock.duration(finished, started, connection=fresh)
    phases = clock.phases(connection=fresh)
    models = watched_models(config)
    return from_response(status, headers, body, oversize, duration, phases, key, models)
