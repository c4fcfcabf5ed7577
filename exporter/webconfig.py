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
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import ipaddress
import logging
import os
import re
import secrets
import ssl
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import yaml
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from exporter.strict_yaml import YamlRefused, refuse_alias_bombs

logger = logging.getLogger(__name__)

BASIC_AUTH_REALM = "openai-key-exporter"
RELOAD_CHECK_INTERVAL_SECONDS = 1.0

# Go's tls.CipherSuites() names (Go 1.19, as in promtool), mapped to OpenSSL names.
# TLS 1.3 suites are accepted but, as in Go, cannot be chosen: both stacks enable them all.
_CIPHER_SUITES: Mapping[str, str | None] = MappingProxyType(
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
_CURVES: Mapping[str, str] = MappingProxyType(
    {
        "CurveP256": "prime256v1",
        "CurveP384": "secp384r1",
        "CurveP521": "secp521r1",
        "X25519": "X25519",
    }
)
_TLS_VERSIONS: Mapping[str, ssl.TLSVersion] = MappingProxyType(
    {
        "TLS10": ssl.TLSVersion.TLSv1,
        "TLS11": ssl.TLSVersion.TLSv1_1,
        "TLS12": ssl.TLSVersion.TLSv1_2,
        "TLS13": ssl.TLSVersion.TLSv1_3,
    }
)
_CLIENT_AUTH_MODES: Mapping[str, ssl.VerifyMode] = MappingProxyType(
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
_ALLOWED_HEADERS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "Strict-Transport-Security": (),
        "X-Content-Type-Options": ("nosniff",),
        "X-Frame-Options": ("deny", "sameorigin"),
        "X-XSS-Protection": (),
        "Content-Security-Policy": (),
    }
)
_BCRYPT_HINT = "make one with: htpasswd -nBC 10 '' | tr -d ':\\n'"
# A bcrypt hash of "fakepassword" (exporter-toolkit's), checked for unknown users so that they
# cost as much as known ones; at other costs it is made once, the first time it is needed.
_UNKNOWN_USER_HASH = b"$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi"
_UNKNOWN_USER_PASSWORD = b"fakepassword"


class WebConfigError(Exception):
    """A web config file that cannot be used; the message names the file, the field and the fix.

    Messages never contain passwords or password hashes.
    """


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


# --- reading the YAML the way Go's yaml.v2 UnmarshalStrict does ----------------------------

_NULL_TAG = "tag:yaml.org,2002:null"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_MERGE_TAG = "tag:yaml.org,2002:merge"
# yaml.v2 reads these plain scalars as booleans (YAML 1.1), y and n included, unlike PyYAML.
_YAML_TRUE = frozenset({"y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"})
_YAML_FALSE = frozenset(
    {"n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"}
)


def _quoted(text: str) -> str:
    """A value as a message quotes it: at most 40 characters of it."""
    return repr(text) if len(text) <= 40 else repr(text[:40]) + "..."


