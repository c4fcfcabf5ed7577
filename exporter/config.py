"""The configuration file: strict validation into typed settings, errors that say how to fix them."""

from __future__ import annotations

import os
import re
import ssl
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import yaml
import yarl

from exporter.file_identity import FileIdentity, identity_of
from exporter.keys import DotenvFormat, KeySource, SourceKind, key_file_problem, key_kind
from exporter.provider import DEFAULT_PROVIDER, PROVIDERS, config_warnings
from exporter.redaction import redact, redact_pasted_keys
from exporter.strict_yaml import YamlRefused, compose_strict
from exporter.yaml_fields import EXCERPT_CHARS, FieldProblem, Fields, PyYaml, YamlFile, excerpt

DEFAULT_BASE_URL = "https://api.openai.com/v1"
PROBES = ("rest", "realtime", "live", "inference")  # live and inference are billed: opt-in
# The product exists because a Realtime session failed; billed probes are never a default.
DEFAULT_PROBES = ("rest", "realtime")
DEFAULT_REALTIME_MODEL = "gpt-realtime-2.1"
REALTIME_APIS = ("ga", "beta")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,127}$")
# A whole key inside a value (a URL's host or path, a model, an ID): sk- and at least 40
# characters in all, as the shortest real keys, not part of a longer word.
_KEY_IN_VALUE = re.compile(r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_-]{37,}")
_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f]")
_MAX_MESSAGE_CHARS = 1000
_MAX_DURATION_CHARS = 500  # far beyond any real one; 400 nines are still read (as too long)
MAX_INTERVAL_S = 86400.0  # a key checked less than daily is not monitored
MAX_TIMEOUT_S = 300.0  # a probe that waited longer is hung, whatever it is waiting for


class ConfigError(Exception):
    """A configuration a person must fix; the message names the file, the field and the fix.

    Messages quote the offending value back, so a key pasted into any field (base_url,
    interval, a field name...) is shown in its redacted form only.
    """

    def __init__(self, message: str) -> None:
        message = redact_pasted_keys(message)
        if len(message) > _MAX_MESSAGE_CHARS:  # values are quoted as excerpts: never reached
            message = message[: _MAX_MESSAGE_CHARS - 3] + "..."
        super().__init__(message)


def quoted(value: object) -> str:
    """A value as an error message quotes it: a short excerpt, never the whole of a long or
    deeply nested value (an alias bomb's repr is gigabytes), any key in it redacted."""
    if isinstance(value, str):
        return excerpt(redact_pasted_keys(value))
    if value is None or isinstance(value, bool | float):
        return repr(value)
    if isinstance(value, int):
        return repr(value) if abs(value) < 10**EXCERPT_CHARS else "a very long number"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return f"a {type(value).__name__}"


@dataclass(frozen=True, slots=True)
class RealtimeSettings:
    # A model with no shutdown date (gpt-realtime shuts down on 2027-01-20): a default that
    # pages everyone on that day helps no one. People set the model their application uses.
    model: str = DEFAULT_REALTIME_MODEL
    api: str = "ga"
    url: str | None = None
    interval: float = 300.0


@dataclass(frozen=True, slots=True)
class InferenceSettings:
    """The opt-in billed probe: one tiny Responses call (exporter/probes/inference.py)."""

    model: str = "gpt-4.1-nano"  # a cheap current text model
    interval: float = 900.0


@dataclass(frozen=True, slots=True)
class LiveSettings:
    """The GPT-Live probe: billed per second of session, so only run when `live` is in probes."""

    model: str = ""  # no default: a billed probe runs only on a model someone chose
    url: str | None = None
    interval: float = 900.0


@dataclass(frozen=True, slots=True)
class KeyConfig:
    name: str
    source: KeySource
    base_url: str = DEFAULT_BASE_URL
    interval: float = 60.0
    timeout: float = 10.0
    retry_interval: float = 5.0  # soon enough that a revoked key pages within 90 s
    probes: tuple[str, ...] = DEFAULT_PROBES
    organization: str | None = None
    project: str | None = None
    realtime: RealtimeSettings = field(default_factory=RealtimeSettings)
    tls_ca_file: str | None = None
    inference: InferenceSettings = field(default_factory=InferenceSettings)
    live: LiveSettings = field(default_factory=LiveSettings)
    models: tuple[str, ...] = ()  # watched in the model list beside the probes' own models
    provider: str = DEFAULT_PROVIDER  # openai, or azure (an Azure OpenAI resource's key)

    def interval_for(self, probe: str) -> float:
        """A probe kind with its own settings block has its own interval; REST uses the key's."""
        settings = getattr(self, probe, None) if probe != "rest" else None
        return float(getattr(settings, "interval", self.interval))

    @property
    def realtime_url(self) -> str:
        return self.realtime.url or self._websocket_base() + "/realtime"

    @property
    def live_url(self) -> str:
        return self.live.url or self._websocket_base() + "/live/sessions"

    def _websocket_base(self) -> str:
        base = self.base_url.rstrip("/")
        if base.startswith("https://"):
            return "wss://" + base[len("https://") :]
        if base.startswith("http://"):
            return "ws://" + base[len("http://") :]
        return base


