"""The simulator's keys: made, parsed, identified and redacted."""

from __future__ import annotations

import hashlib

import pytest

from exporter.simulator import (
    SCENARIOS,
    key_id,
    make_key,
    select_scenario,
)
from exporter.simulator.openai_shapes import redact_key
from tests.support.simulator_client import (
    KEY_CHARS,
)

# --- keys and scenario selection ---------------------------------------------------------


def test_make_key_is_plausible_and_selects_its_scenario() -> None:
    for name in SCENARIOS:
        key = make_key(name)
        assert len(key) == 164
        assert key.startswith("sk-proj-sim--")
        assert KEY_CHARS.fullmatch(key)
        selected = select_scenario(key)
        assert selected is not None
        assert selected.scenario == name
        assert selected.arg == SCENARIOS[name].default_arg


def test_make_key_carries_the_argument_and_any_prefix() -> None:
    key = make_key("rate_limited", 30, prefix="sk-svcacct-", length=120, seed="a")
    assert key.startswith("sk-svcacct-sim--rate_limited--30--")
    assert len(key) == 120
    assert select_scenario(key) == select_scenario(key.replace("sk-svcacct-", "sk-"))
    selected = select_scenario(key)
    assert selected is not None and (selected.scenario, selected.arg) == ("rate_limited", 30)


def test_make_key_is_deterministic_per_seed() -> None:
    assert make_key("ok", seed="x") == make_key("ok", seed="x")
    assert make_key("ok", seed="x")[-4:] != make_key("ok", seed="y")[-4:]


def test_make_key_refuses_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="unknown simulator scenario"):
        make_key("no_such_scenario")
    with pytest.raises(ValueError, match="too short"):
        make_key("ok", length=10)


def test_handwritten_keys_select_too() -> None:
    selected = select_scenario("sk-proj-sim--ok--AAAA")
    assert selected is not None and selected.scenario == "ok"
    assert select_scenario("sk-proj-sim--nonexistent--AAAA") is None
    assert select_scenario("sk-proj-AAAAAAAAAAAAAAAAAAAAAA") is None
    assert select_scenario("sk-proj-sim--ok--AA AA") is None  # a stray space breaks a key


def test_key_id_is_sha256_prefix() -> None:
    key = make_key("ok")
    assert key_id(key) == hashlib.sha256(key.encode()).hexdigest()[:16]


def test_redaction_keeps_eight_and_four() -> None:
    key = make_key("ok", seed="r")
    assert redact_key(key) == f"{key[:8]}...{key[-4:]}"
    assert redact_key("short") == "*****"
