"""Reading a web config file exactly as strictly as `promtool check web-config` does: Go's
yaml.v2 UnmarshalStrict semantics on composed YAML nodes (line numbers in every error), the
fields exporter-toolkit knows, and the checks Go makes when it loads the file."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
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
            if version not in TLS_VERSIONS:
                raise reader.error(
                    value,
                    field_name,
                    f"unknown TLS version {_quoted(version)}",
                    f"use one of {', '.join(TLS_VERSIONS)}",
                )
            text[key] = version
        elif key in ("cipher_suites", "curve_preferences"):
            table = CIPHER_SUITES if key == "cipher_suites" else CURVES
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
    if client_auth_type not in CLIENT_AUTH_MODES:
        raise reader.error(
            nodes["client_auth_type"],
            f"{where}.client_auth_type",
            f"unknown value {_quoted(client_auth_type)}",
            "use RequireAndVerifyClientCert to require client certificates, or one of "
            + ", ".join(CLIENT_AUTH_MODES),
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
    check_tls_files(reader.path, config)
    return config


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