@dataclass(frozen=True, slots=True)
class AdminConfig:
    """The optional `admin:` block: an sk-admin- key read only by exporter/inventory.py, for the
    organization's key inventory; it is never probed as a monitored key."""

    source: KeySource
    projects: tuple[str, ...] = ()  # empty: every project the admin key can list
    interval: float = 600.0
    timeout: float = 30.0
    base_url: str = DEFAULT_BASE_URL


@dataclass(frozen=True)
class Config:
    keys: tuple[KeyConfig, ...]
    source: str  # the file it came from, or a description of the defaults used
    admin: AdminConfig | None = None  # None: no inventory, nothing of it runs
    # Settings that work but look like a mistake (exporter/provider.py): logged, not refused.
    warnings: tuple[str, ...] = ()


def parse_duration(text: object, maximum: float = MAX_INTERVAL_S) -> float:
    """`500ms`, `10s`, `5m`, `1h30m` -> seconds, above 0 and at most `maximum` (a day unless
    told). Raises ValueError saying which of the three is wrong."""
    # Bounded first: on a long run of digits with no unit the pattern retries every start.
    if not isinstance(text, str) or not text or len(text) > _MAX_DURATION_CHARS:
        raise ValueError(f"{quoted(text)} is not a duration")
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(text):
        raise ValueError(f"{quoted(text)} is not a duration")
    if total <= 0:
        raise ValueError(f"{quoted(text)} must be positive")
    if not total <= maximum:  # also infinity: 400 nines of seconds overflow a float
        raise ValueError(f"{quoted(text)} is longer than the most allowed, {_seconds(maximum)}")
    return total


def _seconds(seconds: float) -> str:
    for unit in ("d", "h", "m"):
        if seconds >= _UNIT_SECONDS[unit] and seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds / _UNIT_SECONDS[unit]:g}{unit}"
    return f"{seconds:g}s"


def _timeout(text: object) -> float:
    return parse_duration(text, MAX_TIMEOUT_S)


def _screen(name: str, value: object) -> None:
    """What every field's text is refused for, whatever its converter: a control character,
    or a key pasted where its name or location belongs."""
    if not isinstance(value, str):
        return
    if control := _CONTROL_CHARACTER.search(value):
        raise FieldProblem(
            f"holds a control character (U+{ord(control.group()):04X})",
            "remove it: it could not be sent in a header or a URL",
        )
    if pasted := _KEY_IN_VALUE.search(value):
        raise FieldProblem(
            f"holds what looks like an API key ({redact(pasted.group())})",
            _NAME_FIX
            if name == "name"  # the operator meant a name: say what a name is for
            else "keep keys out of the configuration: put the key in a file or variable and"
            " point api_key_file or api_key_env at it",
        )


_NAME_FIX = "the name is a public label in metrics: name the key by its use, such as web"


