"""Configuration rules the bad-file table cannot show: what a key inherits from defaults, the
boundaries of the timeout rule, URLs with an @ past the host, key names given as numbers, the
CA file cache, no-file mode's description, and a pasted key redacted in an error."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from exporter.config import ConfigError, config_from_environment, parse_config
from exporter.redaction import redact


def test_a_key_inherits_organization_and_project_from_defaults_and_may_override_them() -> None:
    config = parse_config(
        "defaults: {organization: org-a, project: proj_a}\n"
        "keys:\n"
        "  - {name: inherits, api_key_env: A}\n"
        "  - {name: overrides, api_key_env: B, organization: org-b, project: proj_b}\n",
        "exporter.yml",
    )
    inherits, overrides = config.keys
    assert (inherits.organization, inherits.project) == ("org-a", "proj_a")
    assert (overrides.organization, overrides.project) == ("org-b", "proj_b")


def test_a_timeout_equal_to_both_intervals_is_accepted() -> None:
    config = parse_config(
        "defaults: {interval: 30s, timeout: 30s, probes: [rest, realtime], realtime: {interval: 30s}}\n"
        "keys: [{name: web, api_key_env: A}]\n",
        "exporter.yml",
    )
    assert config.keys[0].timeout == config.keys[0].interval == 30.0


def test_a_rest_only_key_may_time_out_longer_than_the_realtime_interval() -> None:
    config = parse_config(
        "defaults: {interval: 60s, timeout: 30s, probes: [rest], realtime: {interval: 20s}}\n"
        "keys: [{name: web, api_key_env: A}]\n",
        "exporter.yml",
    )
    assert config.keys[0].timeout == 30.0


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("https://gateway.internal/v1/", "https://gateway.internal/v1"),
        ("https://gateway.internal/team@acme/v1", "https://gateway.internal/team@acme/v1"),
        ("https://gateway.internal/a/b@c/d//", "https://gateway.internal/a/b@c/d"),
        ("https://gateway.internal/X", "https://gateway.internal/X"),
        (
            "https://gateway.internal/v1?via=https://relay@edge",
            "https://gateway.internal/v1?via=https://relay@edge",
        ),
    ],
)
def test_base_url_trailing_slashes_go_and_an_at_past_the_host_is_kept(
    given: str, kept: str
) -> None:
    config = parse_config(f"keys: [{{name: web, api_key_env: A, base_url: '{given}'}}]\n", "x.yml")
    assert config.keys[0].base_url == kept


def test_a_number_is_a_name_and_a_boolean_is_not() -> None:
    assert parse_config("keys: [{name: 42, api_key_env: A}]\n", "x.yml").keys[0].name == "42"
    with pytest.raises(ConfigError, match=r"keys\[0\]\.name: must be a non-empty string"):
        parse_config("keys: [{name: false, api_key_env: A}]\n", "x.yml")


def test_no_file_mode_says_where_its_key_comes_from(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    config = config_from_environment()
    assert config.source == "environment (OPENAI_API_KEY, OPENAI_BASE_URL)"
    assert [key.name for key in config.keys] == ["default"]


def test_a_good_ca_file_read_once_does_not_vouch_for_another(tmp_path: Path) -> None:
    good = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(good))
    not_pem = tmp_path / "not-pem.pem"
    not_pem.write_text("not a certificate\n")
    text = "keys: [{{name: web, api_key_env: A, tls: {{ca_file: {path}}}}}]\n"
    for _ in range(2):  # the second time from the cache of good files
        config = parse_config(text.format(path=good), str(tmp_path / "x.yml"))
        assert config.keys[0].tls_ca_file == str(good)
    with pytest.raises(ConfigError, match=r"tls\.ca_file"):
        parse_config(text.format(path=not_pem), str(tmp_path / "x.yml"))


def test_a_key_pasted_where_a_name_goes_is_shown_redacted() -> None:
    key = "sk-proj-" + "Qx7vB2mZ9kLwR4tY8nH3cJ6pD1sF5gA0" + "sQoA"
    with pytest.raises(ConfigError) as raised:
        parse_config(f"keys: [{{name: web, api_key_env: A, probes: [{key}]}}]\n", "x.yml")
    message = str(raised.value)
    assert key not in message
    assert redact(key) in message, message
