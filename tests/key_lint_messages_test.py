"""What the key lint tells a person about a key that cannot be sent, and how it reads a key's
kind through quotes (mutants of exporter/keys.py that keys_test.py let live)."""

from __future__ import annotations

import pytest

from exporter.keys import key_kind, lint_key

BODY = "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z" * 2


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (
            BODY[:30] + "\n" + BODY[30:],
            "the key contains a line break (CR or LF), which cannot be sent in a header",
        ),
        (
            BODY[:30] + "\r" + BODY[30:],
            "the key contains a line break (CR or LF), which cannot be sent in a header",
        ),
        (
            BODY[:30] + "é" + BODY[30:],
            "the key contains non-ASCII characters, which cannot be sent in a header",
        ),
        (
            BODY[:30] + "\x7f" + BODY[30:],
            "the key contains control characters, which cannot be sent in a header",
        ),
        (
            BODY[:30] + "\x01" + BODY[30:],
            "the key contains control characters, which cannot be sent in a header",
        ),
    ],
)
def test_why_a_key_cannot_be_sent(key: str, reason: str) -> None:
    lint = lint_key(key)
    assert not lint.sendable
    assert lint.unsendable_reason == reason


def test_a_tab_is_whitespace_not_a_control_character() -> None:
    lint = lint_key(BODY[:30] + "\t" + BODY[30:])
    assert lint.sendable and lint.unsendable_reason == ""
    assert "inner_whitespace" in lint.issues


@pytest.mark.parametrize("text", ['""', "''", "``"])
def test_two_quotes_are_surrounding_quotes(text: str) -> None:
    assert "surrounding_quotes" in lint_key(text).issues


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ('"sk-proj-abc"', "project"),
        ("'sk-svcacct-abc'", "service_account"),
        ('  "sk-admin-abc"  ', "admin"),
        ("Xsk-proj-abc", "unknown"),
        ("sk-proj-abcX", "project"),
    ],
)
def test_the_kind_is_read_through_quotes_only(text: str, kind: str) -> None:
    assert key_kind(text) == kind


def test_only_quote_characters_make_surrounding_quotes() -> None:
    issues = lint_key("Xsk-proj-abc defX").issues  # a space sends it through the full lint
    assert "inner_whitespace" in issues and "surrounding_quotes" not in issues