def _string(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return _owned(value)


def _owned(text: str) -> str:
    """A copy of a string the YAML parser made, so that the parser's memory can all be freed.

    The parser's strings sit among its short-lived nodes and marks, and each one kept holds a
    block of them: a configuration keeps only copies, so what parsing allocated is freed once
    the file is read (the memory row of docs/performance.md; history in bench/NOTES.md).
    """
    return text.encode().decode()  # libyaml refuses lone surrogates: always encodable


def _key_name(value: object) -> str:
    # YAML reads `name: 2024` as a number; as a label it is the same text.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else _string(value)


def _url(value: object, schemes: str = "https?") -> str:
    text = _string(value)
    if not re.match(rf"^({schemes})://[^/\s]+", text):
        kind = "a ws(s)" if schemes.startswith("ws") else "an http(s)"
        raise ValueError(f"{quoted(text)} is not {kind} URL")
    if "@" in text.split("://", 1)[1].split("/", 1)[0]:
        # Not quoted back: what comes before @ is a password. The key goes in its own header.
        raise ValueError("holds a user name or password before '@', which is not shown here")
    if problem := _host_problem(text):
        raise ValueError(problem)
    return text.rstrip("/")


def _host_problem(url: str) -> str:
    """Why a probe could not connect to this URL's host whatever the network does, or "".

    A typo here (`api..openai.com`) would otherwise fail every probe with an encoding error.
    """
    try:
        parsed = yarl.URL(url)
        host, _ = parsed.raw_host, parsed.port  # the port is checked when read
    except ValueError as error:
        return f"is not a usable URL: {error}"
    if not host:
        return "names no host"
    if ":" in host or re.fullmatch(r"[0-9.]+", host):
        return ""  # an IP address, already checked by yarl
    name = host.removesuffix(".")  # a fully qualified name's final dot is allowed
    labels = name.split(".")
    if "" in labels:
        return f"the host {quoted(host)} has an empty label (two dots in a row?)"
    longest = max(labels, key=len)
    if len(longest) > 63:
        return f"the host has a label of {len(longest)} characters (DNS allows at most 63)"
    if len(name) > 253:
        return f"the host has {len(name)} characters (DNS allows at most 253)"
    try:
        name.encode("idna")  # as the resolver will encode it
    except UnicodeError:
        return f"the host {quoted(host)} cannot be encoded for DNS (IDNA)"
    return ""


def _ca_file_problem(path: str) -> str:
    try:
        status = os.stat(path)
    except OSError:
        return f"{path} does not exist"
    if not stat.S_ISREG(status.st_mode):
        return f"{path} does not exist"
    version = (path, identity_of(status))
    if version in _GOOD_CA_FILES:
        return ""  # read once per version of the file: thousands of keys may share it
    # Only the path is quoted back, never the contents (a key file given by mistake must not
    # show its key).
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=path)
    except ssl.SSLError:  # before OSError, which it subclasses
        return f"{path} holds no CA certificate in PEM form"
    except OSError as error:
        return f"{path} cannot be read: {error.strerror or error}"
    if len(_GOOD_CA_FILES) >= 64:
        _GOOD_CA_FILES.clear()
    _GOOD_CA_FILES.add(version)  # only successes: a fixed file is read again
    return ""


_GOOD_CA_FILES: set[tuple[str, FileIdentity]] = set()


def _ws_url(value: object) -> str:
    return _url(value, "wss?")


