"""Azure OpenAI's error shapes through the one classification table, the confirmed ones and the
plausible alternatives the facts leave open (each marked), both for REST and the handshake."""

from __future__ import annotations

import json

import pytest

from exporter.classify import Result, classify_openai_error, error_code_label
from exporter.probes.rest_answer import from_response

KEY = "0123456789abcdef0123456789abcdef"
INVALID_KEY_MESSAGE = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
    "valid key for an active subscription and use a correct regional API endpoint for your "
    "resource."
)


def azure_error(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected", "label"),
    [
        # Confirmed (openai-facts.md): a rejected key, code the string "401".
        (
            401,
            azure_error("401", INVALID_KEY_MESSAGE),
            {},
            Result.INVALID_API_KEY,
            "invalid_api_key",
        ),
        # Confirmed: the deployment's model cannot serve Realtime.
        (
            400,
            azure_error("OperationNotSupported", "no"),
            {},
            Result.MODEL_NOT_FOUND,
            "OperationNotSupported",
        ),
        # Unconfirmed body, code as named in the issue: a deployment that does not exist.
        (
            404,
            azure_error("DeploymentNotFound", "gone"),
            {},
            Result.MODEL_NOT_FOUND,
            "DeploymentNotFound",
        ),
        # Unconfirmed body: throttling, code "429", with retry-after (confirmed header).
        (
            429,
            azure_error(
                "429", "Requests ... exceeded call rate limit. Please retry after 7 seconds."
            ),
            {"retry-after": "7"},
            Result.RATE_LIMITED,
            "rate_limit_exceeded",
        ),
        # Unconfirmed: throttling answered without a JSON body.
        (429, b"Too Many Requests", {"retry-after": "7"}, Result.RATE_LIMITED, "rate_limited"),
        # Unconfirmed: a key missing altogether (API Management's wording).
        (
            401,
            azure_error("401", "Access denied due to missing subscription key."),
            {},
            Result.INVALID_API_KEY,
            "other",
        ),
        # Unconfirmed: a path the resource does not serve (wrong base_url path).
        (404, azure_error("404", "Resource not found"), {}, Result.OTHER, "other"),
    ],
    ids=[
        "invalid-key",
        "operation-not-supported",
        "deployment-not-found",
        "throttled",
        "throttled-no-json",
        "missing-key",
        "wrong-path",
    ],
)
def test_azure_rest_answers(
    status: int, body: bytes, headers: dict[str, str], expected: Result, label: str
) -> None:
    result = from_response(status, headers, body, False, 0.1, {}, KEY)
    assert result.result is expected, result
    assert error_code_label(result.error_code) == label
    if status == 429:
        assert result.retry_after == 7


def test_an_invalid_key_in_band_is_classified_as_on_openai() -> None:
    """Unconfirmed: Azure's Realtime might accept the upgrade and refuse the key in an error
    event, as OpenAI does; the text alone says the key was refused."""
    assert classify_openai_error(None, None, "401", INVALID_KEY_MESSAGE) == (
        Result.INVALID_API_KEY,
        "invalid_api_key",
    )
