"""The aiohttp client sessions the HTTP probes (REST, inference) send through: one per CA file
and kind of connection, each rebuilt when its CA file's trusted roots change.

A probe asks `HttpSessions.get(ca_file, kind)` for every request: the same session while the
roots it was built with are still the ones `tls.tls_context` returns, a new one once they were
rotated. A replaced session is not closed at once (probes in flight finish on it; its idle
connections time out); every session closes in `aclose`.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Hashable, Sequence

import aiohttp

from exporter.probes.common import USER_AGENT
from exporter.probes.tls import tls_context

# Probes bound their time with asyncio.timeout (the configured timeout); aiohttp's own stays off.
_NO_AIOHTTP_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=None)

# What a kind of session is made of: its connector, from the TLS context of its CA file.
ConnectorFactory = Callable[[ssl.SSLContext], aiohttp.TCPConnector]


class HttpSessions:
    """Client sessions by CA file and kind, as described at the top of this module."""

    def __init__(
        self,
        connectors: dict[Hashable, ConnectorFactory],
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
    ) -> None:
        self._connectors = connectors
        self._trace_configs = list(trace_configs)
        self._sessions: dict[
            tuple[str | None, Hashable], tuple[ssl.SSLContext, aiohttp.ClientSession]
        ] = {}
        self._replaced: list[aiohttp.ClientSession] = []

    def get(self, ca_file: str | None, kind: Hashable) -> aiohttp.ClientSession:
        context = tls_context(ca_file)
        built = self._sessions.get((ca_file, kind))
        if built is not None:
            built_with, session = built
            if built_with is context and not session.closed:
                return session
            self._replaced.append(session)  # its roots were rotated away
        session = aiohttp.ClientSession(
            connector=self._connectors[kind](context),
            trust_env=False,  # the proxy comes from the probe's Target, resolved once per URL
            # Probes are independent: no cookie from one key's answer goes with another's.
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=_NO_AIOHTTP_TIMEOUT,
            auto_decompress=True,
            skip_auto_headers={"User-Agent"},
            headers={"User-Agent": USER_AGENT},
            trace_configs=self._trace_configs or None,
        )
        self._sessions[ca_file, kind] = (context, session)
        return session

    async def aclose(self) -> None:
        for _, session in self._sessions.values():
            await session.close()
        for session in self._replaced:
            await session.close()
        self._sessions.clear()
        self._replaced.clear()
