"""The one YAML field walker (exporter/yaml_fields.py) under both files it reads: the same rules
for unknown fields, merges and errors, and each file's own reading of scalars (PyYAML's for the
configuration, Go's yaml.v2 for the web configuration)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from exporter.config import ConfigError, parse_config
from exporter.webconfig import WebConfigError, load_web_config
from exporter.yaml_fields import GO_YAML_V2, Fields, YamlFile

_KEY_FIELDS_FIX = (
    "(remove it, or use one of: api_key_env, api_key_file, base_url, dotenv, dotenv_format,"
    " dotenv_var, inference, interval, live, models, name, organization, probes, project,"
    " provider, realtime, retry_interval, timeout, tls)"
)


def web_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "web.yml"
    path.write_text(text, encoding="utf-8")
    return path


def refused_web_config(tmp_path: Path, text: str) -> str:
    path = web_config(tmp_path, text)
    with pytest.raises(WebConfigError) as caught:
        load_web_config(str(path))
    return str(caught.value).removeprefix(str(path))


def refused_config(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "f.yml")
    return str(caught.value)


# The same rules in both files ----------------------------------------------------------------


def test_the_first_unknown_field_as_written_is_named_with_the_known_ones() -> None:
    message = refused_config("keys: [{name: w, api_key_env: K, zzz: 1, aaa: 2}]\n")
    assert message == f"f.yml:1: keys[0].zzz: unknown field {_KEY_FIELDS_FIX}"


def test_the_web_config_names_the_known_fields_and_the_line(tmp_path: Path) -> None:
    message = refused_web_config(tmp_path, "http_server_config:\n  http2: true\n  htp3: true\n")
    assert message == (
        ":3: http_server_config.htp3: unknown field (remove it, or use one of: headers, http2)"
    )


def test_a_made_up_field_name_is_shown_as_an_excerpt() -> None:
    message = refused_config("keys: [{name: w, api_key_env: K, " + "x" * 60 + ": 1}]\n")
    assert f"keys[0].'{'x' * 40}'...: unknown field" in message
    assert "x" * 41 not in message


def test_merge_keys_follow_yaml_earlier_mapping_wins_and_own_fields_win_over_merged() -> None:
    # PyYAML's own loader lets the later mapping win here; YAML and Go's yaml.v2 the earlier.
    config = parse_config(
        "keys:\n"
        "  - {<<: [{interval: 1m}, {interval: 2m, timeout: 3s}], name: a, api_key_env: K}\n"
        "  - {<<: {interval: 2m}, interval: 5m, name: b, api_key_env: K}\n",
        "merge.yml",
    )
    first, second = config.keys
    assert (first.interval, first.timeout) == (60.0, 3.0)
    assert second.interval == 300.0


def test_the_web_config_merges_headers_by_the_same_rule(tmp_path: Path) -> None:
    path = web_config(
        tmp_path,
        "http_server_config:\n"
        "  headers:\n"
        "    <<: [{X-Frame-Options: deny}, {X-Frame-Options: sameorigin, X-XSS-Protection: '1'}]\n",
    )
    headers = dict(load_web_config(str(path)).http_server_config.headers)
    assert headers == {"X-Frame-Options": "deny", "X-XSS-Protection": "1"}


def test_a_field_set_twice_is_refused_in_each_file_s_wording(tmp_path: Path) -> None:
    assert refused_config("keys: [{name: w, api_key_env: K, interval: 1m, interval: 2m}]\n") == (
        "f.yml: line 1, column 48: 'interval' is set twice (first at line 1) (keep one of them)"
    )
    assert refused_web_config(tmp_path, "basic_auth_users:\n  a: x\n  a: y\n") == (
        ":3: basic_auth_users.a: set twice (keep one of them)"
    )


def test_a_tag_without_a_constructor_is_still_invalid_yaml_in_the_config() -> None:
    message = refused_config("defaults: !foo {interval: 1m}\nkeys: [{name: w, api_key_env: K}]\n")
    assert message.startswith("f.yml: not valid YAML at line 1, column 11: ")
    assert message.endswith("(fix the syntax)")


# Each file's own reading of scalars --------------------------------------------------------


def test_the_config_reads_scalars_as_pyyaml() -> None:
    # PyYAML: `y` is text and `yes` a boolean; a key name of digits is read as its text.
    assert parse_config("keys: [{name: y, api_key_env: K}]\n", "f.yml").keys[0].name == "y"
    assert parse_config("keys: [{name: 2024, api_key_env: K}]\n", "f.yml").keys[0].name == "2024"
    assert refused_config("keys: [{name: yes, api_key_env: K}]\n") == (
        "f.yml:1: keys[0].name: must be a non-empty string (name the key: it is its label in metrics)"
    )


def test_the_web_config_reads_scalars_as_go_yaml_v2(tmp_path: Path) -> None:
    # yaml.v2 (YAML 1.1): `n` is false; a quoted "true" is a string, not a boolean.
    path = web_config(tmp_path, "http_server_config: {http2: n}\n")
    assert load_web_config(str(path)).http_server_config.http2 is False
    assert refused_web_config(tmp_path, 'http_server_config: {http2: "true"}\n') == (
        ":1: http_server_config.http2: expected true or false (write true or false, unquoted)"
    )


def test_a_mapping_where_a_value_belongs_is_named_in_each_file_s_terms(tmp_path: Path) -> None:
    assert refused_config("keys: [{name: w, api_key_env: K, realtime: [1]}]\n") == (
        "f.yml:1: keys[0].realtime: must be a mapping, got list (write it as `field: value` lines)"
    )
    assert refused_web_config(tmp_path, "tls_server_config: [1]\n") == (
        ":1: tls_server_config: expected a mapping, got a list (write key: value lines)"
    )


# The walker itself ---------------------------------------------------------------------------


def test_fields_open_to_any_name_keep_the_written_order_and_lines() -> None:
    root = yaml.compose("users:\n  zoe: a\n  adam: b\n")
    users = Fields(YamlFile("u.yml", GO_YAML_V2, ValueError), root, "", {"users"}).child(
        "users", None
    )
    assert list(users.names()) == ["zoe", "adam"]
    assert users.get("adam", GO_YAML_V2.string, "", "") == "b"
    assert str(users.error("adam", "too short", "make it longer")) == (
        "u.yml:3: users.adam: too short (make it longer)"
    )
    assert str(users.error("", "empty", "add one")) == "u.yml:2: users: empty (add one)"


def test_a_configuration_error_names_the_line_of_the_value_at_fault() -> None:
    text = (
        "defaults:\n"
        "  interval: 1m\n"
        "keys:\n"
        "  - name: web\n"
        "    api_key_env: WEB_KEY\n"
        "  - name: voice\n"
        "    api_key_env: VOICE_KEY\n"
        "    timeout: soon\n"
    )
    assert refused_config(text).startswith("f.yml:8: keys[1].timeout: 'soon' is not a duration")
    misspelt = text.replace("    timeout: soon\n", "    probes: [rest]\n    intreval: 1m\n")
    assert refused_config(misspelt).startswith("f.yml:9: keys[1].intreval: unknown field")
    assert refused_config("keys:\n  - name: web\n").startswith("f.yml:2: keys[0]: no key source")
