"""Authentication and headers on every request: basic auth against bcrypt hashes (unknown users
cost as much as known ones), the client certificate SAN check, and the configured headers."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import ipaddress
import secrets
from collections import OrderedDict
from collections.abc import Mapping

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from exporter.webconfig.parsing import bcrypt_cost
from exporter.webconfig.watcher import WebConfigWatcher

BASIC_AUTH_REALM = "openai-key-exporter"
# A bcrypt hash of "fakepassword" (exporter-toolkit's), checked for unknown users so that they
# cost as much as known ones; at other costs it is made once, the first time it is needed.
_UNKNOWN_USER_HASH = b"$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi"
_UNKNOWN_USER_PASSWORD = b"fakepassword"


class _CredentialCache:
    """Remembers credentials bcrypt accepted, so a scrape costs a hash, not a bcrypt run.

    Keyed by sha256 of username and stored bcrypt hash (a changed hash misses the cache); the
    value is an HMAC of the password under a per-process random key, compared in constant time.
    """

    def __init__(self, max_entries: int = 256) -> None:
        self._max_entries = max_entries
        self._secret = secrets.token_bytes(32)
        self._entries: OrderedDict[bytes, bytes] = OrderedDict()

    @staticmethod
    def _slot(username: str, hashed: str) -> bytes:
        user = username.encode()
        return hashlib.sha256(len(user).to_bytes(8, "big") + user + hashed.encode()).digest()

    def _fingerprint(self, password: bytes) -> bytes:
        return hmac.new(self._secret, password, hashlib.sha256).digest()

    def contains(self, username: str, hashed: str, password: bytes) -> bool:
        slot = self._slot(username, hashed)
        expected = self._entries.get(slot)
        if expected is None or not hmac.compare_digest(expected, self._fingerprint(password)):
            return False
        self._entries.move_to_end(slot)
        return True

    def add(self, username: str, hashed: str, password: bytes) -> None:
        slot = self._slot(username, hashed)
        self._entries[slot] = self._fingerprint(password)
        self._entries.move_to_end(slot)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)


def _bcrypt_matches(password: bytes, hashed: bytes) -> bool:
    import bcrypt  # here: only basic auth needs it; without it, it is never loaded

    try:
        return bool(bcrypt.checkpw(password, hashed))
    except ValueError:  # a hash Go accepts but Python's bcrypt cannot read, or > 72 bytes
        return False


def _basic_credentials(header: str | None) -> tuple[str, bytes] | None:
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
        username, separator, password = decoded.partition(b":")
        if not separator:
            return None
        return username.decode("utf-8"), password
    except (binascii.Error, ValueError):
        return None


def _usual_cost(users: Mapping[str, str]) -> int:
    """The cost most configured hashes have (the higher on a tie): an unknown user's check
    takes as long as a wrong password for most users, so it does not tell who exists."""
    counts: dict[int, int] = {}
    for hashed in users.values():
        cost = bcrypt_cost(hashed)
        counts[cost] = counts.get(cost, 0) + 1
    return max(counts, key=lambda cost: (counts[cost], cost)) if counts else 10


def _stand_in_hash(cost: int) -> bytes:
    import bcrypt

    return bytes(bcrypt.hashpw(_UNKNOWN_USER_PASSWORD, bcrypt.gensalt(rounds=cost)))


class _BasicAuthenticator:
    def __init__(self) -> None:
        self._cache = _CredentialCache()
        # One bcrypt at a time, as in exporter-toolkit: wrong passwords cannot eat every core.
        self._bcrypt_lock = asyncio.Lock()
        self._stand_ins: dict[int, bytes] = {10: _UNKNOWN_USER_HASH}
        self._cost_of: tuple[Mapping[str, str], int] | None = None  # users -> their usual cost

    async def _unknown_user_hash(self, users: Mapping[str, str]) -> bytes:
        """Called under the bcrypt lock."""
        if self._cost_of is None or self._cost_of[0] is not users:  # a reload makes new users
            self._cost_of = (users, _usual_cost(users))
        cost = self._cost_of[1]
        if cost not in self._stand_ins:
            self._stand_ins[cost] = await asyncio.to_thread(_stand_in_hash, cost)
        return self._stand_ins[cost]

    async def allows(self, header: str | None, users: Mapping[str, str]) -> bool:
        credentials = _basic_credentials(header)
        if credentials is None:
            return False
        username, password = credentials
        hashed = users.get(username)
        if hashed is not None and self._cache.contains(username, hashed, password):
            return True
        async with self._bcrypt_lock:
            if hashed is not None and self._cache.contains(username, hashed, password):
                return True
            if hashed is not None:
                target = hashed.encode()
            else:
                target = await self._unknown_user_hash(users)
            matches = await asyncio.to_thread(_bcrypt_matches, password, target)
        if matches and hashed is not None:
            self._cache.add(username, hashed, password)
            return True
        return False


def _client_san_allowed(request: web.Request, allowed: tuple[str, ...]) -> bool:
    transport = request.transport
    peer = transport.get_extra_info("peercert") if transport is not None else None
    if not peer:
        return False
    for kind, value in peer.get("subjectAltName", ()):
        if kind == "IP Address":
            try:
                value = str(ipaddress.ip_address(value.strip()))  # Go's net.IP.String() form
            except ValueError:
                continue
        if kind in ("DNS", "email", "IP Address", "URI") and value in allowed:
            return True
    return False


def _add_headers(response: web.StreamResponse, headers: tuple[tuple[str, str], ...]) -> None:
    for name, value in headers:
        if value:  # exporter-toolkit documents a blank value as "unset"
            response.headers[name] = value


def install_response_headers(app: web.Application, watcher: WebConfigWatcher) -> None:
    """Add `http_server_config.headers` to every response `app` sends.

    On aiohttp's on_response_prepare signal, not in a middleware: a streamed response (/metrics)
    sends its headers inside the handler, before a middleware sees it, and error pages made
    from an exception are prepared after every middleware has returned. The signal runs for
    each of them just before the headers go out.
    """

    async def add_configured_headers(_: web.Request, response: web.StreamResponse) -> None:
        _add_headers(response, watcher.config.http_server_config.headers)

    app.on_response_prepare.append(add_configured_headers)


def auth_middleware(
    watcher: WebConfigWatcher, open_paths: frozenset[str] = frozenset({"/-/healthy"})
) -> Middleware:
    """Basic auth and the client certificate SAN check from the current web config (the
    configured headers come from install_response_headers).

    Paths in open_paths skip basic auth (not the SAN check, which Go does in the handshake).
    """
    authenticator = _BasicAuthenticator()

    @web.middleware
    async def web_config_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        config = watcher.config
        tls = config.tls_server_config
        response: web.StreamResponse
        if (
            tls is not None
            and tls.client_allowed_sans is not None
            and not _client_san_allowed(request, tls.client_allowed_sans)
        ):
            response = web.Response(
                status=403, text="403 Forbidden: client certificate SAN not allowed\n"
            )
        elif (
            config.basic_auth_users
            and request.path not in open_paths
            and not await authenticator.allows(
                request.headers.get("Authorization"), config.basic_auth_users
            )
        ):
            response = web.Response(
                status=401,
                text="401 Unauthorized\n",
                headers={"WWW-Authenticate": f'Basic realm="{BASIC_AUTH_REALM}", charset="UTF-8"'},
            )
        else:
            response = await handler(request)
        return response

    return web_config_middleware