class _Reader:
    """Walks composed YAML nodes, so errors carry line numbers and scalars keep their text."""

    def __init__(self, path: str) -> None:
        self.path = path

    def error(self, node: yaml.Node | None, where: str, problem: str, fix: str) -> WebConfigError:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        if len(where) > 200:  # a field name from the file: an excerpt, as for values
            where = where[:200] + "..."
        return WebConfigError(f"{self.path}{line}: {where}: {problem} ({fix})")

    @staticmethod
    def is_null(node: yaml.Node) -> bool:
        return isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG

    @staticmethod
    def kind(node: yaml.Node) -> str:
        if isinstance(node, yaml.SequenceNode):
            return "a list"
        if isinstance(node, yaml.MappingNode):
            return "a mapping"
        return "a single value"

    def string(self, node: yaml.Node, where: str) -> str:
        if self.is_null(node):
            return ""
        if not isinstance(node, yaml.ScalarNode):
            raise self.error(node, where, f"expected a string, got {self.kind(node)}", "quote it")
        return str(node.value)

    def boolean(self, node: yaml.Node, where: str) -> bool:
        if self.is_null(node):
            return False
        if isinstance(node, yaml.ScalarNode) and (node.style is None or node.tag == _BOOL_TAG):
            if node.value in _YAML_TRUE:
                return True
            if node.value in _YAML_FALSE:
                return False
        raise self.error(node, where, "expected true or false", "write true or false, unquoted")

    def string_list(self, node: yaml.Node, where: str) -> list[str | None]:
        if self.is_null(node):
            return []
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(
                node, where, f"expected a list, got {self.kind(node)}", "write it as [a, b]"
            )
        items: list[str | None] = []
        for index, item in enumerate(node.value):
            items.append(None if self.is_null(item) else self.string(item, f"{where}[{index}]"))
        return items

    def mapping(self, node: yaml.Node, where: str) -> list[tuple[str, yaml.Node]]:
        """Key/value pairs of a mapping (null is empty); merges `<<:`; refuses duplicate keys."""
        if self.is_null(node):
            return []
        if not isinstance(node, yaml.MappingNode):
            raise self.error(
                node, where, f"expected a mapping, got {self.kind(node)}", "write key: value lines"
            )
        merged: list[tuple[str, yaml.Node]] = []
        explicit: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                sources = (
                    value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                )
                for source in sources:
                    merged.extend(self.mapping(source, where))
                continue
            key = self.string(key_node, f"{where} key")
            if key in explicit:
                raise self.error(key_node, f"{where}.{key}", "set twice", "keep one of them")
            explicit[key] = value_node
        pairs = [(key, value) for key, value in merged if key not in explicit]
        return pairs + list(explicit.items())

    def unknown_field(self, node: yaml.Node, where: str, known: tuple[str, ...]) -> WebConfigError:
        return self.error(
            node,
            where,
            "unknown field",
            f"fix the spelling or remove it; known: {', '.join(known)}",
        )


def _join_dir(directory: str, path: str) -> str:
    if not path or os.path.isabs(path):
        return path
    return os.path.join(directory, path)


def load_web_config(path: str) -> WebConfig:
    """Parse and check a web config file exactly as strictly as `promtool check web-config`."""
    try:
        with open(path, "rb") as stream:
            content = stream.read()
    except OSError as exc:
        raise WebConfigError(
            f"{path}: cannot read the web config file: {exc.strerror or exc} "
            "(point --web.config.file at a readable file)"
        ) from None
    reader = _Reader(path)
    try:
        root = next(iter(yaml.compose_all(content, Loader=yaml.SafeLoader)), None)
    except yaml.MarkedYAMLError as exc:
        # Not str(exc): it quotes the offending line, which may hold a password hash.
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise WebConfigError(
            f"{path}{line}: invalid YAML: {exc.problem or exc.context} "
            "(fix the syntax there; indent with spaces, not tabs)"
        ) from None
    except yaml.YAMLError as exc:
        raise WebConfigError(f"{path}: invalid YAML: {exc} (save the file as UTF-8)") from None
    except RecursionError:  # the pure-Python composer recurses once per level of nesting
        raise WebConfigError(f"{path}: invalid YAML: nested too deeply (flatten it)") from None
    if root is None or reader.is_null(root):
        return WebConfig(source=path)
    try:
        refuse_alias_bombs(root)
    except YamlRefused as refused:
        raise WebConfigError(
            f"{path}:{refused.line}: top level: {refused.problem} ({refused.fix})"
        ) from None

    directory = os.path.dirname(path)
    tls: TLSServerConfig | None = None
    http = HTTPServerConfig()
    users: dict[str, str] = {}
    known = ("tls_server_config", "http_server_config", "basic_auth_users")
    for key, value in reader.mapping(root, "top level"):
        if key == "tls_server_config":
            tls = _read_tls(reader, value, directory)
        elif key == "http_server_config":
            http = _read_http(reader, value)
        elif key == "basic_auth_users":
            users = _read_users(reader, value)
        else:
            raise reader.unknown_field(value, key, known)
    return WebConfig(
        source=path,
        tls_server_config=tls,
        http_server_config=http,
        basic_auth_users=MappingProxyType(users),
    )


