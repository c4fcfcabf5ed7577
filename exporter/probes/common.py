"""What every probe of OpenAI shares: who it says it is, what a header may carry, the proxy it goes by
(the key's own headers: exporter/provider.py)."""

from __future__ import annotations

import re
import urllib.request
from dataclasses import dataclass

import aiohttp
import yarl

USER_AGENT = "openai-key-exporter"
# Control characters but tab, and DEL: what aiohttp refuses in a header (RFC 9110 5.5).
_FORBIDDEN_IN_HEADERS = re.compile("[\x00-\x08\x0a-\x1f\x7f]")


def sendable(headers: dict[str, str]) -> dict[str, str]:
    """`headers`, or ValueError before any connection opens: aiohttp would connect first."""
    for name, value in headers.items():
        if _FORBIDDEN_IN_HEADERS.search(value):
            raise ValueError(f"the {name} header holds a control character: it cannot be sent")
    return headers


@dataclass(frozen=True, slots=True)
class Target:
    """The URL an HTTP probe asks for, parsed once, and the proxy the environment names for it."""

    url: yarl.URL
    proxy: yarl.URL | None = None
    proxy_auth: aiohttp.BasicAuth | None = None

    @classmethod
    def of(cls, url: str) -> Target:
        """Raises ValueError for a URL yarl cannot read."""
        parsed = yarl.URL(url)
        # HTTP(S)_PROXY and NO_PROXY, read as websockets reads them (urllib), once per URL:
        # aiohttp's trust_env would read the environment and ~/.netrc in a thread per request.
        host = parsed.raw_host
        if host is None or urllib.request.proxy_bypass(host):
            return cls(parsed)
        named = urllib.request.getproxies().get(parsed.scheme)
        if not named:
            return cls(parsed)
        proxy = yarl.URL(named)
        if proxy.scheme != "http":  # aiohttp speaks to a proxy in plain HTTP only
            return cls(parsed)
        auth = aiohttp.BasicAuth.from_url(proxy)
        return cls(parsed, proxy.with_user(None), auth)
