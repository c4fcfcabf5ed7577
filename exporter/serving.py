"""Serving a running exporter over HTTP until a signal stops it: the one loop the exporter and
the demo share (the command line and the demo both import it; it imports neither)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal

from aiohttp import web

from exporter.config import Config
from exporter.connection_hygiene import runner_options
from exporter.server import DEFAULT_MAX_REQUESTS, create_app
from exporter.service import Exporter
from exporter.webconfig import (
    WebConfigWatcher,
    auth_middleware,
    install_response_headers,
    ssl_context,
)

log = logging.getLogger("exporter.cli")  # the name operators already filter on


async def serve_until_stopped(
    exporter: Exporter,
    listen_address: tuple[str | None, int],
    telemetry_path: str = "/metrics",
    enable_lifecycle: bool = False,
    web_config: WebConfigWatcher | None = None,
    max_requests: int = DEFAULT_MAX_REQUESTS,
    pending: Config | None = None,
) -> None:
    """Serve the exporter until SIGTERM or SIGINT; SIGHUP reloads its configuration.

    `pending` is a configuration read but not yet applied (an exporter the demo loaded has none).
    """
    host, port = listen_address
    watcher = web_config or WebConfigWatcher(None)
    app = create_app(
        exporter,
        telemetry_path,
        enable_lifecycle,
        [auth_middleware(watcher)],
        max_requests,
        exporter.links,
    )
    install_response_headers(app, watcher)
    runner = web.AppRunner(app, handle_signals=False, **runner_options())
    await runner.setup()
    site = web.TCPSite(
        runner, host=host, port=port, reuse_address=True, ssl_context=ssl_context(watcher.config)
    )
    await site.start()
    if pending is not None:
        # /-/healthy answers from here on; /-/ready once every key has been probed.
        exporter.switch_to(pending)
        exporter.restore()  # a restart carries on with the results it had, failures counted
    # What exists now (configuration, keys' state, imported modules) lives as long as the
    # process: frozen, a full garbage collection no longer walks it, so it never stalls probes.
    gc.freeze()
    exporter.start()
    log.info("listening", extra={"fields": {"address": f"{host or ''}:{port}"}})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, exporter.reload_or_keep_last_good)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        with contextlib.suppress(Exception):
            await exporter.stop()
        await runner.cleanup()
