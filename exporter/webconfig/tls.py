"""TLS for the listener: Go's names mapped to OpenSSL's, the key pair and client CA checks the
config file gets at load time, and the server context, whose certificate, key and client CA files
are read again on the first handshake after they change."""

from __future__ import annotations

import logging
import re
import ssl
import time
from collections.abc import Mapping
from types import MappingProxyType

from exporter.file_identity import FileIdentity, file_identity
from exporter.webconfig.model import TLSServerConfig, WebConfig, WebConfigError

logger = logging.getLogger("exporter.webconfig")  # one name for the whole web config

RELOAD_CHECK_INTERVAL_SECONDS = 1.0  # files are stat'ed at most this often

# Go's tls.CipherSuites() names (Go 1.19, as in promtool), mapped to OpenSSL names.
# TLS 1.3 suites are accepted but, as in Go, cannot be chosen: both stacks enable them all.
CIPHER_SUITES: Mapping[str, str | None] = MappingProxyType(
    {
        "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
        "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
        "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
        "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
        "TLS_AES_128_GCM_SHA256": None,
        "TLS_AES_256_GCM_SHA384": None,
        "TLS_CHACHA20_POLY1305_SHA256": None,
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
        "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    }
)
CURVES: Mapping[str, str] = MappingProxyType(
    {
        "CurveP256": "prime256v1",
        "CurveP384": "secp384r1",
        "CurveP521": "secp521r1",
        "X25519": "X25519",
    }
)
TLS_VERSIONS: Mapping[str, ssl.TLSVersion] = MappingProxyType(
    {
        "TLS10": ssl.TLSVersion.TLSv1,
        "TLS11": ssl.TLSVersion.TLSv1_1,
        "TLS12": ssl.TLSVersion.TLSv1_2,
        "TLS13": ssl.TLSVersion.TLSv1_3,
    }
)
CLIENT_AUTH_MODES: Mapping[str, ssl.VerifyMode] = MappingProxyType(
    {
        "NoClientCert": ssl.CERT_NONE,
        "RequestClientCert": ssl.CERT_NONE,
        "RequireAnyClientCert": ssl.CERT_REQUIRED,
        "RequireClientCert": ssl.CERT_REQUIRED,  # old name exporter-toolkit still accepts
        "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
        "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
    }
)
# exporter-toolkit lets only these headers be set, some only to fixed values (compared exactly).


def _read_file(config_path: str, where: str, path: str, fix: str) -> bytes:
    try:
        with open(path, "rb") as stream:
            return stream.read()
    except OSError as exc:
        raise WebConfigError(
            f"{config_path}: {where}: cannot read {path}: {exc.strerror or exc} ({fix})"
        ) from None


def check_tls_files(config_path: str, tls: TLSServerConfig) -> None:
    """What Go checks when it loads the config: the key pair loads, the client CA file reads."""
    where = "tls_server_config"
    cert = _read_file(config_path, f"{where}.cert_file", tls.cert_file, "set a readable PEM file")
    _read_file(config_path, f"{where}.key_file", tls.key_file, "set a readable PEM file")
    if b"-----BEGIN CERTIFICATE-----" not in cert:
        raise WebConfigError(
            f"{config_path}: {where}.cert_file: {tls.cert_file} holds no PEM certificate "
            "(point cert_file at the server certificate, PEM encoded)"
        )
    _load_key_pair(config_path, ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), tls)
    if tls.client_ca_file:
        # Go reads the file but ignores what it cannot parse; so do we (see _load_client_cas).
        _read_file(config_path, f"{where}.client_ca_file", tls.client_ca_file, "set a PEM file")


def _refuse_password() -> bytes:
    # Without this, OpenSSL would prompt on the terminal for an encrypted key.
    return b""


def _load_key_pair(config_path: str, context: ssl.SSLContext, tls: TLSServerConfig) -> None:
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file, password=_refuse_password)
    except ssl.SSLError as exc:
        raise WebConfigError(
            f"{config_path}: tls_server_config.key_file: {tls.key_file} and {tls.cert_file} "
            f"do not load as a key pair ({exc.reason or exc.library or 'unreadable PEM'}; "
            "use the unencrypted PEM private key of that certificate)"
        ) from None
    except OSError as exc:
        raise WebConfigError(
            f"{config_path}: tls_server_config.cert_file: cannot read {tls.cert_file} or "
            f"{tls.key_file}: {exc.strerror or exc} (set readable PEM files)"
        ) from None


