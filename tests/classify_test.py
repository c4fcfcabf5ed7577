"""The result table and the classification of OpenAI's errors: what a person is told, pinned
against README's table and tests/testdata/result_table.json, branch by branch."""

from __future__ import annotations

import json
import re
import ssl
from pathlib import Path

import pytest

from exporter.classify import (
    ERROR_CODES,
    KNOWN_ERROR_CODES,
    RESULTS,
    Result,
    Validity,
    caused_by_tls,
    classify_openai_error,
    error_code_label,
)
from exporter.links import Links

REPO = Path(__file__).resolve().parent.parent
GOLDEN = json.loads((REPO / "tests" / "testdata" / "result_table.json").read_text())
README_ROW = re.compile(
    r"^\| (?P<results>`[a-z_]+`.*?) \| (?P<validity>\w+) \| ?(?P<link>.*?) ?\|$"
)


def readme_table() -> dict[str, tuple[str, str]]:
    """README's result classes: result -> (key is, runbook anchor)."""
    rows: dict[str, tuple[str, str]] = {}
    text = (REPO / "README.md").read_text()
    section = text.split("## Result classes", 1)[1].split("\n## ", 1)[0]
    for line in section.splitlines():
        match = README_ROW.match(line)
        if match is None:
            continue
        anchor = re.search(r"#([a-z-]+)\)", match.group("link"))
        named = match.group("results").split("(", 1)[0]
        for result in re.findall(r"`([a-z_]+)`", named):
            rows[result] = (match.group("validity"), anchor.group(1) if anchor else "")
    return rows


def test_every_result_is_in_readme_with_its_validity_and_runbook_section() -> None:
    readme = readme_table()
    assert set(readme) == {result.value for result in Result}
    words = {Validity.VALID: "valid", Validity.INVALID: "invalid", Validity.UNKNOWN: "unchanged"}
    for result, info in RESULTS.items():
        assert readme[result.value] == (words[info.validity], info.runbook_anchor), result


def test_every_runbook_section_exists_in_both_runbooks() -> None:
    for runbook in ("runbook.md", "runbook.fr.md"):
        text = (REPO / "docs" / runbook).read_text()
        anchors = set(re.findall(r'<a id="([a-z-]+)"', text)) | {
            re.sub(r"[^a-z0-9 -]", "", title.lower()).replace(" ", "-")
            for title in re.findall(r"^#+ (.+)$", text, re.MULTILINE)
        }
        for result, info in RESULTS.items():
            if info.runbook_anchor:
                assert info.runbook_anchor in anchors, (runbook, result)


def test_summaries_and_codes_are_the_pinned_ones() -> None:
    """What a person reads for each result, and which OpenAI codes map where."""
    table = {
        result.value: {
            "validity": info.validity.name.lower(),
            "runbook": info.runbook_anchor,
            "summary": info.summary,
        }
        for result, info in RESULTS.items()
    }
    assert table == GOLDEN["results"]
    assert {code: result.value for code, result in ERROR_CODES.items()} == GOLDEN["error_codes"]
    assert sorted(KNOWN_ERROR_CODES) == GOLDEN["counted_codes"]


def test_runbook_link() -> None:
    links = Links("https://exporter.example:10077")
    assert links.for_result(Result.OK) == ""
    assert links.for_result(Result.INVALID_API_KEY) == (
        "https://exporter.example:10077/runbook#key-invalid"
    )


@pytest.mark.parametrize(
    ("status", "error_type", "code", "message", "expected"),
    [
        # A known code wins over everything else, even a contradicting status or message.
        (500, "server_error", "invalid_api_key", "Missing scopes: x", ("invalid_api_key",)),
        (401, None, "account_deactivated", "", ("account_deactivated",)),
        (429, "insufficient_quota", "insufficient_quota", "", ("insufficient_quota",)),
        (404, None, "DeploymentNotFound", "", ("model_not_found", "DeploymentNotFound")),
        (
            401,
            None,
            None,
            "You have insufficient permissions. Missing scopes: api.model.read.",
            ("insufficient_permissions", "missing_scopes"),
        ),
        (
            401,
            None,
            "",
            "MISSING SCOPES: api.model.read",
            ("insufficient_permissions", "missing_scopes"),
        ),
        (401, None, None, "You didn't provide an API key.", ("key_missing", "missing_api_key")),
        (
            401,
            None,
            None,
            "Missing bearer or basic authentication in header",
            ("key_missing", "missing_api_key"),
        ),
        (
            429,
            "insufficient_quota",
            "unknown_code",
            "",
            ("insufficient_quota", "insufficient_quota"),
        ),
        (429, "server_error", None, "overloaded", ("server_error", "server_error")),
        (None, "server_error", None, "", ("server_error", "server_error")),
        (500, None, None, "", ("server_error", "server_error")),
        (503, "invalid_request_error", "x", "", ("server_error", "server_error")),
        (429, "requests", None, "", ("rate_limited", "rate_limit_exceeded")),
        (None, "tokens", None, "", ("rate_limited", "rate_limit_exceeded")),
        (None, "requests", None, "", ("rate_limited", "rate_limit_exceeded")),
        (429, None, None, "", ("rate_limited", "rate_limit_exceeded")),
        (
            401,
            "invalid_request_error",
            None,
            "Incorrect API key",
            ("invalid_api_key", "invalid_api_key"),
        ),
        (401, "invalid_request_error", "weird", "", ("invalid_api_key", "weird")),
        # A bare 403 is a proxy's or a firewall's as often as OpenAI's: not a verdict on the key.
        (403, None, None, "", ("other", "other")),
        (403, None, "some_code", "", ("other", "some_code")),
        (499, None, None, "", ("other", "other")),
        (400, "invalid_request_error", "bad", "", ("other", "bad")),
        (None, None, None, "", ("other", "other")),
    ],
)
def test_classify_openai_error(
    status: int | None,
    error_type: str | None,
    code: str | None,
    message: str,
    expected: tuple[str, ...],
) -> None:
    result, counted = classify_openai_error(status, error_type, code, message)
    assert (result.value, counted) == (expected[0], expected[-1] if len(expected) > 1 else code)


def test_tls_anywhere_in_the_chain() -> None:
    assert caused_by_tls(ssl.SSLError("bad"))
    assert caused_by_tls(ssl.CertificateError("name mismatch"))
    try:
        try:
            raise ssl.SSLCertVerificationError("verify failed")
        except ssl.SSLError as inner:
            raise OSError("wrapped") from inner
    except OSError as outer:
        assert caused_by_tls(outer)
    try:
        try:
            raise ssl.SSLError("handshake")
        except ssl.SSLError:
            raise ConnectionError("while handling")  # noqa: B904 -- an implicit __context__
    except ConnectionError as outer:
        assert caused_by_tls(outer)
    assert not caused_by_tls(ConnectionResetError("reset"))
    assert not caused_by_tls(OSError("plain"))


def test_error_code_label_bounds_the_label_values() -> None:
    for code in KNOWN_ERROR_CODES:
        assert error_code_label(code) == code
    for result in Result:
        assert error_code_label(result.value) == result.value
    assert error_code_label("sk-proj-abc") == "other"
    assert error_code_label("") == "other"
    assert error_code_label("Invalid_API_Key") == "other"
