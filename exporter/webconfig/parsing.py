"""Reading a web config file exactly as strictly as `promtool check web-config` does: the
fields exporter-toolkit knows, walked by exporter/yaml_fields.py with Go's yaml.v2
UnmarshalStrict rules (`GO_YAML_V2`, a line number in every error), and the checks Go makes
when it loads the file."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType

import yaml

from exporter.strict_yaml import YamlRefused, refuse_alias_bombs
from exporter.webconfig.model import HTTPServerConfig, TLSServerConfig, WebConfig, WebConfigError
from exporter.webconfig.tls import (
    CIPHER_SUITES,
    CLIENT_AUTH_MODES,
    CURVES,
    TLS_VERSIONS,
    check_tls_files,
)
from exporter.yaml_fields import GO_YAML_V2, FieldProblem, Fields, YamlFile, excerpt, is_null

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
    if root is None or is_null(root):
        return WebConfig(source=path)
    try:
        refuse_alias_bombs(root)  # counting every alias, merged ones too, as yaml.v2 does
    except YamlRefused as refused:
        raise WebConfigError(
            f"{path}:{refused.line}: top level: {refused.problem} ({refused.fix})"
        ) from None

    top = Fields(YamlFile(path, GO_YAML_V2, WebConfigError), root, "", _TOP_FIELDS)
    tls = _read_tls(top.child("tls_server_config", _TLS_FIELDS), os.path.dirname(path))
    http = _read_http(top.child("http_server_config", ("http2", "headers")))
    users = _read_users(top.child("basic_auth_users", None))
    return WebConfig(
        source=path,
        tls_server_config=tls,
        http_server_config=http,
        basic_auth_users=MappingProxyType(users),
    )


_TOP_FIELDS = ("tls_server_config", "http_server_config", "basic_auth_users")
_TLS_FIELDS = (
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


def _tls_version(node: yaml.Node) -> str | None:
    if is_null(node):
        return None
    version = GO_YAML_V2.string(node)
    if version not in TLS_VERSIONS:
        raise FieldProblem(
            f"unknown TLS version {excerpt(version)}", f"use one of {', '.join(TLS_VERSIONS)}"
        )
    return version


def _names_from(
    table: tuple[str, ...] | Mapping[str, object], what: str
) -> Callable[[yaml.Node], tuple[str, ...]]:
    def convert(node: yaml.Node) -> tuple[str, ...]:
        names = [name for name in GO_YAML_V2.string_list(node) if name is not None]
        for name in names:
            if name not in table:
                raise FieldProblem(
                    f"unknown or insecure {what} {excerpt(name)}",
                    f"use names from: {', '.join(table)}",
                )
        return tuple(names)

    return convert


def _sans(node: yaml.Node) -> tuple[str, ...]:
    return tuple(name or "" for name in GO_YAML_V2.string_list(node))


def _read_tls(fields: Fields, directory: str) -> TLSServerConfig | None:
    def file_path(name: str) -> str:
        return _join_dir(directory, fields.get(name, GO_YAML_V2.string, ""))

    cert_file, key_file, client_ca_file = (
        file_path("cert_file"),
        file_path("key_file"),
        file_path("client_ca_file"),
    )
    client_auth_type = fields.get("client_auth_type", GO_YAML_V2.string, "")
    min_version = fields.get("min_version", _tls_version, None)
    max_version = fields.get("max_version", _tls_version, None)
    cipher_suites = fields.get("cipher_suites", _names_from(CIPHER_SUITES, "cipher suite"), ())
    curves = fields.get("curve_preferences", _names_from(CURVES, "curve preference"), ())
    prefer_server = fields.get("prefer_server_cipher_suites", GO_YAML_V2.boolean, True)
    sans = fields.get("client_allowed_sans", _sans, None)
    if not (cert_file or key_file or client_ca_file or client_auth_type):
        return None  # as in Go: versions, ciphers and SANs alone do not turn TLS on
    both = "set cert_file and key_file, or remove tls_server_config to serve plain HTTP"
    if not cert_file:
        raise fields.error("cert_file", "missing", both)
    if not key_file:
        raise fields.error("key_file", "missing", both)
    client_auth_type = client_auth_type or "NoClientCert"
    if client_auth_type not in CLIENT_AUTH_MODES:
        raise fields.error(
            "client_auth_type",
            f"unknown value {excerpt(client_auth_type)}",
            "use RequireAndVerifyClientCert to require client certificates, or one of "
            + ", ".join(CLIENT_AUTH_MODES),
        )
    if client_ca_file and client_auth_type == "NoClientCert":
        raise fields.error(
            "client_ca_file",
            "set while client_auth_type is NoClientCert",
            "set client_auth_type: RequireAndVerifyClientCert, or remove client_ca_file",
        )
    config = TLSServerConfig(
        cert_file=cert_file,
        key_file=key_file,
        client_auth_type=client_auth_type,
        client_ca_file=client_ca_file,
        min_version=min_version or "TLS12",
        max_version=max_version or "TLS13",
        cipher_suites=cipher_suites,
        curve_preferences=curves,
        prefer_server_cipher_suites=prefer_server,
        client_allowed_sans=sans,
    )
    check_tls_files(fields.file.path, config)
    return config


def _read_http(fields: Fields) -> HTTPServerConfig:
    headers = fields.child("headers", None)
    return HTTPServerConfig(
        http2=fields.get("http2", GO_YAML_V2.boolean, True),
        headers=tuple((name, _header_value(headers, name)) for name in headers.names()),
    )


def _header_value(headers: Fields, name: str) -> str:
    if name not in _ALLOWED_HEADERS:
        raise headers.error(
            name,
            "this header can not be configured",
            f"use only {', '.join(_ALLOWED_HEADERS)} (spelled exactly so)",
        )
    value: str = headers.get(name, GO_YAML_V2.string, "")
    allowed = _ALLOWED_HEADERS[name]
    if allowed and value not in allowed:
        raise headers.error(
            name, f"invalid value {excerpt(value)}", f"use one of {', '.join(allowed)}"
        )
    return value


def _read_users(fields: Fields) -> dict[str, str]:
    users: dict[str, str] = {}
    for username in fields.names():
        hashed: str = fields.get(username, GO_YAML_V2.string, "")
        problem = bcrypt_hash_problem(hashed)
        if problem is not None:
            raise fields.error(username, f"not a bcrypt hash: {problem}", _BCRYPT_HINT)
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
