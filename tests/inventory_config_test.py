"""The `admin:` block: optional, strict, and its key kept apart from the monitored keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.config import ConfigError, parse_config

_KEYS = "keys:\n  - name: web\n    api_key_env: WEB_KEY\n"


def test_without_admin_block_nothing_is_configured() -> None:
    assert parse_config(_KEYS, "c.yml").admin is None


def test_admin_block_is_read_with_defaults(tmp_path: Path) -> None:
    config = parse_config(_KEYS + "admin:\n  api_key_env: OPENAI_ADMIN_KEY\n", "c.yml")
    assert config.admin is not None
    assert config.admin.source.location == "OPENAI_ADMIN_KEY"
    assert (config.admin.interval, config.admin.timeout, config.admin.projects) == (600, 30, ())
    key_file = tmp_path / "admin.key"
    key_file.write_text("sk-admin-x\n")
    text = (
        _KEYS + f"admin:\n  api_key_file: {key_file}\n  projects: [proj_abc, proj_abc, proj_d]\n"
        "  interval: 5m\n  timeout: 10s\n"
    )
    config = parse_config(text, "c.yml")
    assert config.admin is not None
    assert config.admin.projects == ("proj_abc", "proj_d")
    assert (config.admin.interval, config.admin.timeout) == (300, 10)


@pytest.mark.parametrize(
    ("admin", "message"),
    [
        (
            "  api_key_env: A\n  dotenv: .env\n",
            "c.yml:6: admin.dotenv: unknown field (remove it, or use one of: api_key_env,",
        ),
        (
            "  projects: [p]\n",
            "c.yml:5: admin: no key source (set exactly one of api_key_env, api_key_file)",
        ),
        (
            "  api_key_env: A\n  interval: 1m\n  timeout: 2m\n",
            "c.yml:7: admin.timeout: 120s is longer than the interval (60s)"
            " (make the timeout shorter than the interval)",
        ),
        (
            "  api_key_env: A\n  projects: ['proj/../x']\n",
            "c.yml:6: admin.projects: 'proj/../x' is not a project ID (list project IDs (proj_...))",
        ),
        (
            "  api_key_env: WEB_KEY\n",
            "c.yml:5: admin.api_key_env: WEB_KEY is also the source of keys[0] (web) (an admin key"
            " is never probed",
        ),
        (
            "  api_key_env: A\n  interval: often\n",
            "c.yml:6: admin.interval: 'often' is not a duration (write a duration such as",
        ),
    ],
)
def test_a_broken_admin_block_names_file_field_and_fix(admin: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(_KEYS + "admin:\n" + admin, "c.yml")
    assert str(raised.value).startswith(message), str(raised.value)


def test_an_admin_key_pasted_into_the_block_is_never_quoted_back() -> None:
    admin_key = "sk-admin-" + "A1b2C3d4" * 15
    with pytest.raises(ConfigError) as raised:
        parse_config(_KEYS + f"admin:\n  api_key_env: {admin_key}\n", "c.yml")
    text = str(raised.value)
    assert "admin.api_key_env: holds what looks like an API key" in text
    assert admin_key not in text and admin_key[12:30] not in text