def _probe_list(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError("must be a non-empty list")
    for probe in value:
        if probe not in PROBES:
            raise ValueError(f"unknown probe {quoted(probe)}")
    return tuple(dict.fromkeys(PROBES[PROBES.index(probe)] for probe in value))  # not YAML's


def _choice(options: tuple[str, ...]) -> Callable[[object], str]:
    def convert(value: object) -> str:
        if value not in options:
            raise ValueError(f"{quoted(value)} is not one of {', '.join(options)}")
        return options[options.index(value)]  # the constant, not YAML's copy

    return convert


_SETTING_FIELDS = {
    "base_url",
    "interval",
    "timeout",
    "retry_interval",
    "probes",
    "organization",
    "project",
    "realtime",
    "tls",
    "inference",
    "live",
    "models",
    "provider",
}
_SOURCE_FIELDS = {"api_key_env", "api_key_file", "dotenv", "dotenv_var", "dotenv_format"}
_FILE_SOURCES = {"api_key_file", "dotenv"}
_DURATION_FIX = "write a duration such as 500ms, 10s or 5m, at most 1d"
_TIMEOUT_FIX = "write a duration such as 500ms, 10s or 1m, at most 5m"
_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_VARIABLE_NAME_FIX = "use letters, digits and _, not starting with a digit"


def _settings(fields: Fields, inherited: KeyConfig) -> dict[str, Any]:
    """The shared settings of `defaults` or of one key, over what it inherits."""
    realtime = fields.child("realtime", {"model", "api", "url", "interval"})
    tls = fields.child("tls", {"ca_file"})
    base = inherited.realtime
    realtime_settings = RealtimeSettings(
        model=realtime.get("model", _string, base.model, "name a Realtime model"),
        api=realtime.get("api", _choice(REALTIME_APIS), base.api, "use ga or beta"),
        url=realtime.get("url", _ws_url, base.url, "use a ws:// or wss:// URL"),
        interval=realtime.get("interval", parse_duration, base.interval, _DURATION_FIX),
    )
    if realtime_settings == base:
        realtime_settings = base  # one shared object for the keys that inherit it, not one each
    live_settings = _live_settings(fields, inherited.live)
    ca_file = tls.get("ca_file", _string, None, "give a PEM file path")
    ca_file = _relative_to_config(fields.file.path, ca_file) if ca_file else inherited.tls_ca_file
    if ca_file and (problem := _ca_file_problem(ca_file)):
        raise tls.error("ca_file", problem, "give a readable PEM file of CA certificates")
    settings: dict[str, Any] = {
        "inference": _inference_settings(fields, inherited.inference),
        "base_url": fields.get("base_url", _url, inherited.base_url, "use an https:// URL"),
        "interval": fields.get("interval", parse_duration, inherited.interval, _DURATION_FIX),
        "timeout": fields.get("timeout", _timeout, inherited.timeout, _TIMEOUT_FIX),
        "retry_interval": fields.get(
            "retry_interval", parse_duration, inherited.retry_interval, _DURATION_FIX
        ),
        "probes": fields.get(
            "probes", _probe_list, inherited.probes, f"list some of: {', '.join(PROBES)}"
        ),
        "organization": fields.get(
            "organization", _string, inherited.organization, "give an organization ID (org-...)"
        ),
        "project": fields.get(
            "project", _string, inherited.project, "give a project ID (proj_...)"
        ),
        "realtime": realtime_settings,
        "tls_ca_file": ca_file,
        "live": live_settings,
        "models": fields.get("models", _model_list, inherited.models, "list model ids"),
        "provider": fields.get(
            "provider", _choice(PROVIDERS), inherited.provider, "use openai or azure"
        ),
    }
    _check_voice_models(fields, settings["probes"], realtime_settings, live_settings)
    if settings["timeout"] > settings["interval"]:
        raise fields.error(
            "timeout",
            f"{settings['timeout']:g}s is longer than the interval ({settings['interval']:g}s)",
            "make the timeout shorter than the interval",
        )
    if "inference" in settings["probes"] and settings["timeout"] > settings["inference"].interval:
        raise fields.error(
            "timeout",
            f"{settings['timeout']:g}s is longer than inference.interval "
            f"({settings['inference'].interval:g}s)",
            "make the timeout shorter than inference.interval",
        )
    if "realtime" in settings["probes"] and settings["timeout"] > realtime_settings.interval:
        raise fields.error(
            "timeout",
            f"{settings['timeout']:g}s is longer than realtime.interval "
            f"({realtime_settings.interval:g}s)",
            "make the timeout shorter than realtime.interval",
        )
    if "live" in settings["probes"] and settings["timeout"] > live_settings.interval:
        raise fields.error(
            "timeout",
            f"{settings['timeout']:g}s is longer than live.interval ({live_settings.interval:g}s)",
            "make the timeout shorter than live.interval",
        )
    return settings


def _inference_settings(fields: Fields, base: InferenceSettings) -> InferenceSettings:
    inference = fields.child("inference", {"model", "interval"})
    settings = InferenceSettings(
        model=inference.get(
            "model", _string, base.model, "name a text model, such as gpt-4.1-nano"
        ),
        interval=inference.get("interval", parse_duration, base.interval, _DURATION_FIX),
    )
    return base if settings == base else settings  # shared by the keys that inherit it


def _live_settings(fields: Fields, base: LiveSettings) -> LiveSettings:
    live = fields.child("live", {"model", "url", "interval"})
    settings = LiveSettings(
        model=live.get("model", _string, base.model, "name a GPT-Live model such as gpt-live-1"),
        url=live.get("url", _ws_url, base.url, "use a ws:// or wss:// URL"),
        interval=live.get("interval", parse_duration, base.interval, _DURATION_FIX),
    )
    return base if settings == base else settings


# A Live model on /v1/realtime is refused (invalid_model), and the reverse: caught here, by name.
_LIVE_MODEL = re.compile(r"(^|[-_.])live([-_.]|$)")


def _check_voice_models(
    fields: Fields, probes: tuple[str, ...], realtime: RealtimeSettings, live: LiveSettings
) -> None:
    prefix = f"{fields.path}." if fields.path else ""
    # Checked per key: defaults may list live and leave each key to name its model.
    if "live" in probes and not live.model and fields.path != "defaults":
        raise fields.error(
            "live.model",
            "missing: the live probe is listed in probes but has no model",
            "set live.model, such as gpt-live-1 (each probe starts a billed session)",
        )
    if live.model and "realtime" in live.model:
        raise fields.error(
            "live.model",
            f"{live.model!r} is a Realtime model",
            f"use a GPT-Live model such as gpt-live-1; a Realtime model goes in {prefix}realtime.model",
        )
    if _LIVE_MODEL.search(realtime.model):
        raise fields.error(
            "realtime.model",
            f"{realtime.model!r} is a GPT-Live model",
            f"use a Realtime model such as gpt-realtime; a Live model goes in {prefix}live.model",
        )


def _model_list(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError("must be a list of model ids")
    return tuple(dict.fromkeys(_string(model) for model in value))


def _relative_to_config(config_file: str, path: str) -> str:
    """A relative path is read from the configuration file's folder, as Prometheus does."""
    if os.path.isabs(path):
        return path
    return os.path.join(os.path.dirname(os.path.abspath(config_file)), path)


def _looks_like_key(text: str) -> bool:
    """A key pasted where its name or location belongs: never to be quoted back."""
    return key_kind(text) != "unknown" and len(text.strip()) >= 40  # the shortest real keys


def _key_source(fields: Fields) -> KeySource:
    given = [name for name in ("api_key_env", "api_key_file", "dotenv") if fields.has(name)]
    if len(given) != 1:
        problem = "no key source" if not given else f"several key sources ({', '.join(given)})"
        raise fields.error("", problem, "set exactly one of api_key_env, api_key_file, dotenv")
    kind = SourceKind(given[0])
    for name, value in (
        (kind.value, fields.value(kind.value)),
        ("dotenv_var", fields.value("dotenv_var")),
    ):
        if isinstance(value, str) and _looks_like_key(value):
            raise fields.error(
                name,
                "holds what looks like an API key, not where to find one",
                "keep the key out of the configuration: put it in a file or variable"
                f" and set {name} to its {'path' if name in _FILE_SOURCES else 'name'}",
            )
    location = fields.get(kind.value, _string, "", "give a variable name or a file path")
    if kind is not SourceKind.ENV:
        location = _relative_to_config(fields.file.path, location)
    for dotenv_only in ("dotenv_var", "dotenv_format"):
        if kind is not SourceKind.DOTENV and fields.has(dotenv_only):
            raise fields.error(dotenv_only, "only applies with dotenv", "remove it")
    if kind is not SourceKind.ENV and (problem := key_file_problem(location)):
        raise fields.error(kind.value, problem, f"set {kind.value} to a readable file")
    if kind is SourceKind.ENV and not _VARIABLE_NAME.match(location):
        raise fields.error(
            kind.value, f"{quoted(location)} is not a variable name", _VARIABLE_NAME_FIX
        )
    return KeySource(
        kind=kind,
        location=location,
        dotenv_var=fields.get(
            "dotenv_var", _string, "OPENAI_API_KEY", "name the variable in the .env file"
        ),
        dotenv_format=fields.get(
            "dotenv_format",
            lambda value: DotenvFormat(_choice(tuple(DotenvFormat))(value)),
            DotenvFormat.NODE,
            "use node (the npm dotenv package) or literal (docker --env-file)",
        ),
    )


def parse_config(text: str, file: str) -> Config:
    try:
        return _parse(text, file)
    except YamlRefused as refused:
        raise ConfigError(f"{file}: {refused}") from None
    except RecursionError:  # the pure-Python parser, without libyaml's own depth limit
        raise ConfigError(f"{file}: not valid YAML: nested too deeply (flatten it)") from None
    except yaml.YAMLError as problem:
        mark = getattr(problem, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        detail = getattr(problem, "problem", None)
        what = f": {detail}" if detail else ""
        raise ConfigError(f"{file}: not valid YAML{where}{what} (fix the syntax)") from None


def _parse(text: str, file: str) -> Config:
    """The configuration in `text`; the YAML's own errors (syntax, tags, a key set twice, an
    alias bomb, a number too long) are raised as PyYAML or strict_yaml raise them."""
    root, loader = compose_strict(text)
    yaml_file = YamlFile(file, PyYaml(loader), ConfigError, screen=_screen)
    top = Fields(yaml_file, root, "", {"defaults", "keys", "admin"})
    defaults_fields = top.child("defaults", _SETTING_FIELDS)
    defaults = _settings(defaults_fields, KeyConfig(name="", source=_NO_SOURCE))
    raw_keys = top.sequence("keys")
    if not raw_keys:
        raise top.error("keys", "must be a non-empty list of keys", "add at least one key")
    keys: list[KeyConfig] = []
    seen: dict[str, int] = {}
    key_fields = {"name"} | _SETTING_FIELDS | _SOURCE_FIELDS
    for index, raw in enumerate(raw_keys):
        fields = Fields(yaml_file, raw, f"keys[{index}]", key_fields)
        name = fields.get("name", _key_name, None, "name the key: it is its label in metrics")
        if name is None:
            raise fields.error("name", "missing", "name the key: it is its label in metrics")
        if _looks_like_key(name):
            raise fields.error(
                "name",
                "looks like an API key",
                _NAME_FIX,
            )
        if not _KEY_NAME.match(name):
            raise fields.error(
                "name",
                f"{quoted(name)} is not a usable name",
                "use letters, digits and _ . : @ / - (at most 128)",
            )
        if name in seen:
            raise fields.error(
                "name",
                f"{quoted(name)} is already used by keys[{seen[name]}]",
                "give each key its own name",
            )
        seen[name] = index
        source = _key_source(fields)
        inherited = KeyConfig(name=name, source=source, **defaults)
        keys.append(KeyConfig(name=name, source=source, **_settings(fields, inherited)))
    admin = _admin_config(top, keys) if top.has("admin") else None
    config = Config(keys=tuple(keys), source=file, admin=admin)
    return replace(config, warnings=config_warnings(file, config.keys))


_ADMIN_FIELDS = {"api_key_env", "api_key_file", "projects", "interval", "timeout", "base_url"}


def _admin_config(top: Fields, keys: list[KeyConfig]) -> AdminConfig:
    fields = top.child("admin", _ADMIN_FIELDS)
    given = [name for name in ("api_key_env", "api_key_file") if fields.has(name)]
    if len(given) != 1:  # dotenv is refused above, as an unknown field of admin
        problem = "no key source" if not given else "both api_key_env and api_key_file"
        raise fields.error("", problem, "set exactly one of api_key_env, api_key_file")
    source = _key_source(fields)
    for index, key in enumerate(keys):
        if key.source.kind is source.kind and key.source.location == source.location:
            # Probing an admin key as a project key would only ever say "rejected".
            raise fields.error(
                source.kind.value,
                f"{source.location} is also the source of keys[{index}] ({key.name})",
                "an admin key is never probed: remove it from keys, or point admin at the"
                " admin key's own variable or file",
            )
    interval = fields.get("interval", parse_duration, 600.0, _DURATION_FIX)
    timeout = fields.get("timeout", _timeout, 30.0, _TIMEOUT_FIX)
    if timeout > interval:
        raise fields.error(
            "timeout",
            f"{timeout:g}s is longer than the interval ({interval:g}s)",
            "make the timeout shorter than the interval",
        )
    return AdminConfig(
        source=source,
        projects=fields.get("projects", _project_list, (), "list project IDs (proj_...)"),
        interval=interval,
        timeout=timeout,
        base_url=fields.get("base_url", _url, DEFAULT_BASE_URL, "use an https:// URL"),
    )


_PROJECT_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def _project_list(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError("must be a non-empty list of project IDs")
    for project in value:
        if not isinstance(project, str) or not _PROJECT_ID.match(project):
            # Quoted: the ID goes in a URL path, so only ID characters are accepted.
            raise ValueError(f"{quoted(project)} is not a project ID")
    return tuple(dict.fromkeys(_owned(project) for project in value))


_NO_SOURCE = KeySource(SourceKind.ENV, "OPENAI_API_KEY")


def load_config(path: str) -> Config:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as problem:
        raise ConfigError(
            f"{path}: cannot be read: {problem.strerror} (pass --config.file a readable file)"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: is not UTF-8 text (save it as UTF-8)") from None
    return parse_config(text, path)


def config_from_environment() -> Config:
    """No file: one key named `default`, as the OpenAI SDKs read it."""
    base_url = os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
    try:
        base_url = _url(base_url)
    except ValueError as problem:
        raise ConfigError(f"OPENAI_BASE_URL: {problem} (set it to an https:// URL)") from None
    key = KeyConfig(name="default", source=_NO_SOURCE, base_url=base_url)
    return Config(keys=(key,), source="environment (OPENAI_API_KEY, OPENAI_BASE_URL)")