def _read_tls(reader: _Reader, node: yaml.Node, directory: str) -> TLSServerConfig | None:
    where = "tls_server_config"
    text: dict[str, str] = {}
    lists: dict[str, tuple[str, ...]] = {}
    sans: tuple[str, ...] | None = None
    prefer_server = True
    nodes: dict[str, yaml.Node] = {}
    known = (
        "cert_file",
        "key_file",
        "client_auth_type",
        "client_ca_file",
        "client_allowed_sans",
        "min_version",
        "max_version",
        "cipher_suites",
        "curve_preferences",
        "prefer_server_cipher_suites",
    )
    for key, value in reader.mapping(node, where):
        field_name = f"{where}.{key}"
        nodes[key] = value
        if key in ("cert_file", "key_file", "client_ca_file", "client_auth_type"):
            text[key] = reader.string(value, field_name)
        elif key in ("min_version", "max_version"):
            if reader.is_null(value):
                continue
            version = reader.string(value, field_name)
            if version not in _TLS_VERSIONS:
                raise reader.error(
                    value,
                    field_name,
                    f"unknown TLS version {_quoted(version)}",
                    f"use one of {', '.join(_TLS_VERSIONS)}",
                )
            text[key] = version
        elif key in ("cipher_suites", "curve_preferences"):
            table = _CIPHER_SUITES if key == "cipher_suites" else _CURVES
            names = [name for name in reader.string_list(value, field_name) if name is not None]
            for name in names:
                if name not in table:
                    raise reader.error(
                        value,
                        field_name,
                        f"unknown or insecure {key[:-1].replace('_', ' ')} {_quoted(name)}",
                        f"use names from: {', '.join(table)}",
                    )
            lists[key] = tuple(names)
        elif key == "prefer_server_cipher_suites":
            prefer_server = reader.boolean(value, field_name)
        elif key == "client_allowed_sans":
            sans = tuple(name or "" for name in reader.string_list(value, field_name))
        else:
            raise reader.unknown_field(value, field_name, known)

    cert_file = _join_dir(directory, text.get("cert_file", ""))
    key_file = _join_dir(directory, text.get("key_file", ""))
    client_ca_file = _join_dir(directory, text.get("client_ca_file", ""))
    client_auth_type = text.get("client_auth_type", "")
    if not (cert_file or key_file or client_ca_file or client_auth_type):
        return None  # as in Go: versions, ciphers and SANs alone do not turn TLS on
    both = "set cert_file and key_file, or remove tls_server_config to serve plain HTTP"
    if not cert_file:
        raise reader.error(node, f"{where}.cert_file", "missing", both)
    if not key_file:
        raise reader.error(node, f"{where}.key_file", "missing", both)
    client_auth_type = client_auth_type or "NoClientCert"
    if client_auth_type not in _CLIENT_AUTH_MODES:
        raise reader.error(
            nodes["client_auth_type"],
            f"{where}.client_auth_type",
            f"unknown value {_quoted(client_auth_type)}",
            "use RequireAndVerifyClientCert to require client certificates, or one of "
            + ", ".join(_CLIENT_AUTH_MODES),
        )
    if client_ca_file and client_auth_type == "NoClientCert":
        raise reader.error(
            nodes["client_ca_file"],
            f"{where}.client_ca_file",
            "set while client_auth_type is NoClientCert",
            "set client_auth_type: RequireAndVerifyClientCert, or remove client_ca_file",
        )
    config = TLSServerConfig(
        cert_file=cert_file,
        key_file=key_file,
        client_auth_type=client_auth_type,
        client_ca_file=client_ca_file,
        min_version=text.get("min_version", "TLS12"),
        max_version=text.get("max_version", "TLS13"),
        cipher_suites=lists.get("cipher_suites", ()),
        curve_preferences=lists.get("curve_preferences", ()),
        prefer_server_cipher_suites=prefer_server,
        client_allowed_sans=sans,
    )
    _check_tls_files(reader.path, config)
    return config


