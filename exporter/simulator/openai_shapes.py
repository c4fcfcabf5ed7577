"""The bytes OpenAI sends: error envelopes, model lists, Realtime events, edge HTML pages."""

from __future__ import annotations

import json
import secrets
import string
import time
from typing import Any

OPENAI_VERSION = "2020-10-01"
KEYS_URL = "https://platform.openai.com/account/api-keys"
RATE_LIMIT_REQUESTS = 10000
RATE_LIMIT_TOKENS = 30000000

# The gpt-4o-realtime-preview family was shut down in 2026: neither listed nor served.
REALTIME_MODELS = (
    "gpt-realtime-2.1",
    "gpt-realtime",
    "gpt-realtime-mini",
    "gpt-realtime-2025-08-28",
)
LIVE_MODELS = ("gpt-live-1",)

# (id, created, shutdown_date): the dates OpenAI announced, null where it gave none.
_MODELS: tuple[tuple[str, int, str | None], ...] = (
    ("gpt-realtime", 1756271701, "2027-01-20"),
    ("gpt-realtime-mini", 1759517133, None),
    ("gpt-realtime-2025-08-28", 1756271773, None),
    ("gpt-realtime-2.1", 1786924800, None),
    ("gpt-live-1", 1789603200, None),
    ("gpt-4o", 1715367049, None),
    ("gpt-4o-mini", 1721172741, None),
    ("gpt-4.1-nano", 1744321025, None),
    ("text-embedding-3-small", 1705948997, None),
)

_ID_ALPHABET = string.ascii_letters + string.digits


def redact_key(key: str) -> str:
    """The key as OpenAI quotes it back: first 8 characters, `...`, last 4."""
    if len(key) < 16:
        return "*" * len(key)
    return f"{key[:8]}...{key[-4:]}"


def request_id() -> str:
    return "req_" + secrets.token_hex(16)


def event_id() -> str:
    return "event_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(21))


def session_id() -> str:
    return "sess_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(21))


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def error_body(message: str, type_: str, code: str | None, param: str | None = None) -> bytes:
    """The REST error envelope, pretty-printed with four spaces like api.openai.com."""
    envelope = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return (json.dumps(envelope, indent=4) + "\n").encode()


def _model(name: str, created: int, shutdown_date: str | None) -> dict[str, Any]:
    return {
        "id": name,
        "object": "model",
        "created": created,
        "owned_by": "system",
        "shutdown_date": shutdown_date,
    }


