"""The one table of probe result classes: what each means, whether it says the key is valid,
and which runbook section fixes it. Metrics, logs and the check command all read it."""

from __future__ import annotations

import enum
import re
import ssl
from dataclasses import dataclass


class Validity(enum.Enum):
    """What a result says about the key itself."""

    VALID = "valid"
    INVALID = "invalid"
    UNKNOWN = "unknown"  # the probe failed for reasons that say nothing about the key


class Result(enum.StrEnum):
    OK = "ok"
    INVALID_API_KEY = "invalid_api_key"
    KEY_REVOKED = "key_revoked"  # only with an admin key: rejected and absent from the inventory
    ACCOUNT_DEACTIVATED = "account_deactivated"
    INSUFFICIENT_PERMISSIONS = "insufficient_permissions"
    MISMATCHED_ORGANIZATION = "mismatched_organization"
    MISMATCHED_PROJECT = "mismatched_project"
    INSUFFICIENT_QUOTA = "insufficient_quota"
    RATE_LIMITED = "rate_limited"
    UNSUPPORTED_REGION = "unsupported_region"
    MODEL_NOT_FOUND = "model_not_found"
    API_SHAPE_RETIRED = "api_shape_retired"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"
    TLS_ERROR = "tls_error"
    PROTOCOL_ERROR = "protocol_error"
    KEY_MISSING = "key_missing"
    KEY_MALFORMED = "key_malformed"
    OTHER = "other"


@dataclass(frozen=True)
class ResultInfo:
    validity: Validity
    runbook_anchor: str  # section of docs/runbook.md; "" for ok (links.Links makes the URL)
    summary: str  # one line for a person


RESULTS: dict[Result, ResultInfo] = {
    Result.OK: ResultInfo(Validity.VALID, "", "OpenAI accepted the key"),
    Result.INVALID_API_KEY: ResultInfo(
        Validity.INVALID, "key-invalid", "OpenAI rejected the key (wrong, revoked or deleted)"
    ),
    Result.KEY_REVOKED: ResultInfo(
        Validity.INVALID,
        "key-revoked",
        "OpenAI rejected the key and the organization no longer lists it (deleted or revoked)",
    ),
    Result.ACCOUNT_DEACTIVATED: ResultInfo(
        Validity.INVALID, "key-invalid", "the key belongs to a deactivated account"
    ),
    Result.INSUFFICIENT_PERMISSIONS: ResultInfo(
        Validity.VALID, "key-permissions", "the key is restricted and lacks a scope"
    ),
    Result.MISMATCHED_ORGANIZATION: ResultInfo(
        Validity.VALID,
        "organization-project-mismatch",
        "the OpenAI-Organization header does not match the key",
    ),
    Result.MISMATCHED_PROJECT: ResultInfo(
        Validity.VALID,
        "organization-project-mismatch",
        "the OpenAI-Project header does not match the key",
    ),
    Result.INSUFFICIENT_QUOTA: ResultInfo(
        Validity.VALID, "quota-exhausted", "no credit or quota left"
    ),
    Result.RATE_LIMITED: ResultInfo(Validity.VALID, "rate-limited", "rate limit reached"),
    Result.UNSUPPORTED_REGION: ResultInfo(
        Validity.UNKNOWN, "unsupported-region", "OpenAI refuses this country or region"
    ),
    Result.MODEL_NOT_FOUND: ResultInfo(
        Validity.VALID,
        "model-not-found",
        "the probed model (Realtime, Live or inference) does not exist or is not allowed",
    ),
    Result.API_SHAPE_RETIRED: ResultInfo(
        Validity.VALID,
        "realtime-beta-retired",
        "the session interface the probe speaks is refused (Realtime beta, Live session shape)",
    ),
    Result.SERVER_ERROR: ResultInfo(
        Validity.UNKNOWN, "upstream-server-error", "OpenAI or its edge answered with a 5xx"
    ),
    Result.TIMEOUT: ResultInfo(Validity.UNKNOWN, "probe-timeout", "no answer within the timeout"),
    Result.CONNECTION_ERROR: ResultInfo(
        Validity.UNKNOWN, "connection-error", "connection refused, reset, dropped or DNS failure"
    ),
    Result.TLS_ERROR: ResultInfo(Validity.UNKNOWN, "tls-error", "TLS handshake failed"),
    Result.PROTOCOL_ERROR: ResultInfo(
        Validity.UNKNOWN, "protocol-error", "the answer is not what OpenAI sends"
    ),
    Result.KEY_MISSING: ResultInfo(
        Validity.INVALID, "key-missing-or-malformed", "no key could be read from its source"
    ),
    Result.KEY_MALFORMED: ResultInfo(
        Validity.INVALID,
        "key-missing-or-malformed",
        "the key cannot be sent in a header (line break or non-ASCII)",
    ),
    Result.OTHER: ResultInfo(Validity.UNKNOWN, "probe-failing", "an unexpected answer"),
}