def _read_file(config_path: str, where: str, path: str, fix: str) -> bytes:
    try:
        with open(path, "rb") as stream:
            return stream.read()
    except OSError as exc:
        raise WebConfigError(
            f"{config_path}: {where}: cannot read {path}: {exc.strerror or exc} ({fix})"
        ) from None


def _check_tls_files(config_path: str, tls: TLSServerConfig) -> None:
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


def _read_http(reader: _Reader, node: yaml.Node) -> HTTPServerConfig:
    http2 = True
    headers: list[tuple[str, str]] = []
    for key, value in reader.mapping(node, "http_server_config"):
        where = f"http_server_config.{key}"
        if key == "http2":
            http2 = reader.boolean(value, where)
        elif key == "headers":
            headers = [
                (name, _header_value(reader, name, header_node))
                for name, header_node in reader.mapping(value, where)
            ]
        else:
            raise reader.unknown_field(value, where, ("http2", "headers"))
    return HTTPServerConfig(http2=http2, headers=tuple(headers))


def _header_value(reader: _Reader, name: str, node: yaml.Node) -> str:
    where = f"http_server_config.headers.{name}"
    if name not in _ALLOWED_HEADERS:
        raise reader.error(
            node,
            where,
            "this header can not be configured",
            f"use only {', '.join(_ALLOWED_HEADERS)} (spelled exactly so)",
        )
    value = reader.string(node, where)
    allowed = _ALLOWED_HEADERS[name]
    if allowed and value not in allowed:
        raise reader.error(
            node, where, f"invalid value {_quoted(value)}", f"use one of {', '.join(allowed)}"
        )
    return value


def _read_users(reader: _Reader, node: yaml.Node) -> dict[str, str]:
    users: dict[str, str] = {}
    for username, value in reader.mapping(node, "basic_auth_users"):
        where = f"basic_auth_users.{username}"
        hashed = reader.string(value, where)
        problem = bcrypt_hash_problem(hashed)
        if problem is not None:
            raise reader.error(value, where, f"not a bcrypt hash: {problem}", _BCRYPT_HINT)
        users[username] = hashed
    return users


def bcrypt_cost(hashed: str) -> int:
    """The cost of a hash bcrypt_hash_problem accepted."""
    cost_at = 3 if hashed[2:3] == "$" else 4
    return int(hashed[cost_at : cost_at + 2])


def bcrypt_hash_problem(hashed: str) -> str | None:
    """Why Go's bcrypt.Cost refuses the hash, or None; never quotes the hash itself."""
    raw = hashed.encode()
    if len(raw) < 59:
        return "too short"
    if raw[0:1] != b"$":
        return "does not start with $"
    if raw[1] > ord("2"):
        return "bcrypt version is newer than 2"
    cost_at = 3 if raw[2:3] == b"$" else 4
    cost_text = raw[cost_at : cost_at + 2]
    if not re.fullmatch(rb"[+-]?[0-9]+", cost_text):
        return "the cost is not a number"
    cost = int(cost_text)
    if not 4 <= cost <= 31:
        return f"cost {cost} is outside 4..31"
    return None


# --- TLS -------------------------------------------------------------------------------------


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
    context.minimum_version = _TLS_VERSIONS[tls.min_version]
    context.maximum_version = _TLS_VERSIONS[tls.max_version]
    _load_key_pair(source, context, tls)
    if tls.cipher_suites:
        openssl_names = [_CIPHER_SUITES[name] for name in tls.cipher_suites]
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
        context.set_ecdh_curve(_CURVES[tls.curve_preferences[0]])
    context.verify_mode = _CLIENT_AUTH_MODES[tls.client_auth_type]
    if context.verify_mode != ssl.CERT_NONE:
        _load_client_cas(context, tls, source)
    return context


def _files_signature(paths: tuple[str, ...]) -> tuple[tuple[int, int, int] | None, ...]:
    signature: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            status = os.stat(path)
        except OSError:
            signature.append(None)
            continue
        signature.append((status.st_mtime_ns, status.st_size, status.st_ino))
    return tuple(signature)


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


# --- following the file ----------------------------------------------------------------------


def _file_signature(path: str) -> tuple[int, int, int] | None:
    return _files_signature((path,))[0]


