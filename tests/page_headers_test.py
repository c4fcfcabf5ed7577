"""The HTML pages tell the browser they load nothing and run no script; the web config's own
headers still win. Served over a real socket by the exporter's own application."""

from __future__ import annotations

from pathlib import Path

import httpx
from aiohttp import web
from aiohttp.test_utils import TestServer

from exporter.server import create_app
from exporter.service import Exporter
from exporter.webconfig import WebConfigWatcher, install_response_headers

WEB_CONFIG = Path(__file__).parent / "testdata" / "web-config" / "headers.good.yml"

PAGES = ("/", "/runbook", "/runbook/fr")


async def _serve(app: web.Application) -> TestServer:
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


async def test_html_pages_carry_a_strict_policy() -> None:
    server = await _serve(create_app(Exporter(None)))
    try:
        async with httpx.AsyncClient(base_url=str(server.make_url(""))) as client:
            for path in PAGES:
                response = await client.get(path)
                assert response.status_code == 200, path
                policy = response.headers["content-security-policy"]
                assert "default-src 'none'" in policy and "script-src" not in policy, path
                assert response.headers["x-content-type-options"] == "nosniff", path
                assert response.headers["x-frame-options"] == "DENY", path
                assert response.headers["referrer-policy"] == "no-referrer", path
                # Nothing on the page needs more than the policy allows.
                body = response.text.lower()
                assert "<script" not in body and "<link" not in body and "<img" not in body
    finally:
        await server.close()


async def test_configured_headers_replace_the_defaults() -> None:
    app = create_app(Exporter(None))
    install_response_headers(app, WebConfigWatcher(str(WEB_CONFIG)))
    server = await _serve(app)
    try:
        async with httpx.AsyncClient(base_url=str(server.make_url(""))) as client:
            response = await client.get("/")
        assert response.headers["x-frame-options"] == "sameorigin"  # the configured value
        assert response.headers["x-xss-protection"] == "1; mode=block"
        # A blank configured value unsets nothing of ours: the page keeps its policy.
        assert "default-src 'none'" in response.headers["content-security-policy"]
    finally:
        await server.close()