# OpenAI `error.code` values (REST body, Realtime error event or close reason) and their class.
ERROR_CODES: dict[str, Result] = {
    "invalid_api_key": Result.INVALID_API_KEY,
    "account_deactivated": Result.ACCOUNT_DEACTIVATED,
    "mismatched_organization": Result.MISMATCHED_ORGANIZATION,
    "mismatched_project": Result.MISMATCHED_PROJECT,
    "insufficient_quota": Result.INSUFFICIENT_QUOTA,
    "credit_balance_exhausted": Result.INSUFFICIENT_QUOTA,  # newer endpoints (GPT-Live)
    "missing_authorization": Result.KEY_MISSING,  # GPT-Live's 401 without a key
    "rate_limit_exceeded": Result.RATE_LIMITED,
    "unsupported_country_region_territory": Result.UNSUPPORTED_REGION,
    "invalid_model": Result.MODEL_NOT_FOUND,
    "missing_model": Result.MODEL_NOT_FOUND,
    "model_not_found": Result.MODEL_NOT_FOUND,
    "beta_api_shape_disabled": Result.API_SHAPE_RETIRED,
    # Azure OpenAI's codes for a deployment that is absent or cannot serve Realtime
    "DeploymentNotFound": Result.MODEL_NOT_FOUND,
    "OperationNotSupported": Result.MODEL_NOT_FOUND,
}

# Codes kept as their own label value in openai_probe_errors_total; others become "other".
KNOWN_ERROR_CODES: frozenset[str] = frozenset(ERROR_CODES) | {
    "session_expired",
    "unknown_parameter",  # GPT-Live's strict session object
    "missing_required_parameter",
    "missing_scopes",
    "missing_api_key",
    "server_error",
}

_MISSING_SCOPES = re.compile(r"missing scopes:", re.IGNORECASE)
# Azure OpenAI's rejected key: HTTP 401, `code` "401" (the status as a string), no `type`.
_AZURE_KEY_REFUSED = re.compile(r"access denied due to invalid subscription key", re.IGNORECASE)
_REGION_REFUSED = re.compile(r"country, region, or territory not supported", re.IGNORECASE)
_NO_KEY_PROVIDED = re.compile(
    r"didn't provide an api key|missing bearer or basic authentication", re.IGNORECASE
)


def classify_openai_error(
    status: int | None, error_type: str | None, code: str | None, message: str
) -> tuple[Result, str]:
    """Classify an OpenAI error envelope (REST body or Realtime error event).

    Returns the result class and the code to count in openai_probe_errors_total.
    """
    if code and code in ERROR_CODES:
        return ERROR_CODES[code], code
    if _AZURE_KEY_REFUSED.search(message):
        return Result.INVALID_API_KEY, "invalid_api_key"
    if _MISSING_SCOPES.search(message):
        return Result.INSUFFICIENT_PERMISSIONS, "missing_scopes"
    if _NO_KEY_PROVIDED.search(message):
        return Result.KEY_MISSING, "missing_api_key"
    if error_type == "insufficient_quota":
        return Result.INSUFFICIENT_QUOTA, "insufficient_quota"
    # Before the 429 test: "model overloaded" came as a 429 of type server_error historically.
    if error_type == "server_error" or (status is not None and status >= 500):
        return Result.SERVER_ERROR, "server_error"
    if error_type in {"requests", "tokens"} or status == 429:
        return Result.RATE_LIMITED, "rate_limit_exceeded"
    if _REGION_REFUSED.search(message):
        return Result.UNSUPPORTED_REGION, "unsupported_country_region_territory"
    if status == 401:
        return Result.INVALID_API_KEY, code or "invalid_api_key"
    # A 403 proves a scope or region problem only by its text or code (above); a bare one
    # (`Forbidden.` from a proxy, a firewall or a refusal OpenAI does not document) is not read
    # as the key lacking a permission: it stays `other`, with its status beside it.
    return Result.OTHER, code or "other"


def caused_by_tls(error: BaseException) -> bool:
    """A TLS failure anywhere in an exception's chain: the HTTP and WebSocket libraries wrap it."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ssl.SSLError | ssl.CertificateError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def error_code_label(code: str) -> str:
    """Bound the label values of openai_probe_errors_total: unknown codes collapse to `other`."""
    if code in KNOWN_ERROR_CODES or code in Result.__members__.values():
        return code
    return "other"
