"""Configurations an attacker or a careless operator writes (issue 22): alias bombs, keys set
twice, endless durations, keys pasted into any text field. Each is refused quickly, in bounded
memory, with a short message that names the line or the field and never shows a key."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from exporter.config import ConfigError, load_config, parse_config
from exporter.redaction import redact
from exporter.webconfig import WebConfigError, load_web_config
from tests.support.secrets import SAMPLE_KEY as KEY
from tests.support.secrets import assert_no_key
from tests.support.yaml_bomb import bomb

MAX_SECONDS = 0.5
MAX_PEAK_BYTES = 4 * 1024 * 1024
MAX_MESSAGE_CHARS = 1000


BOMBED_FIELDS = {
    "interval": "defaults:\n  interval: {bomb}\nkeys:\n  - {{name: web, api_key_env: K}}\n",
    "probes": "defaults:\n  probes: {bomb}\nkeys:\n  - {{name: web, api_key_env: K}}\n",
    "realtime.api": "defaults:\n  realtime: {{api: {bomb}}}\nkeys:\n  - {{name: web, api_key_env: K}}\n",
    "name": "keys:\n  - {{name: {bomb}, api_key_env: K}}\n",
    "unknown field": "keys:\n  - {{name: web, api_key_env: K, extra: {bomb}}}\n",
}


def refused_within_bounds(text: str) -> str:
    """parse_config's refusal, asserting the time it took and the memory it peaked at."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ConfigError) as caught:
            parse_config(text, "bomb.yml")
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < MAX_SECONDS, f"took {elapsed:.3f}s"
    assert peak < MAX_PEAK_BYTES, f"peaked at {peak} bytes"
    message = str(caught.value)
    assert len(message) < MAX_MESSAGE_CHARS, message[:200]
    return message


@pytest.mark.parametrize("field", BOMBED_FIELDS)
def test_an_alias_bomb_is_refused_fast_in_bounded_memory(field: str) -> None:
    message = refused_within_bounds(BOMBED_FIELDS[field].format(bomb=bomb()))
    assert "aliases expand to more than 10000 values" in message
    assert message.startswith("bomb.yml: line ")


def test_a_merge_key_bomb_is_refused() -> None:
    anchors = ["a0: &a0 {x: 1, y: 2}"] + [
        f"a{i}: &a{i} {{<<: [{', '.join([f'*a{i - 1}'] * 9)}], k{i}: 1}}" for i in range(1, 10)
    ]
    text = "defaults:\n  realtime:\n    " + "\n    ".join(anchors) + "\nkeys: [{name: w}]\n"
    # The loader merges each mapping once (no blow-up); the fields are then refused as unknown.
    assert "defaults.realtime.a0: unknown field" in refused_within_bounds(text)


def test_a_web_config_merge_key_bomb_is_refused(tmp_path: Path) -> None:
    anchors = ["a0: &a0 {x: 1, y: 2}"] + [
        f"a{i}: &a{i} {{<<: [{', '.join([f'*a{i - 1}'] * 9)}], k{i}: 1}}" for i in range(1, 10)
    ]
    path = tmp_path / "web.yml"
    path.write_text("http_server_config:\n  " + "\n  ".join(anchors) + "\n")
    started = time.perf_counter()
    with pytest.raises(WebConfigError, match=r"top level: aliases expand to more than"):
        load_web_config(str(path))
    assert time.perf_counter() - started < MAX_SECONDS


def test_a_few_aliases_for_shared_settings_still_load() -> None:
    text = (
        "keys:\n"
        "  - {name: web, api_key_env: K, probes: &both [rest, realtime], realtime: &rt {api: ga}}\n"
        + "".join(
            f"  - {{name: k{i}, api_key_env: K, probes: *both, realtime: *rt}}\n"
            for i in range(200)
        )
    )
    config = parse_config(text, "shared.yml")
    assert all(key.probes == ("rest", "realtime") for key in config.keys)