def _load_client_cas(context: ssl.SSLContext, tls: TLSServerConfig, source: str) -> None:
    if not tls.client_ca_file:
        context.load_default_certs(ssl.Purpose.CLIENT_AUTH)  # Go: nil ClientCAs = system roots
        return
    content = _read_file(
        source, "tls_server_config.client_ca_file", tls.client_ca_file, "set a PEM file"
    )
    loaded = 0
    pattern = rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----"
    for block in re.findall(pattern, content, flags=re.DOTALL):
        try:
            context.load_verify_locations(cadata=block.decode("ascii"))
            loaded += 1
        except (ssl.SSLError, UnicodeDecodeError, ValueError):
            continue  # Go's AppendCertsFromPEM skips what it cannot parse as well
    if loaded == 0:
        logger.warning(
            "client_ca_file %s holds no usable certificate: every client certificate is refused",
            tls.client_ca_file,
        )


def _build_ssl_context(tls: TLSServerConfig, source: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    context.maximum_version = TLS_VERSIONS[tls.max_version]
    _load_key_pair(source, context, tls)
    if tls.cipher_suites:
        openssl_names = [CIPHER_SUITES[name] for name in tls.cipher_suites]
        up_to_tls12 = [name for name in openssl_names if name is not None]
        if up_to_tls12:
            context.set_ciphers(":".join(up_to_tls12))
        else:
            # Only TLS 1.3 suites listed: Go then fails every older handshake; say so plainly.
            context.minimum_version = ssl.TLSVersion.TLSv1_3
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    if tls.curve_preferences:
        context.set_ecdh_curve(CURVES[tls.curve_preferences[0]])
    context.verify_mode = CLIENT_AUTH_MODES[tls.client_auth_type]
    if context.verify_mode != ssl.CERT_NONE:
        _load_client_cas(context, tls, source)
    return context


def _files_signature(paths: tuple[str, ...]) -> tuple[FileIdentity | None, ...]:
    return tuple(file_identity(path) for path in paths)


class _CertificateReloader:
    """Swaps in a context with freshly read cert/key/CA files when they change on disk."""

    def __init__(self, tls: TLSServerConfig, source: str) -> None:
        self._tls = tls
        self._source = source
        self._paths = tuple(
            path for path in (tls.cert_file, tls.key_file, tls.client_ca_file) if path
        )
        self._signature = _files_signature(self._paths)
        self.current = _build_ssl_context(tls, source)
        self._next_check = time.monotonic() + RELOAD_CHECK_INTERVAL_SECONDS

    def on_handshake(
        self, ssl_object: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext
    ) -> None:
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + RELOAD_CHECK_INTERVAL_SECONDS
            signature = _files_signature(self._paths)
            if signature != self._signature:
                self._signature = signature
                try:
                    self.current = _build_ssl_context(self._tls, self._source)
                    logger.info("reloaded TLS certificate %s", self._tls.cert_file)
                except (WebConfigError, ssl.SSLError, OSError) as exc:
                    logger.error("keeping the previous TLS certificate: %s", exc)
        if self.current is not context:
            ssl_object.context = self.current


def ssl_context(config: WebConfig) -> ssl.SSLContext | None:
    """The server-side SSLContext for the config, or None when the config does not enable TLS."""
    tls = config.tls_server_config
    if tls is None:
        return None
    try:
        reloader = _CertificateReloader(tls, config.source or "web config")
    except ssl.SSLError as exc:
        raise WebConfigError(
            f"{config.source}: tls_server_config: OpenSSL refused the settings: {exc} "
            "(check min_version, max_version, cipher_suites and curve_preferences)"
        ) from None
    context = reloader.current
    # Called on every ClientHello, SNI or not; keeps the reloader alive with the context.
    context.sni_callback = reloader.on_handshake
    return context
