"""The simulator's scenarios: which behaviour a key selects, and how to make a key that selects it."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from exporter.keys import typical_lengths

# Found anywhere in the bearer token, so every real prefix works (sk-, sk-proj-, sk-svcacct-).
SCENARIO_PATTERN = re.compile(r"sim--([a-z0-9_]+)(?:--(\d+))?--")

# The characters OpenAI keys are made of; a token with anything else is an unknown key.
KEY_CHARSET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")
_LETTERS = KEY_CHARSET[:52]


@dataclass(frozen=True)
class Scenario:
    """What one scenario does on REST (`GET /v1/models`), the Realtime and the Live WebSockets."""

    rest: str
    realtime: str
    default_arg: int | None = None  # used when the key carries no number
    live: str = "healthy Live session"

    def __str__(self) -> str:
        return f"REST: {self.rest}; Realtime: {self.realtime}; Live: {self.live}"


_RT_OK = "healthy GA session"
_RT_AUTH = "101, error event code {code}, close 3000 reason invalid_request_error.{code}"
_REJECT = "upgrade rejected with the same HTTP response as REST"
_LIVE_IN_BAND = "101, after session.start an error event code {code}, then close 1008"

SCENARIOS: dict[str, Scenario] = {
    # REST-focused
    "ok": Scenario("200 model list with x-ratelimit-* headers", _RT_OK),
    "ok_no_ratelimit_headers": Scenario("200 model list, no x-ratelimit-* headers", _RT_OK),
    "invalid_api_key": Scenario(
        "401 invalid_request_error code invalid_api_key (Incorrect API key provided)",
        _RT_AUTH.format(code="invalid_api_key"),
        live="upgrade rejected: HTTP 401 OpenAI JSON error code invalid_api_key",
    ),
    "missing_scopes": Scenario(
        "401 invalid_request_error code null, 'Missing scopes: api.model.read'", _RT_OK
    ),
    "account_deactivated": Scenario(
        "401 invalid_request_error code account_deactivated",
        _RT_AUTH.format(code="account_deactivated"),
        live=_LIVE_IN_BAND.format(code="account_deactivated"),
    ),
    "mismatched_organization": Scenario(
        "401 invalid_request_error code mismatched_organization",
        _RT_AUTH.format(code="mismatched_organization"),
    ),
    "mismatched_project": Scenario(
        "401 invalid_request_error code mismatched_project",
        _RT_AUTH.format(code="mismatched_project"),
    ),
    # No free call sees credit: /v1/models and opening a session answer as for a healthy key.
    "insufficient_quota": Scenario(
        "200 model list; POST /v1/responses: 429 insufficient_quota code insufficient_quota",
        "healthy session; response.create answered by an insufficient_quota error event",
    ),
    "credit_balance_exhausted": Scenario(
        "200 model list; POST /v1/responses: 429 code credit_balance_exhausted",
        "healthy session; response.create answered by an insufficient_quota error event",
        live="101, session.start answered by an error event code credit_balance_exhausted "
        "(no session.started, nothing billed); the socket stays open",
    ),
    "rate_limited": Scenario(
        "429 type requests code rate_limit_exceeded, retry-after <arg> s, "
        "x-ratelimit-remaining-requests 0",
        _RT_OK,
        default_arg=20,
    ),
    "unsupported_region": Scenario(
        "403 request_forbidden code unsupported_country_region_territory", _REJECT, live=_REJECT
    ),
    "server_error": Scenario(
        "500 server_error JSON",
        "101, error event type server_error, close 1011",
        live="101, error event type server_error, close 1011",
    ),
    "overloaded": Scenario("503 server_error JSON (model overloaded)", _REJECT, live=_REJECT),
    "bad_gateway": Scenario("502 HTML page (edge proxy)", _REJECT, live=_REJECT),
    "gateway_timeout": Scenario("504 HTML page (edge proxy)", _REJECT, live=_REJECT),
    "slow": Scenario(
        "200 model list after exactly <arg> ms",
        "session.created <arg> ms after the upgrade",
        default_arg=1000,
        live="session.started <arg> ms after session.start",
    ),
    # Faults
    "hang": Scenario(
        "connection accepted, no response headers ever",
        "TCP accepted, upgrade never answered",
        live="TCP accepted, upgrade never answered",
    ),
    "hang_body": Scenario("200 headers and half the body, then nothing", _RT_OK),
    "reset": Scenario(
        "TCP RST (SO_LINGER 0) instead of a response",
        "TCP RST at the upgrade",
        live="TCP RST at the upgrade",
    ),
    "non_json": Scenario("200 text/plain garbage", _RT_OK),
    "wrong_shape": Scenario("200 JSON that is not a model list", _RT_OK),
    "html_200": Scenario("200 text/html page (captive portal)", _RT_OK),
    "endless": Scenario("200 chunked body that never ends, until the client leaves", _RT_OK),
    "drip": Scenario(
        "200 model list dripped in pieces, the last one just under <arg> ms", _RT_OK, 2000
    ),
    # Realtime-focused
    "rt_missing_scopes": Scenario(
        "200 model list",
        "101, error event code null 'Missing scopes: api.model.realtime.', "
        "close 3000 reason invalid_request_error",
    ),
    "rt_forbidden": Scenario(
        "200 model list", "upgrade rejected: HTTP 403 OpenAI JSON error code model_not_found"
    ),
    "rt_azure_400": Scenario(
        "200 model list", "upgrade rejected: HTTP 400 Azure JSON {error:{code,message}}"
    ),
    "rt_html_502": Scenario("200 model list", "upgrade rejected: HTTP 502 HTML page"),
    "rt_session_expired": Scenario(
        "200 model list",
        "session.created, <arg> ms later error event session_expired and close 1001",
        default_arg=0,
    ),
    "rt_drop": Scenario(
        "200 model list", "101, then the TCP connection closes without a close frame (1006)"
    ),
    "rt_silent": Scenario("200 model list", "101, then no event ever"),
    "rt_silent_update": Scenario(
        "200 model list", "session.created, but session.update is never answered"
    ),
    "rt_binary": Scenario(
        "200 model list", "a binary frame instead of session.created, then nothing"
    ),
    "rt_garbage": Scenario(
        "200 model list", "a non-JSON text frame instead of session.created, then nothing"
    ),
    "rt_unknown_close": Scenario(
        "200 model list", "101, then close 4999 reason sim.unknown_close_code"
    ),
    "rt_unexpected_event": Scenario(
        "200 model list",
        "a conversation.item.done event instead of session.created, then nothing",
    ),
    "rt_flood": Scenario(
        "200 model list",
        "<arg> unrelated events before session.created and <arg>/3 before session.updated, "
        "otherwise healthy",
        default_arg=300,
    ),
    "rest_missing_scopes": Scenario(
        "401 invalid_request_error code null, 'Missing scopes: api.model.read'",
        "healthy GA session (the key is valid for Realtime only)",
    ),
    # GPT-Live-focused
    "live_key_in_band": Scenario(
        "401 invalid_request_error code invalid_api_key (Incorrect API key provided)",
        _RT_AUTH.format(code="invalid_api_key"),
        live=_LIVE_IN_BAND.format(code="invalid_api_key"),
    ),
    "live_model_not_found": Scenario(
        "200 model list without the GPT-Live models",
        _RT_OK,
        live="101, session.start answered by an error event code model_not_found",
    ),
    "live_shape_retired": Scenario(
        "200 model list",
        _RT_OK,
        live="101, session.start answered by an error event code unknown_parameter "
        "(param session.model: as if the session object had changed)",
    ),
    "live_silent": Scenario(
        "200 model list",
        _RT_OK,
        live="101, session.start never answered; session.close still answered with session.closed",
    ),
    "live_drop": Scenario(
        "200 model list",
        _RT_OK,
        live="session.started, then the TCP connection closes without a close frame (1006)",
    ),
}


@dataclass(frozen=True)
class Selection:
    """The scenario a key selects, with its argument (the scenario's default if none given)."""

    scenario: str
    arg: int | None


def select_scenario(token: str) -> Selection | None:
    """The scenario a bearer token selects; None means OpenAI would not know this key."""
    if not _KEY_RE.fullmatch(token):
        return None
    match = SCENARIO_PATTERN.search(token)
    if match is None or match.group(1) not in SCENARIOS:
        return None
    arg = int(match.group(2)) if match.group(2) is not None else None
    return selection(match.group(1), arg)


def selection(scenario: str, arg: int | None) -> Selection:
    """A Selection with the scenario's default argument filled in."""
    if arg is None:
        arg = SCENARIOS[scenario].default_arg
    return Selection(scenario, arg)


def make_key(
    scenario: str,
    arg: int | None = None,
    prefix: str = "sk-proj-",
    length: int | None = None,
    seed: str = "",
) -> str:
    """A plausible fake key of `length` characters that selects `scenario` in the simulator.

    Without `length`, the full length of a real key of that prefix (164 for `sk-proj-`, 51 for
    a legacy `sk-`), so the exporter's lint finds nothing odd in it.

    The padding is derived from `seed`, so the same arguments always give the same key and
    different seeds give keys that differ in their last four characters too.
    """
    if scenario not in SCENARIOS:
        known = ", ".join(sorted(SCENARIOS))
        raise ValueError(f"unknown simulator scenario {scenario!r} (known: {known})")
    if arg is not None and arg < 0:
        raise ValueError(f"scenario argument must be >= 0, got {arg}")
    if not _KEY_RE.fullmatch(prefix):
        raise ValueError(f"key prefix {prefix!r} must use only [A-Za-z0-9_-]")
    head = f"{prefix}sim--{scenario}--" + (f"{arg}--" if arg is not None else "")
    if length is None:
        length = (typical_lengths(prefix + "x") or (164,))[0]
    if len(head) >= length:
        raise ValueError(f"length {length} is too short for {head!r} plus padding")
    return head + _padding(f"{seed}|{head}", length - len(head))


def _padding(seed: str, count: int) -> str:
    # The first character is a letter so the padding can never be read as `--<digits>--`.
    chars: list[str] = []
    block = 0
    while len(chars) < count:
        digest = hashlib.sha256(f"{seed}|{block}".encode()).digest()
        for byte in digest:
            alphabet = _LETTERS if not chars else KEY_CHARSET
            chars.append(alphabet[byte % len(alphabet)])
        block += 1
    return "".join(chars[:count])
