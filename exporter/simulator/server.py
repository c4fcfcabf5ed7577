"""The simulator's HTTP server: REST, Realtime, GPT-Live and the /_sim control API on one port."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import socket
import ssl
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from aiohttp import web

from exporter.simulator import admin, azure, live, realtime, responses, rest
from exporter.simulator.scenarios import SCENARIOS
from exporter.simulator.state import SimulatorState, key_id
from exporter.simulator.timing import ARRIVALS, ArrivalClock

log = logging.getLogger("exporter.simulator")

_CLOSE_GRACE_S = 1.0  # how long close() lets cancelled handlers finish before moving on

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _get_stats(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[rest.STATE].stats())


async def _post_reset(request: web.Request) -> web.StreamResponse:
    request.app[rest.STATE].reset()
    return web.Response(status=204)


def _bad_request(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


async def _post_override(request: web.Request) -> web.StreamResponse:
    try:
        body = await request.json()
    except json.JSONDecodeError:
        return _bad_request('body must be JSON: {"key": "...", "scenario": "...", "arg": null}')
    if not isinstance(body, dict):
        return _bad_request("body must be a JSON object")
    key, scenario, arg = body.get("key"), body.get("scenario"), body.get("arg")
    if not isinstance(key, str) or not key:
        return _bad_request("key must be the full key, a non-empty string")
    if scenario is not None and scenario not in SCENARIOS:
        return _bad_request(f"scenario {scenario!r} is unknown (known: {', '.join(SCENARIOS)})")
    if arg is not None and (not isinstance(arg, int) or isinstance(arg, bool) or arg < 0):
        return _bad_request("arg must be null or an integer >= 0")
    request.app[rest.STATE].set_override(key, scenario, arg)
    log.info("override: key %s now behaves as %s", key_id(key), scenario or "its own text")
    return web.json_response({"key_id": key_id(key), "scenario": scenario, "arg": arg})


async def _delete_overrides(request: web.Request) -> web.StreamResponse:
    request.app[rest.STATE].clear_overrides()
    return web.Response(status=204)


async def _edge_headers(request: web.Request, response: web.StreamResponse) -> None:
    # api.openai.com sits behind Cloudflare; aiohttp's own Server header would give us away.
    response.headers["Server"] = "cloudflare"
    response.headers.setdefault("cf-ray", f"{secrets.token_hex(8)}-CDG")


class RunningSimulator:
    """A simulator listening on a port; close() stops it, hung connections included."""

    def __init__(
        self,
        runner: web.AppRunner,
        listener: asyncio.Server,
        state: SimulatorState,
        host: str,
        port: int,
        tls: bool,
        handlers: set[asyncio.Task[Any]],
    ) -> None:
        self._runner = runner
        self._listener = listener
        self._state = state
        self._handlers = handlers
        self.host = host
        self.port = port
        url_host = f"[{host}]" if ":" in host else host
        self.base_url = f"{'https' if tls else 'http'}://{url_host}:{port}/v1"
        self.realtime_url = f"{'wss' if tls else 'ws'}://{url_host}:{port}/v1/realtime"
        self.live_url = f"{'wss' if tls else 'ws'}://{url_host}:{port}/v1/live/sessions"
        # An Azure OpenAI resource's base_url (exporter/simulator/azure.py)
        self.azure_base_url = f"{'https' if tls else 'http'}://{url_host}:{port}/openai/v1"
        self._closed = False
        self.admin: admin.AdminDirectory = runner.app[admin.ADMIN]  # the Admin API's organization

    def stats(self) -> dict[str, Any]:
        """The same document as GET /_sim/stats."""
        return self._state.stats()

    def set_override(self, key: str, scenario: str | None, arg: int | None = None) -> None:
        """From now on `key` behaves as `scenario` (None: as its own text says)."""
        self._state.set_override(key, scenario, arg)

    def clear_overrides(self) -> None:
        """Every key behaves as its own text says again (DELETE /_sim/override)."""
        self._state.clear_overrides()

    def reset(self) -> None:
        """Zero the counters (POST /_sim/reset); overrides stay."""
        self._state.reset()

    def recent_rest_requests(self, key: str, window_s: float) -> int:
        """How many REST requests `key` made in the last `window_s` seconds."""
        return self._state.recent_rest_requests(key, window_s)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        handlers = [task for task in self._handlers if not task.done()]
        for task in handlers:
            task.cancel()
        if handlers:
            await asyncio.wait(handlers, timeout=_CLOSE_GRACE_S)
        self._listener.close()
        await self._runner.cleanup()

    async def __aenter__(self) -> RunningSimulator:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


def build_app(state: SimulatorState, handlers: set[asyncio.Task[Any]]) -> web.Application:
    @web.middleware
    async def track_handler(request: web.Request, handler: Handler) -> web.StreamResponse:
        # Every handler is tracked so close() can cancel the ones a scenario left hanging.
        task = asyncio.current_task()
        if task is not None:
            handlers.add(task)
        try:
            return await handler(request)
        finally:
            if task is not None:
                handlers.discard(task)

    app = web.Application(middlewares=[track_handler])
    app.on_response_prepare.append(_edge_headers)
    app[rest.STATE] = state
    app[admin.ADMIN] = admin.AdminDirectory()
    app[ARRIVALS] = {}
    app.router.add_get("/v1/models", rest.handle_models)
    app.router.add_get("/v1/models/{model}", rest.handle_models)
    app.router.add_get("/v1/realtime", realtime.handle_realtime)
    app.router.add_post("/v1/responses", responses.handle_responses)
    app.router.add_get("/v1/live/sessions", live.handle_live)
    app.router.add_get("/v1/organization/projects", admin.handle_projects)
    app.router.add_get("/v1/organization/projects/{project_id}/api_keys", admin.handle_api_keys)
    app.router.add_route("*", "/v1/{tail:.*}", rest.handle_unknown_path)
    azure.add_routes(app)  # an Azure OpenAI resource's paths: /openai/v1/...
    app.router.add_get("/_sim/stats", _get_stats)
    app.router.add_post("/_sim/reset", _post_reset)
    app.router.add_post("/_sim/override", _post_override)
    app.router.add_delete("/_sim/override", _delete_overrides)
    app.router.add_post("/_sim/admin/keys", admin.post_admin_key)
    return app


async def start_simulator(
    host: str = "127.0.0.1", port: int = 0, ssl_context: ssl.SSLContext | None = None
) -> RunningSimulator:
    """Start the simulator on host:port (0: a free port) and return once it accepts connections."""
    state = SimulatorState()
    handlers: set[asyncio.Task[Any]] = set()
    app = build_app(state, handlers)
    runner = web.AppRunner(
        app,
        handler_cancellation=True,  # a hung handler ends when its client goes away
        shutdown_timeout=_CLOSE_GRACE_S,
        access_log=None,
    )
    await runner.setup()
    protocols, arrivals = runner.server, app[ARRIVALS]
    assert protocols is not None
    try:
        sock = socket.create_server((host, port), reuse_port=False)
        sock.setblocking(False)
        # Our own listener instead of a web.SockSite, so that every connection's bytes pass an
        # ArrivalClock on their way to aiohttp: a timed scenario counts from their arrival.
        listener = await asyncio.get_running_loop().create_server(
            lambda: ArrivalClock(protocols(), arrivals), sock=sock, ssl=ssl_context, backlog=128
        )
    except BaseException:
        await runner.cleanup()
        raise
    bound_port = sock.getsockname()[1]
    url_host = "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host
    tls = ssl_context is not None
    return RunningSimulator(runner, listener, state, url_host, bound_port, tls, handlers)


async def serve_forever(host: str, port: int, ssl_context: ssl.SSLContext | None) -> None:
    """Run the simulator until cancelled (the CLI's `simulator` command)."""
    simulator = await start_simulator(host, port, ssl_context)
    log.info(
        "OpenAI simulator listening: REST %s, Realtime %s, GPT-Live %s",
        simulator.base_url,
        simulator.realtime_url,
        simulator.live_url,
    )
    try:
        await asyncio.Event().wait()
    finally:
        with contextlib.suppress(Exception):
            await simulator.close()