class WebConfigWatcher:
    """Holds the current web config; re-reads the file when it changes, keeping the last good one.

    A broken file at start-up raises WebConfigError; later it is logged and the old config stays.
    """

    def __init__(
        self, path: str | None, *, check_interval_seconds: float = RELOAD_CHECK_INTERVAL_SECONDS
    ) -> None:
        self._path = path
        self._check_interval = check_interval_seconds
        self._signature = _file_signature(path) if path is not None else None
        self._config = load_web_config(path) if path is not None else WebConfig()
        self._next_check = time.monotonic() + check_interval_seconds

    @property
    def path(self) -> str | None:
        return self._path

    @property
    def config(self) -> WebConfig:
        if self._path is not None:
            now = time.monotonic()
            if now >= self._next_check:
                self._next_check = now + self._check_interval
                self._reload_if_changed(self._path)
        return self._config

    def _reload_if_changed(self, path: str) -> None:
        signature = _file_signature(path)
        if signature == self._signature:
            return
        self._signature = signature  # a broken file is reported once, not every second
        try:
            config = load_web_config(path)
        except WebConfigError as exc:
            logger.error("%s; keeping the previous web config", exc)
            return
        self._config = config
        logger.info(
            "reloaded web config %s (%d basic auth users)", path, len(config.basic_auth_users)
        )


# --- HTTP ------------------------------------------------------------------------------------


class _CredentialCache:
    """Remembers credentials bcrypt accepted, so a scrape costs a hash, not a bcrypt run.

    Keyed by sha256 of username and stored bcrypt hash (a changed hash misses the cache); the
    value is an HMAC of the password under a per-process random key, compared in constant time.
    """

    def __init__(self, max_entries: int = 256) -> None:
        self._max_entries = max_entries
        self._secret = secrets.token_bytes(32)
        self._entries: OrderedDict[bytes, bytes] = OrderedDict()

    @staticmethod
    def _slot(username: str, hashed: str) -> bytes:
        user = username.encode()
        return hashlib.sha256(len(user).to_bytes(8, "big") + user + hashed.encode()).digest()

    def _fingerprint(self, password: bytes) -> bytes:
        return hmac.new(self._secret, password, hashlib.sha256).digest()

    def contains(self, username: str, hashed: str, password: bytes) -> bool:
        slot = self._slot(username, hashed)
        expected = self._entries.get(slot)
        if expected is None or not hmac.compare_digest(expected, self._fingerprint(password)):
            return False
        self._entries.move_to_end(slot)
        return True

    def add(self, username: str, hashed: str, password: bytes) -> None:
        slot = self._slot(username, hashed)
        self._entries[slot] = self._fingerprint(password)
        self._entries.move_to_end(slot)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)


def _bcrypt_matches(password: bytes, hashed: bytes) -> bool:
    import bcrypt  # here: only basic auth needs it, 0.4 MiB of memory otherwise

    try:
        return bool(bcrypt.checkpw(password, hashed))
    except ValueError:  # a hash Go accepts but Python's bcrypt cannot read, or > 72 bytes
        return False


def _basic_credentials(header: str | None) -> tuple[str, bytes] | None:
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
        username, separator, password = decoded.partition(b":")
        if not separator:
            return None
        return username.decode("utf-8"), password
    except (binascii.Error, ValueError):
        return None


def _usual_cost(users: Mapping[str, str]) -> int:
    """The cost most configured hashes have (the higher on a tie): an unknown user's check
    takes as long as a wrong password for most users, so it does not tell who exists."""
    counts: dict[int, int] = {}
    for hashed in users.values():
        cost = bcrypt_cost(hashed)
        counts[cost] = counts.get(cost, 0) + 1
    return max(counts, key=lambda cost: (counts[cost], cost)) if counts else 10


def _stand_in_hash(cost: int) -> bytes:
    import bcrypt

    return bytes(bcrypt.hashpw(_UNKNOWN_USER_PASSWORD, bcrypt.gensalt(rounds=cost)))


