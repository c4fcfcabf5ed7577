"""An HTTP 403 is read by what its body proves (issue 22): `Missing scopes:` is a permission
problem, the region code or text a region refusal; a bare `Forbidden.` (a proxy, a firewall,
an undocumented refusal) is `other` with its status, and the key is not judged."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from exporter.classify import RESULTS, Result, Validity
from exporter.config import KeyConfig
from exporter.probes.realtime import RealtimeProber
from exporter.simulator import make_key
from tests.support.key_config import key_config
from tests.support.loopback_app import served_on_loopback
from tests.support.rest_paths import rest_both_ways


def envelope(message: str, error_type: str | None, code: str | None) -> str:
    return json.dumps(
        {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    )


BODIES = {
    "bare_forbidden": ("application/json", envelope("Forbidden.", None, None)),
    "typed_forbidden": ("application/json", envelope("Forbidden.", "invalid_request_error", None)),
    "missing_scopes": (
        "application/json",
        envelope(
            "You have insufficient permissions for this operation. Missing scopes: api.model.read.",
            "invalid_request_error",
            None,
        ),
    ),
    "region_text": (
        "application/json",
        envelope("Country, region, or territory not supported", "request_forbidden", None),
    ),
    "html": ("text/html", "<html><body><h1>403 Forbidden</h1></body></html>"),
}
EXPECTED = {
    "bare_forbidden": Result.OTHER,
    "typed_forbidden": Result.OTHER,
    "missing_scopes": Result.INSUFFICIENT_PERMISSIONS,
    "region_text": Result.UNSUPPORTED_REGION,
    "html": Result.OTHER,
}


@pytest.fixture
async def forbidding() -> AsyncIterator[str]:
    """A server answering 403 with the body its first path segment names, REST and upgrade."""

    async def answer(request: web.Request) -> web.Response:
        content_type, body = BODIES[request.match_info["case"]]
        return web.Response(status=403, text=body, content_type=content_type)

    app = web.Application()
    app.router.add_get("/{case}/v1/{tail:.*}", answer)
    async with served_on_loopback(app) as port:
        yield f"http://127.0.0.1:{port}"


def web_config(base_url: str) -> KeyConfig:
    return key_config("web", base_url=base_url, timeout=5.0, probes=("rest", "realtime"))


@pytest.mark.parametrize("case", BODIES)
async def test_a_403_is_read_by_what_its_body_proves(forbidding: str, case: str) -> None:
    config = web_config(f"{forbidding}/{case}/v1")
    key = make_key("ok")
    results = [*await rest_both_ways(config, key), await RealtimeProber().probe(config, key)]
    for result in results:
        assert result.result is EXPECTED[case], result
        assert result.http_status == 403
        if result.result is Result.OTHER:
            assert "403" in result.message, result.message


def test_other_says_nothing_about_the_key() -> None:
    assert RESULTS[Result.OTHER].validity is Validity.UNKNOWN
