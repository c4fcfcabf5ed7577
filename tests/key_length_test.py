"""Truncated keys are flagged before anything is sent: a length rule per kind of key, and an
admin key configured for probing gets its own finding."""

from __future__ import annotations

import pytest

from exporter.keys import lint_key, typical_lengths
from exporter.simulator import make_key
from exporter.simulator.scenarios import SCENARIOS

PREFIXES = ("sk-proj-", "sk-svcacct-", "sk-admin-", "sk-None-", "sk-")
# What public secret scanners match for each kind, as whole lengths.
FULL_LENGTHS = {
    "sk-proj-": (164, 132),
    "sk-svcacct-": (167, 135),
    "sk-admin-": (165, 133),
    "sk-None-": (164, 132),
    "sk-": (51,),
}


def _key(prefix: str, length: int) -> str:
    return (prefix + "Ab3dE_g7-J" * 20)[:length]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_full_length_keys_of_every_kind_are_plausible(prefix: str) -> None:
    assert typical_lengths(prefix + "x") == FULL_LENGTHS[prefix]
    for length in FULL_LENGTHS[prefix]:
        assert "implausible_length" not in lint_key(_key(prefix, length)).issues


def test_a_56_character_project_key_is_implausible() -> None:
    assert "implausible_length" in lint_key(_key("sk-proj-", 56)).issues


@pytest.mark.parametrize("prefix", PREFIXES)
def test_a_key_cut_short_or_run_on_is_implausible(prefix: str) -> None:
    full = FULL_LENGTHS[prefix][0]
    for length in (full - 10, full - 30, full + 10, 40, 100):
        if any(abs(length - typical) <= 2 for typical in FULL_LENGTHS[prefix]):
            continue
        if prefix == "sk-" and length == 51:
            continue
        assert "implausible_length" in lint_key(_key(prefix, length)).issues, (prefix, length)


def test_legacy_user_keys_have_exactly_51_characters() -> None:
    assert lint_key(_key("sk-", 51)).issues == ()
    for length in (50, 52):
        assert lint_key(_key("sk-", length)).issues == ("implausible_length",)


def test_a_small_tolerance_for_variants() -> None:
    for delta in (-2, -1, 1, 2):
        assert lint_key(_key("sk-proj-", 164 + delta)).issues == ()
    assert "implausible_length" in lint_key(_key("sk-proj-", 164 - 3)).issues


def test_stray_whitespace_does_not_make_a_key_implausible() -> None:
    key = _key("sk-proj-", 164)
    issues = set(lint_key(key[:40] + " " + key[40:]).issues)
    assert issues == {"inner_whitespace"}


def test_an_admin_key_gets_its_own_finding() -> None:
    lint = lint_key(_key("sk-admin-", 165))
    assert lint.kind == "admin"
    assert lint.issues == ("admin_key",)
    assert lint.sendable  # probed all the same: what OpenAI answers is the proof


@pytest.mark.parametrize("prefix", [p for p in PREFIXES if p != "sk-admin-"])
def test_every_simulator_key_passes_the_lint(prefix: str) -> None:
    for scenario in SCENARIOS:
        for arg in (None, 30):
            assert lint_key(make_key(scenario, arg, prefix=prefix, seed="s")).issues == ()