def model_list(hidden: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The list a key sees; `hidden`: models this key may not use (not listed for it)."""
    return {
        "object": "list",
        "data": [_model(*entry) for entry in _MODELS if entry[0] not in hidden],
    }


def model_object(name: str) -> dict[str, Any] | None:
    for entry in _MODELS:
        if entry[0] == name:
            return _model(*entry)
    return None


# REST error messages, as OpenAI words them.
def incorrect_key_message(key: str) -> str:
    return (
        f"Incorrect API key provided: {redact_key(key)}. You can find your API key at {KEYS_URL}."
    )


NO_KEY_MESSAGE = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with "
    "blank username) if you're accessing the API from your browser and are prompted for a "
    f"username. You can obtain an API key from {KEYS_URL}."
)


def missing_scopes_message(scope: str) -> str:
    return (
        f"You have insufficient permissions for this operation. Missing scopes: {scope}. "
        "Check that you have the correct role in your organization (Reader, Writer, Owner) "
        "and project (Member, Owner), and if you're using a restricted API key, that it has "
        "the necessary scopes."
    )


MISMATCHED_ORGANIZATION_MESSAGE = "OpenAI-Organization header should match organization for API key"
MISMATCHED_PROJECT_MESSAGE = "OpenAI-Project header should match project for API key"
ACCOUNT_DEACTIVATED_MESSAGE = (
    "This key is associated with a deactivated account. If you feel this is an error, "
    "contact us through our help center at help.openai.com."
)
INSUFFICIENT_QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, read the docs: "
    "https://platform.openai.com/docs/guides/error-codes/api-errors."
)
CREDIT_BALANCE_EXHAUSTED_MESSAGE = (
    "You have no credits remaining. Add credits to continue using the API at "
    "https://platform.openai.com/settings/organization/billing/."
)
UNSUPPORTED_REGION_MESSAGE = "Country, region, or territory not supported"
# Models the Responses API answers with text: the chat and text models of the model list.
TEXT_MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-4.1-nano")


def response_object(model: str, text: str, input_tokens: int, output_tokens: int) -> dict[str, Any]:
    """A completed `POST /v1/responses` answer, as the Responses API shapes it."""
    return {
        "id": "resp_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(48)),
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "error": None,
        "incomplete_details": None,
        "model": model,
        "output": [
            {
                "type": "message",
                "id": "msg_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(48)),
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ],
        "store": False,
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        },
    }


def rate_limit_message(retry_after_s: int) -> str:
    return (
        "Rate limit reached for requests in organization org-simulator on requests per min "
        f"(RPM): Limit {RATE_LIMIT_REQUESTS}, Used {RATE_LIMIT_REQUESTS}, Requested 1. "
        f"Please try again in {retry_after_s}s. "
        "Visit https://platform.openai.com/account/rate-limits to learn more."
    )


def server_error_message(req_id: str) -> str:
    return (
        "The server had an error processing your request. Sorry about that! You can retry your "
        "request, or contact us through our help center at help.openai.com if you keep seeing "
        f"this error. (Please include the request ID {req_id} in your email.)"
    )


def overloaded_message(req_id: str) -> str:
    return (
        "That model is currently overloaded with other requests. You can retry your request, "
        "or contact us through our help center at help.openai.com if the error persists. "
        f"(Please include the request ID {req_id} in your message.)"
    )


def edge_html(status: int, reason: str) -> bytes:
    """The HTML page the edge proxy answers with when the origin fails."""
    return (
        f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {reason}</h1></center>\r\n"
        "<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"
    ).encode()


CAPTIVE_PORTAL_HTML = (
    b"<!DOCTYPE html>\n<html><head><title>Sign in to the network</title></head>\n"
    b"<body><h1>Welcome</h1><p>Please accept the terms of use to continue.</p>"
    b'<form method="post"><button>Accept</button></form></body></html>\n'
)

NON_JSON_BODY = (
    b"upstream connect error or disconnect/reset before headers. "
    b"reset reason: connection termination"
)

WRONG_SHAPE = {"status": "ok", "result": {"models": ["gpt-realtime"], "count": 1}}


# Realtime events.
def error_event(
    message: str,
    code: str | None,
    type_: str = "invalid_request_error",
    param: str | None = None,
    client_event_id: str | None = None,
) -> dict[str, Any]:
    return {
        "type": "error",
        "event_id": event_id(),
        "error": {
            "type": type_,
            "code": code,
            "message": message,
            "param": param,
            "event_id": client_event_id,
        },
    }


MISSING_AUTH_RT_MESSAGE = "Missing bearer or basic authentication in header"
BETA_RT_MESSAGE = (
    "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API."
)
SESSION_EXPIRED_MESSAGE = "Your session hit the maximum duration of 60 minutes."


def realtime_session(model: str) -> dict[str, Any]:
    """A GA session object, as `session.created` carries it."""
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id(),
        "model": model,
        "output_modalities": ["audio"],
        "instructions": "Your knowledge cutoff is 2023-10.",
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "prompt": None,
        "expires_at": int(time.time()) + 3600,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 200,
                    "idle_timeout_ms": None,
                    "create_response": True,
                    "interrupt_response": True,
                },
            },
            "output": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "voice": "alloy",
                "speed": 1.0,
            },
        },
        "include": None,
    }
