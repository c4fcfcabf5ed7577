"""The parsed web config: plain values, no behaviour; what the other webconfig modules share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from exporter.redaction import redact_pasted_keys


class WebConfigError(Exception):
    """A web config file that cannot be used; the message names the file, the field and the fix.

    Messages never contain passwords or password hashes, and a key pasted anywhere in the file
    (a user name, a field name) is shown redacted.
    """

    def __init__(self, message: str) -> None:
        super().__init__(redact_pasted_keys(message))


@dataclass(frozen=True)
class TLSServerConfig:
    """`tls_server_config`, present only when it enables TLS; paths are already absolute."""

    cert_file: str
    key_file: str
    client_auth_type: str = "NoClientCert"
    client_ca_file: str = ""
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    cipher_suites: tuple[str, ...] = ()
    curve_preferences: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = True
    client_allowed_sans: tuple[str, ...] | None = None


@dataclass(frozen=True)
class HTTPServerConfig:
    """`http_server_config`: headers added to every response."""

    http2: bool = True
    headers: tuple[tuple[str, str], ...] = ()


def _no_users() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True)
class WebConfig:
    """A parsed web config; the default value is "no file": plain HTTP, no auth, no headers."""

    source: str | None = None
    tls_server_config: TLSServerConfig | None = None
    http_server_config: HTTPServerConfig = field(default_factory=HTTPServerConfig)
    # username -> bcrypt hash; kept out of repr so the hashes never reach a log line.
    basic_auth_users: Mapping[str, str] = field(
        default_factory=_no_users, repr=False, hash=False, compare=False
    )