def test_the_issue_bomb_through_config_check_prints_a_short_line(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yml"
    path.write_text(BOMBED_FIELDS["interval"].format(bomb=bomb()))
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--config.file", str(path), "--config.check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert time.monotonic() - started < 20
    assert result.returncode == 1
    assert len(result.stdout + result.stderr) < MAX_MESSAGE_CHARS, result.stderr[:300]
    assert "aliases expand to more than 10000 values" in result.stderr


def test_a_value_too_long_to_quote_is_shown_as_an_excerpt() -> None:
    message = refused_within_bounds(
        f"defaults:\n  interval: {'9' * 100_000}x\nkeys: [{{name: w}}]\n"
    )
    assert "'" + "9" * 40 + "'..." in message
    assert "9" * 41 not in message


def test_a_web_config_alias_bomb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_text(f"http_server_config:\n  headers: {{X-Bomb: {bomb()}}}\n")
    started = time.perf_counter()
    with pytest.raises(WebConfigError, match=r":2: top level: aliases expand to more than"):
        load_web_config(str(path))
    assert time.perf_counter() - started < MAX_SECONDS


# A key set twice ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "keys:\n  - name: web\n    api_key_env: A\n    api_key_env: B\n",
            "line 4, column 5: 'api_key_env' is set twice (first at line 3)",
        ),
        (
            "defaults:\n  realtime:\n    model: a\n    model: b\nkeys: [{name: w, api_key_env: K}]\n",
            "line 4, column 5: 'model' is set twice (first at line 3)",
        ),
    ],
)
def test_a_key_set_twice_is_refused_naming_the_line(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "twice.yml")
    assert str(caught.value) == f"twice.yml: {expected} (keep one of them)"


def test_a_merged_key_may_be_overridden_once() -> None:
    text = (
        "defaults:\n  realtime: &rt {api: beta, model: m}\n"
        "keys:\n  - name: web\n    api_key_env: K\n    realtime: {<<: *rt, api: ga}\n"
    )
    assert parse_config(text, "merge.yml").keys[0].realtime.api == "ga"


def test_the_web_config_refuses_a_key_set_twice_too(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_text("http_server_config:\n  http2: true\n  http2: false\n")
    with pytest.raises(WebConfigError, match=r"web\.yml:3: .*set twice"):
        load_web_config(str(path))


# Durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("interval", "9" * 400 + "s", "is longer than the most allowed, 1d"),
        ("interval", "2d", "'2d' is longer than the most allowed, 1d"),
        ("retry_interval", "1d1s", "'1d1s' is longer than the most allowed, 1d"),
        ("timeout", "9" * 400 + "s", "is longer than the most allowed, 5m"),
        ("timeout", "301s", "'301s' is longer than the most allowed, 5m"),
        ("timeout", "0s", "'0s' must be positive"),
    ],
)
def test_durations_are_bounded(field: str, value: str, expected: str) -> None:
    base = "" if field == "interval" else "  interval: 1d\n"
    text = f"defaults:\n{base}  {field}: {value}\nkeys: [{{name: w, api_key_env: K}}]\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "d.yml")
    line = 2 if field == "interval" else 3
    assert str(caught.value).startswith(f"d.yml:{line}: defaults.{field}: ")
    assert expected in str(caught.value)


def test_the_largest_durations_allowed_load() -> None:
    text = "defaults:\n  interval: 1d\n  timeout: 5m\nkeys: [{name: w, api_key_env: K}]\n"
    key = parse_config(text, "d.yml").keys[0]
    assert (key.interval, key.timeout) == (86400, 300)


# A key pasted into any text field ----------------------------------------------------------

PASTED = {
    "realtime.model": "  realtime: {{model: {key}}}\n",
    "realtime.url": "  realtime: {{url: 'wss://example.com/v1/{key}'}}\n",
    "organization": "  organization: {key}\n",
    "project": "  project: {key}\n",
    "base_url": "  base_url: 'https://{key}.example.com/v1'\n",
    "tls.ca_file": "  tls: {{ca_file: /etc/{key}}}\n",
}


@pytest.mark.parametrize("where", ["defaults", "keys[0]"])
@pytest.mark.parametrize("field", PASTED)
def test_a_key_pasted_into_any_text_field_is_refused_redacted(field: str, where: str) -> None:
    setting = PASTED[field].format(key=KEY)
    if where == "defaults":
        text = "defaults:\n" + setting + "keys: [{name: w, api_key_env: K}]\n"
    else:
        text = "keys:\n  - name: w\n    api_key_env: K\n  " + setting.replace("\n", "\n  ")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "pasted.yml")
    message = str(caught.value)
    line = 2 if where == "defaults" else 4
    assert message.startswith(
        f"pasted.yml:{line}: {where}.{field}: holds what looks like an API key"
    ), message
    assert redact(KEY) in message
    assert_no_key(message)


def test_a_key_in_the_base_url_path_is_refused() -> None:
    text = f"defaults:\n  base_url: https://proxy.example.com/{KEY}/v1\nkeys: [{{name: w}}]\n"
    with pytest.raises(ConfigError, match=r"^p\.yml:2: defaults\.base_url: holds what looks"):
        parse_config(text, "p.yml")


