"""The one check every secrecy test ends with: no run of PIECE characters of a key's secret part
reached an output."""

from __future__ import annotations

PIECE = 12  # no run of this many characters of a key's random part may reach any output
# A well-formed project key that the configuration tests put in files, variables and fields.
SAMPLE_KEY = "sk-proj-" + "Qx7vB2mZ9kLwR4tY8nH3cJ6pD1sF5gA0" * 4 + "sQoA"


def assert_no_piece(text: str, parts: list[str] | tuple[str, ...], where: str, whose: str) -> None:
    """Each PIECE-character window of each part is absent from `text`; `whose` names the key
    in the failure (its redacted form, never the key)."""
    for part in parts:
        for start in range(max(1, len(part) - PIECE + 1)):
            piece = part[start : start + PIECE]
            if len(piece) == PIECE:
                assert piece not in text, f"{where} holds {piece!r}, {PIECE} characters of {whose}"


def assert_no_key(text: str, key: str = SAMPLE_KEY) -> None:
    """The key is absent from `text`: whole, and as every PIECE-character run of it."""
    assert key not in text
    assert_no_piece(text, [key], "the output", "the key")
