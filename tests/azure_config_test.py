"""`provider: azure` in the configuration, Azure key shapes in the lint, and the mistakes that
mix OpenAI and Azure: warnings naming the field, at load, at reload and on `check`."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from exporter.config import ConfigError, parse_config
from exporter.keys import lint_key
from exporter.redaction import redact
from exporter.service import Exporter
from exporter.simulator.azure import make_azure_key
from exporter.simulator.scenarios import make_key
from tests.harness import exporter_command, start_simulator_process, write_key

HEX_KEY = "0123456789abcdef0123456789ABCDEF"
ALNUM_KEY = make_azure_key("ok")
AZURE_URL = "https://contoso.openai.azure.com/openai/v1"


def config_text(**key: object) -> str:
    entry = {"name": "voice", "api_key_env": "VOICE_KEY", **key}
    return yaml.safe_dump({"keys": [entry]})


def test_provider_defaults_to_openai_and_is_read_per_key_or_in_defaults() -> None:
    assert parse_config(config_text(), "c.yml").keys[0].provider == "openai"
    per_key = parse_config(config_text(provider="azure", base_url=AZURE_URL), "c.yml")
    assert per_key.keys[0].provider == "azure"
    assert per_key.warnings == ()
    text = yaml.safe_dump(
        {
            "defaults": {"provider": "azure", "base_url": AZURE_URL},
            "keys": [
                {"name": "a", "api_key_env": "A"},
                {"name": "b", "api_key_env": "B", "provider": "openai", "base_url": "https://x/v1"},
            ],
        }
    )
    inherited = parse_config(text, "c.yml")
    assert [key.provider for key in inherited.keys] == ["azure", "openai"]
    assert inherited.keys[0].realtime_url == "wss://contoso.openai.azure.com/openai/v1/realtime"
    assert inherited.keys[0].live_url == "wss://contoso.openai.azure.com/openai/v1/live/sessions"


def test_an_unknown_provider_names_the_field_and_the_fix() -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(config_text(provider="aws"), "c.yml")
    assert str(error.value) == (
        "c.yml:4: keys[0].provider: 'aws' is not one of openai, azure (use openai or azure)"
    )


def test_azure_with_openai_base_url_is_a_warning_naming_the_field() -> None:
    config = parse_config(config_text(provider="azure"), "c.yml")  # base_url left at OpenAI's
    assert len(config.keys) == 1  # not refused
    (warning,) = config.warnings
    assert warning.startswith("c.yml: keys[0].base_url: https://api.openai.com/v1 is OpenAI's")
    assert "https://<resource>.openai.azure.com/openai/v1" in warning
    openai = parse_config(config_text(), "c.yml")
    assert openai.warnings == ()


@pytest.mark.parametrize("key", [HEX_KEY, HEX_KEY.lower(), ALNUM_KEY], ids=["hex", "lower", "84"])
def test_azure_key_shapes_are_not_unknown_prefix(key: str) -> None:
    lint = lint_key(key, "azure")
    assert (lint.kind, lint.issues, lint.sendable) == ("azure", (), True)
    assert lint.fingerprint == redact(key)  # the same redaction as an OpenAI key
    assert key not in lint.fingerprint and len(lint.fingerprint) < len(key)
    # Without provider azure the same text is a key of no known kind, as before.
    assert "unknown_prefix" in lint_key(key).issues


def test_azure_key_text_problems_are_still_found() -> None:
    lint = lint_key(HEX_KEY + "\n", "azure")
    assert lint.kind == "azure"
    assert "trailing_whitespace" in lint.issues
    assert "unknown_prefix" not in lint.issues
    assert "implausible_length" in lint_key(HEX_KEY[:20], "azure").issues


def test_an_openai_key_given_to_azure_is_a_finding() -> None:
    lint = lint_key(make_key("ok"), "azure")
    assert "openai_key_for_azure" in lint.issues
    assert "openai_key_for_azure" not in lint_key(make_key("ok")).issues


def test_warnings_are_logged_at_load_and_reload(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "c.yml"
    path.write_text(config_text(provider="azure"))
    caplog.set_level(logging.WARNING, logger="exporter")
    exporter = Exporter(str(path))
    exporter.read_and_switch()
    exporter.scheduler.shutdown()
    loaded = [r for r in caplog.records if r.getMessage() == "configuration warning"]
    assert len(loaded) == 1
    assert "keys[0].base_url" in loaded[0].fields["warning"]  # type: ignore[attr-defined]
    caplog.clear()
    assert exporter.reload_or_keep_last_good()[0]
    exporter.scheduler.shutdown()
    reloaded = [r for r in caplog.records if r.getMessage() == "configuration warning"]
    assert len(reloaded) == 1


def _check(
    tmp_path: Path, keys: list[dict[str, object]], *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "check.yml"
    path.write_text(yaml.safe_dump({"defaults": {"timeout": "2s"}, "keys": keys}))
    return subprocess.run(
        exporter_command("--config.file", str(path), "check", "--color", "never", *extra),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_check_shows_the_provider_and_the_warnings(tmp_path: Path) -> None:
    simulator, base_url = start_simulator_process(tmp_path)
    try:
        azure_url = base_url.removesuffix("/v1") + "/openai/v1"
        sk_key = make_key("ok")
        keys: list[dict[str, object]] = [
            {
                "name": "azure-ok",
                "provider": "azure",
                "base_url": azure_url,
                "realtime": {"model": "my-realtime"},
                "api_key_file": str(write_key(tmp_path, "azure-ok", ALNUM_KEY)),
            },
            {
                "name": "azure-sk",
                "provider": "azure",
                "base_url": azure_url,
                "api_key_file": str(write_key(tmp_path, "azure-sk", sk_key)),
            },
        ]
        text = _check(tmp_path, keys)
        assert "azure-ok: healthy (provider azure)" in text.stdout, text.stdout + text.stderr
        assert "azure key" in text.stdout  # the lint's kind, on the format line
        assert "azure-sk: FAILING (provider azure)" in text.stdout
        assert "openai_key_for_azure" in text.stdout
        for key in (ALNUM_KEY, sk_key):
            assert key not in text.stdout + text.stderr
        as_json = json.loads(_check(tmp_path, keys[:1], "--output", "json").stdout)
        assert as_json["keys"][0]["provider"] == "azure"
        assert as_json["keys"][0]["kind"] == "azure"

        warned = _check(
            tmp_path,
            [{**keys[0], "base_url": "https://api.openai.com/v1", "probes": ["rest"]}],
            "--output",
            "json",
            # A closed port as the proxy: the probe of api.openai.com never leaves the machine.
            env={"HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""},
        )
        assert "configuration warning: " in warned.stderr and "keys[0].base_url" in warned.stderr, (
            warned.stderr
        )
        assert ALNUM_KEY not in warned.stdout + warned.stderr
    finally:
        simulator.stop()


def test_config_check_shows_the_warning(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text(config_text(provider="azure"))
    done = subprocess.run(
        exporter_command("--config.file", str(path), "--config.check"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert "configuration warning: " in done.stderr and "keys[0].base_url" in done.stderr
