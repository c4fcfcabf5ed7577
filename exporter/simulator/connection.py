"""Connection-level behaviours shared by REST and Realtime: reading the key, hanging, resetting."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import NoReturn

from aiohttp import web

HANG_SECONDS = 24 * 3600.0  # ends sooner: the handler is cancelled when the client or server goes


def bearer_token(request: web.Request) -> str | None:
    """The key from `Authorization: Bearer <key>`; None when no key was provided.

    A header without the `Bearer ` scheme counts as no key, as it does for OpenAI.
    """
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


async def hang() -> NoReturn:
    """Wait until cancelled (client disconnect or simulator close); a dead end for a handler."""
    await asyncio.sleep(HANG_SECONDS)
    raise ConnectionAbortedError("simulated hang outlived its sleep")


def reset_connection(request: web.Request) -> None:
    """Abort the TCP connection with SO_LINGER 0, so the peer gets an RST instead of a FIN."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed: nothing left to reset
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def drop_connection(request: web.Request) -> None:
    """Close the TCP connection after flushing what was written (a FIN, no WebSocket close)."""
    transport = request.transport
    if transport is not None:
        transport.close()


_HEARTBEAT_S = 20.0  # OpenAI pings about every 20 s


def session_websocket(request: web.Request) -> web.WebSocketResponse | None:
    """The WebSocket a session endpoint answers with, as OpenAI's behaves (pings, a 16 MiB
    frame limit); None when the request is no WebSocket upgrade (the caller says so in its
    own words)."""
    ws = web.WebSocketResponse(heartbeat=_HEARTBEAT_S, timeout=5.0, max_msg_size=16 * 2**20)
    return ws if ws.can_prepare(request).ok else None