class _BasicAuthenticator:
    def __init__(self) -> None:
        self._cache = _CredentialCache()
        # One bcrypt at a time, as in exporter-toolkit: wrong passwords cannot eat every core.
        self._bcrypt_lock = asyncio.Lock()
        self._stand_ins: dict[int, bytes] = {10: _UNKNOWN_USER_HASH}
        self._cost_of: tuple[Mapping[str, str], int] | None = None  # users -> their usual cost

    async def _unknown_user_hash(self, users: Mapping[str, str]) -> bytes:
        """Called under the bcrypt lock."""
        if self._cost_of is None or self._cost_of[0] is not users:  # a reload makes new users
            self._cost_of = (users, _usual_cost(users))
        cost = self._cost_of[1]
        if cost not in self._stand_ins:
            self._stand_ins[cost] = await asyncio.to_thread(_stand_in_hash, cost)
        return self._stand_ins[cost]

    async def allows(self, header: str | None, users: Mapping[str, str]) -> bool:
        credentials = _basic_credentials(header)
        if credentials is None:
            return False
        username, password = credentials
        hashed = users.get(username)
        if hashed is not None and self._cache.contains(username, hashed, password):
            return True
        async with self._bcrypt_lock:
            if hashed is not None and self._cache.contains(username, hashed, password):
                return True
            if hashed is not None:
                target = hashed.encode()
            else:
                target = await self._unknown_user_hash(users)
            matches = await asyncio.to_thread(_bcrypt_matches, password, target)
        if matches and hashed is not None:
            self._cache.add(username, hashed, password)
            return True
        return False


def _client_san_allowed(request: web.Request, allowed: tuple[str, ...]) -> bool:
    transport = request.transport
    peer = transport.get_extra_info("peercert") if transport is not None else None
    if not peer:
        return False
    for kind, value in peer.get("subjectAltName", ()):
        if kind == "IP Address":
            try:
                value = str(ipaddress.ip_address(value.strip()))  # Go's net.IP.String() form
            except ValueError:
                continue
        if kind in ("DNS", "email", "IP Address", "URI") and value in allowed:
            return True
    return False


def _add_headers(response: web.StreamResponse, headers: tuple[tuple[str, str], ...]) -> None:
    for name, value in headers:
        if value:  # exporter-toolkit documents a blank value as "unset"
            response.headers[name] = value


def install_response_headers(app: web.Application, watcher: WebConfigWatcher) -> None:
    """Add `http_server_config.headers` to every response `app` sends.

    On aiohttp's on_response_prepare signal, not in a middleware: a streamed response (/metrics)
    sends its headers inside the handler, before a middleware sees it, and error pages made
    from an exception are prepared after every middleware has returned. The signal runs for
    each of them just before the headers go out.
    """

    async def add_configured_headers(_: web.Request, response: web.StreamResponse) -> None:
        _add_headers(response, watcher.config.http_server_config.headers)

    app.on_response_prepare.append(add_configured_headers)


def auth_middleware(
    watcher: WebConfigWatcher, open_paths: frozenset[str] = frozenset({"/-/healthy"})
) -> Middleware:
    """Basic auth and the client certificate SAN check from the current web config (the
    configured headers come from install_response_headers).

    Paths in open_paths skip basic auth (not the SAN check, which Go does in the handshake).
    """
    authenticator = _BasicAuthenticator()

    @web.middleware
    async def web_config_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        config = watcher.config
        tls = config.tls_server_config
        response: web.StreamResponse
        if (
            tls is not None
            and tls.client_allowed_sans is not None
            and not _client_san_allowed(request, tls.client_allowed_sans)
        ):
            response = web.Response(
                status=403, text="403 Forbidden: client certificate SAN not allowed\n"
            )
        elif (
            config.basic_auth_users
            and request.path not in open_paths
            and not await authenticator.allows(
                request.headers.get("Authorization"), config.basic_auth_users
            )
        ):
            response = web.Response(
                status=401,
                text="401 Unauthorized\n",
                headers={"WWW-Authenticate": f'Basic realm="{BASIC_AUTH_REALM}", charset="UTF-8"'},
            )
        else:
            response = await handler(request)
        return response

    return web_config_middleware
