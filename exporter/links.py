"""Where people reach this exporter (`--web.external-url`), and the runbook links built on it."""

from __future__ import annotations

import argparse
import socket
import urllib.parse
from dataclasses import dataclass

from exporter.classify import RESULTS, Result

RUNBOOK_PATH = "/runbook"
# Languages the runbook is served in, and the file of each inside the package (exporter/docs/).
RUNBOOK_LANGUAGES: dict[str, str] = {"en": "runbook.md", "fr": "runbook.fr.md"}
_EXAMPLE = "https://exporter.example.org:10077"


def parse_external_url(text: str) -> str:
    """`--web.external-url`: an absolute http(s) URL, kept without its trailing slash.

    A path is allowed (a reverse proxy's prefix): links are `<url>/runbook#...` under it.
    """
    parsed = urllib.parse.urlsplit(text.strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an absolute http(s) URL (write the address people open, "
            f"e.g. {_EXAMPLE})"
        )
    if parsed.query or parsed.fragment:
        raise argparse.ArgumentTypeError(
            f"{text!r} has a query or fragment (write only scheme, host, port and path)"
        )
    return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, parsed.path, "", "")).rstrip("/")


def default_external_url(host: str | None, port: int, tls: bool = False) -> str:
    """What Prometheus does without --web.external-url: this machine's name when listening on
    every interface, else the address listened on."""
    name = host or socket.gethostname()
    if ":" in name:  # IPv6
        name = f"[{name}]"
    return f"{'https' if tls else 'http'}://{name}:{port}"


@dataclass(frozen=True)
class Links:
    """Every address the exporter prints (landing page, logs, check) is built here."""

    external_url: str

    def runbook(self, anchor: str = "", language: str = "en") -> str:
        path = RUNBOOK_PATH if language == "en" else f"{RUNBOOK_PATH}/{language}"
        return f"{self.external_url}{path}" + (f"#{anchor}" if anchor else "")

    def for_result(self, result: Result) -> str:
        """The runbook section that fixes `result`; "" for ok."""
        anchor = RESULTS[result].runbook_anchor
        return self.runbook(anchor) if anchor else ""


# Where the compose stack publishes the exporter, for a person's browser on the same machine:
# the default of the alert rules' and dashboards' links (their generators take --runbook-url).
PUBLISHED_EXTERNAL_URL = "http://localhost:10077"
PUBLISHED_RUNBOOK_URL = f"{PUBLISHED_EXTERNAL_URL}{RUNBOOK_PATH}"
DEFAULT_LINKS = Links(PUBLISHED_EXTERNAL_URL)
