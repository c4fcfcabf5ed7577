"""The HTTP side: /metrics, the status page, the runbook, health, readiness and reload."""

from __future__ import annotations

import asyncio
import mmap
from collections.abc import Iterable, Iterator

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from exporter.connection_hygiene import Scrape, ScrapeLimiter, plain_server_header
from exporter.gzip_body import accepts_gzip
from exporter.links import DEFAULT_LINKS, RUNBOOK_LANGUAGES, RUNBOOK_PATH, Links
from exporter.metrics import CONTENT_TYPE
from exporter.runbook_pages import load_runbook_pages
from exporter.service import Exporter
from exporter.status_page import status_page

DEFAULT_MAX_REQUESTS = 40  # as promhttp's MaxRequestsInFlight in Go exporters; 0 is no limit
SCRAPE_SLICE_BYTES = 1024 * 1024  # the buffer each scrape in flight holds
SCRAPE_STEP_SECONDS = 0.002  # then other work (probes) gets the loop


def create_app(
    exporter: Exporter,
    telemetry_path: str = "/metrics",
    enable_lifecycle: bool = False,
    middlewares: list[Middleware] | None = None,
    max_requests: int = DEFAULT_MAX_REQUESTS,
    links: Links = DEFAULT_LINKS,
) -> web.Application:
    app = web.Application(middlewares=middlewares or [])
    runbook = load_runbook_pages()  # at start: a runbook missing from the package stops it here
    plain_server_header(app)

    limiter = ScrapeLimiter(max_requests)

    async def metrics(request: web.Request) -> web.StreamResponse:
        # Only the stored results are rendered: a scrape never causes an upstream request.
        scrape = limiter.enter()
        if scrape is None:
            return web.Response(
                status=503, text="Too many concurrent scrapes (--web.max-requests)\n"
            )
        with scrape:
            exposition = exporter.renderer.scrape()
            if accepts_gzip(request.headers.get("Accept-Encoding", "")):
                body = exposition.gzipped()
                gzip_header = {"Content-Encoding": "gzip"}
                return await _stream(request, body, sum(map(len, body)), scrape, gzip_header)
            return await _stream(request, exposition.plain(), exposition.size, scrape)

    async def healthy(_: web.Request) -> web.Response:
        return web.Response(text="OK\n")

    async def ready(_: web.Request) -> web.Response:
        if exporter.store.ready:
            return web.Response(text="Ready\n")
        waiting = exporter.store.unprobed
        return web.Response(status=503, text=f"Not ready: {waiting} keys not probed yet\n")

    async def reload(_: web.Request) -> web.Response:
        if not enable_lifecycle:
            return web.Response(
                status=403, text="Lifecycle API is not enabled (--web.enable-lifecycle)\n"
            )
        ok, message = exporter.reload_or_keep_last_good()
        return web.Response(status=200 if ok else 500, text=message + "\n")

    async def landing(_: web.Request) -> web.Response:
        page = status_page(exporter, telemetry_path, links)
        headers = {**_PAGE_HEADERS, **_NO_STORE}
        return web.Response(text=page, content_type="text/html", headers=headers)

    def runbook_page(language: str) -> Handler:
        body = runbook.page(language)

        async def serve_runbook(_: web.Request) -> web.Response:
            return web.Response(
                body=body, content_type="text/html", charset="utf-8", headers=_PAGE_HEADERS
            )

        return serve_runbook

    app.router.add_get(telemetry_path, metrics)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_post("/-/reload", reload)
    app.router.add_put("/-/reload", reload)
    app.router.add_get("/", landing)
    for language in RUNBOOK_LANGUAGES:
        path = RUNBOOK_PATH if language == "en" else f"{RUNBOOK_PATH}/{language}"
        app.router.add_get(path, runbook_page(language))
    return app


# The status page is live: a cached copy would show a state that is no longer true.
_NO_STORE = {"Cache-Control": "no-store"}
# The HTML pages load nothing and run no script: a browser is told so, so an injected tag would
# do nothing. Headers from --web.config.file's http_server_config.headers replace these.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


async def _stream(
    request: web.Request,
    parts: Iterable[bytes],
    length: int,
    scrape: Scrape,
    encoding: dict[str, str] | None = None,
) -> web.StreamResponse:
    """Send the exposition's blocks (`length` bytes in all) through one buffer of
    SCRAPE_SLICE_BYTES, refilled once the socket took each fill: a scrape holds one buffer, never
    a copy of a body that is tens of megabytes at 10,000 keys; a plain scrape inflates each block
    as it comes to it."""
    response = web.StreamResponse(
        headers={"Content-Type": CONTENT_TYPE, "Vary": "Accept-Encoding", **(encoding or {})}
    )
    response.content_length = length
    await response.prepare(request)
    # TLS may keep what it was given until it encrypts it: it gets copies, not the buffer.
    copies = request.transport is None or request.transport.get_extra_info("sslcontext") is not None
    loop = asyncio.get_running_loop()
    held_since = loop.time()
    # Its own mapping, unmapped when the scrape ends: buffers from the heap left megabytes of
    # it resident, and smaller ones cost a slower scrape (more writes, more waits for the socket).
    buffer = mmap.mmap(-1, SCRAPE_SLICE_BYTES)
    for chunk in _slices(parts, memoryview(buffer)):
        if not await scrape.write(request, response, bytes(chunk) if copies else chunk):
            return response  # the client went away, or stopped reading and was dropped
        # A write that the socket takes whole does not yield: a reader that keeps up got the
        # whole exposition in one step of the loop, and forty of them made probes late by
        # seconds. So a scrape holds the loop about SCRAPE_STEP_SECONDS at a time, even when it
        # is the only one in flight: the requests waiting to start are not in flight yet, and
        # each would take its whole step after it.
        if loop.time() - held_since >= SCRAPE_STEP_SECONDS:
            await asyncio.sleep(0)
            held_since = loop.time()
    await scrape.finish(request, response)
    return response


def _slices(parts: Iterable[bytes], buffer: memoryview) -> Iterator[memoryview]:
    """Small blocks copied into `buffer`, which is yielded each time it is full (the consumer is
    done with it before asking for the next); a block as large as the buffer is yielded as
    views of itself, not copied."""
    size = len(buffer)
    filled = 0
    for part in parts:
        if not part:
            continue
        if len(part) >= size:
            if filled:
                yield buffer[:filled]
                filled = 0
            view = memoryview(part)
            for start in range(0, len(view), size):
                yield view[start : start + size]
            continue
        if filled + len(part) > size:
            yield buffer[:filled]
            filled = 0
        buffer[filled : filled + len(part)] = part
        filled += len(part)
    if filled:
        yield buffer[:filled]
