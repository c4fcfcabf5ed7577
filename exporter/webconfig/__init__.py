"""The --web.config.file of the Prometheus exporter-toolkit: TLS, basic auth and response headers.

The file format, and what is accepted or refused, follows exporter-toolkit's `web` package
(https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md) as
`promtool check web-config` applies it, so one file works for this exporter and Go exporters.

Where Python's ssl module cannot do what Go's crypto/tls does, we choose the stricter side:
- `RequireAnyClientCert` verifies the client certificate (against `client_ca_file`, else the
  system CAs) because OpenSSL through Python cannot require a certificate without verifying it;
  `RequestClientCert` does not ask for one, as nothing here would use an unverified certificate.
- `curve_preferences`: only the first curve is offered (Python can set one group only).
- `http2`: accepted and ignored; aiohttp serves HTTP/1.1.
- `client_allowed_sans` (exporter-toolkit >= 0.10) is checked per request, not in the handshake:
  a verified client certificate without an allowed SAN gets 403 on every path.
Basic auth users, headers and SANs follow file changes without a restart (`WebConfigWatcher`).
Certificate, key and client CA files are re-read on the next TLS handshake after they change
(checked at most once per second); other TLS settings need a restart of the listener.

The package, by concern: `model` (the parsed values), `parsing` (the file), `tls` (the
listener's TLS), `watcher` (following the file), `auth` (basic auth, SANs, headers). The names
the server needs are re-exported here.
"""

from exporter.webconfig.auth import auth_middleware, install_response_headers
from exporter.webconfig.model import WebConfig, WebConfigError
from exporter.webconfig.parsing import load_web_config
from exporter.webconfig.tls import ssl_context
from exporter.webconfig.watcher import WebConfigWatcher

__all__ = [
    "WebConfig",
    "WebConfigError",
    "WebConfigWatcher",
    "auth_middleware",
    "install_response_headers",
    "load_web_config",
    "ssl_context",
]