@pytest.mark.parametrize(
    "model", ["gpt-realtime", "gpt-4o-realtime-preview-2024-12-17", "risk-assessment-gateway-prod"]
)
def test_ordinary_names_are_not_mistaken_for_keys(model: str) -> None:
    text = f"defaults:\n  realtime: {{model: {model}}}\nkeys: [{{name: w, api_key_env: K}}]\n"
    assert parse_config(text, "m.yml").keys[0].realtime.model == model


def test_every_bad_file_in_testdata_still_loads_bounded() -> None:
    for path in sorted((Path(__file__).parent / "testdata" / "config" / "bad").glob("*.yml")):
        with pytest.raises(ConfigError) as caught:
            load_config(str(path))
        assert len(str(caught.value)) < MAX_MESSAGE_CHARS


# A base URL no resolver can use, a key file that is not a file -----------------------------


def config_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", "--config.file", str(path), "--config.check"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_issue_base_url_typo_is_refused_by_config_check(tmp_path: Path) -> None:
    path = tmp_path / "idna.yml"
    path.write_text(
        'keys:\n  - {name: web, api_key_env: K, base_url: "https://api..openai.com/v1",'
        " probes: [rest]}\n"
    )
    result = config_check(path)
    assert result.returncode == 1
    assert (
        f"{path}:2: keys[0].base_url: the host 'api..openai.com' has an empty label"
        in result.stderr
    )


def _not_a_file(path: Path, kind: str) -> None:
    if kind == "FIFO":
        os.mkfifo(path, 0o600)
    elif kind == "directory":
        path.mkdir()
    elif kind == "character device":
        path.symlink_to("/dev/null")
    else:
        path.symlink_to(path)


@pytest.mark.parametrize("source", ["api_key_file", "dotenv"])
@pytest.mark.parametrize(
    ("kind", "said"),
    [
        ("FIFO", "is a FIFO, not a file"),
        ("directory", "is a directory, not a file"),
        ("character device", "is a character device, not a file"),
        ("symlink loop", "is a symlink loop, not a file"),
    ],
)
def test_config_check_says_what_a_key_path_is(
    tmp_path: Path, source: str, kind: str, said: str
) -> None:
    key_path = tmp_path / "k.key"
    _not_a_file(key_path, kind)
    path = tmp_path / "c.yml"
    path.write_text(f"keys:\n  - name: web\n    {source}: {key_path}\n")
    started = time.monotonic()
    result = config_check(path)  # a FIFO once hung here until something wrote to it
    assert time.monotonic() - started < 20
    assert result.returncode == 1
    assert f"{path}:3: keys[0].{source}: {key_path} {said} (set {source} to a readable file)" in (
        result.stderr
    )


def test_the_web_config_quotes_only_an_excerpt(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_text(f"tls_server_config:\n  min_version: {'V' * 100_000}\n")
    with pytest.raises(WebConfigError) as caught:
        load_web_config(str(path))
    assert "'" + "V" * 40 + "'..." in str(caught.value)
    assert len(str(caught.value)) < MAX_MESSAGE_CHARS
    path.write_text(f"http_server_config:\n  {'k' * 100_000}: 1\n")
    with pytest.raises(WebConfigError) as caught:
        load_web_config(str(path))
    assert len(str(caught.value)) < MAX_MESSAGE_CHARS


@pytest.mark.parametrize(
    "text",
    [
        f"{KEY}: 1\n",  # an unknown field
        f"basic_auth_users:\n  {KEY}: x\n  {KEY}: y\n",  # a user name, set twice
        f"tls_server_config:\n  min_version: {KEY}\n",  # a value
    ],
)
def test_a_key_pasted_into_the_web_config_is_never_quoted_back(tmp_path: Path, text: str) -> None:
    path = tmp_path / "web.yml"
    path.write_text(text)
    with pytest.raises(WebConfigError) as caught:
        load_web_config(str(path))
    assert_no_key(str(caught.value))


def test_nesting_too_deep_is_refused_by_both_files(tmp_path: Path) -> None:
    nested = "[" * 3000 + "]" * 3000
    with pytest.raises(ConfigError, match=r"^deep\.yml: not valid YAML.*nest"):
        parse_config(f"defaults:\n  interval: {nested}\nkeys: [{{name: w}}]\n", "deep.yml")
    path = tmp_path / "web.yml"
    path.write_text(f"http_server_config: {nested}\n")
    with pytest.raises(WebConfigError, match=r"invalid YAML: nested too deeply"):
        load_web_config(str(path))


def test_a_number_python_cannot_read_is_refused_naming_its_line() -> None:
    with pytest.raises(ConfigError, match=r"^n\.yml: line 2, column 13: a value cannot be read"):
        parse_config(f"defaults:\n  interval: {'9' * 5000}\nkeys: [{{name: w}}]\n", "n.yml")
