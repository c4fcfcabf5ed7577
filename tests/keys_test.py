"""Keys: reading them as the application would, linting their text, and keeping them out of
every output (redaction, scrubbing, the logging filter)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from exporter.classify import Result
from exporter.config import KeyConfig
from exporter.keys import (
    DotenvFormat,
    KeySource,
    SourceKind,
    _lint_any_text,
    key_kind,
    lint_key,
    read_key,
)
from exporter.logs import setup_logging
from exporter.redaction import SECRETS, redact, scrub
from exporter.result import ProbeResult
from exporter.runner import ProbeRunner
from exporter.state import StateStore

BODY = "T3BlbkFJx7vB2mZ9kLwR4tY8nH3cJ6pD1sF5gA0qE_uI-oP2aS4dF6gH8jK0lZ1xC3vB5nM7" * 2 + "Wq3eRt5y"
PROJECT_KEY = "sk-proj-" + BODY + "sQoA"  # 164 characters, as OpenAI issues them
USER_KEY = "sk-" + BODY[:48]
WITHHELD = "(message withheld: it quoted part of a key)"


@pytest.fixture(autouse=True)
def clean_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no known keys, and leaves the process's registry as it was."""
    for state in ("_by_name", "_holders", "_anchors"):
        monkeypatch.setattr(SECRETS, state, {})


def pieces_of(key: str, size: int = 12) -> list[str]:
    return [key[i : i + size] for i in range(len(key) - size + 1)]


# lint_key ----------------------------------------------------------------------------------


def test_a_clean_project_key() -> None:
    lint = lint_key(PROJECT_KEY)
    assert lint.kind == "project"
    assert lint.issues == ()
    assert lint.sendable and lint.unsendable_reason == ""
    assert lint.fingerprint == "sk-proj-...sQoA"


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        (PROJECT_KEY, "project"),
        ("sk-svcacct-" + BODY, "service_account"),
        ("sk-admin-" + BODY, "admin"),
        (USER_KEY, "user"),
        ("sess-" + BODY, "unknown"),
        (BODY, "unknown"),
    ],
)
def test_kinds(key: str, kind: str) -> None:
    lint = lint_key(key)
    assert lint.kind == kind == key_kind(key)
    assert ("unknown_prefix" in lint.issues) == (kind == "unknown")
    assert lint.sendable


@pytest.mark.parametrize(
    ("key", "issues", "sendable"),
    [
        (" " + PROJECT_KEY, {"leading_whitespace"}, True),
        (PROJECT_KEY + " ", {"trailing_whitespace"}, True),
        ("\t" + PROJECT_KEY + "  ", {"leading_whitespace", "trailing_whitespace"}, True),
        (PROJECT_KEY[:40] + " " + PROJECT_KEY[40:], {"inner_whitespace"}, True),
        (PROJECT_KEY + "\n", {"trailing_whitespace", "line_break"}, False),
        (PROJECT_KEY + "\r", {"trailing_whitespace", "line_break"}, False),
        (PROJECT_KEY[:40] + "\r\n" + PROJECT_KEY[40:], {"line_break"}, False),
        ('"' + PROJECT_KEY + '"', {"surrounding_quotes"}, True),
        ("'" + PROJECT_KEY + "'", {"surrounding_quotes"}, True),
        (PROJECT_KEY[:40] + "\u00a0" + PROJECT_KEY[40:], {"inner_whitespace", "non_ascii"}, False),
        (
            PROJECT_KEY[:40] + "\u2011" + PROJECT_KEY[40:],
            {"non_ascii"},
            False,
        ),  # a typographic hyphen
        ("\u201c" + PROJECT_KEY + "\u201d", {"non_ascii", "unknown_prefix"}, False),
        ("sk-proj-abc123", {"implausible_length"}, True),
        ("sk-proj-" + "a" * 300, {"implausible_length"}, True),
        (PROJECT_KEY[:40] + "!" + PROJECT_KEY[40:], {"unexpected_characters"}, True),
        ("", {"unknown_prefix", "implausible_length"}, True),
    ],
)
def test_findings(key: str, issues: set[str], sendable: bool) -> None:
    lint = lint_key(key)
    assert set(lint.issues) == issues
    assert lint.sendable is sendable
    assert bool(lint.unsendable_reason) is not sendable


def test_unsendable_reasons_say_why() -> None:
    assert "line break" in lint_key(PROJECT_KEY + "\r").unsendable_reason
    assert "non-ASCII" in lint_key(PROJECT_KEY + "\u00e9").unsendable_reason
    control = lint_key(PROJECT_KEY[:40] + "\x00" + PROJECT_KEY[40:])
    assert not control.sendable and "control characters" in control.unsendable_reason


def test_quotes_and_whitespace_do_not_change_the_kind_or_fingerprint() -> None:
    for decorated in (f' "{PROJECT_KEY}" ', f"'{PROJECT_KEY}'", f"{PROJECT_KEY}\n"):
        lint = lint_key(decorated)
        assert lint.kind == "project"
        assert lint.fingerprint == "sk-proj-...sQoA"


# redaction ---------------------------------------------------------------------------------


def test_redaction_is_openais_form() -> None:
    assert redact(PROJECT_KEY) == "sk-proj-...sQoA"
    assert redact(USER_KEY) == USER_KEY[:8] + "..." + USER_KEY[-4:]


@pytest.mark.parametrize("key", ["sk-proj-abc123", "sk-abcdefghijklmnopqrst", "abc", "sk-"])
def test_short_keys_reveal_less(key: str) -> None:
    assert redact(key) == key[:3] + "..."


def test_redaction_of_invisible_characters() -> None:
    assert redact("") == ""
    assert redact("sk-proj-" + "a" * 30 + "\r\n") == "sk-proj-...aa??"


def revealed(redacted: str) -> str:
    """The characters of the key a redacted form shows."""
    if not redacted:
        return ""
    if len(redacted) <= 6:
        assert redacted.endswith("...")
        return redacted[:-3]
    assert len(redacted) == 15 and redacted[8:11] == "...", redacted
    return redacted[:8] + redacted[11:]


# Keys as they arrive: every prefix, with the mistakes people make around them.
PREFIXES = st.sampled_from(["sk-proj-", "sk-svcacct-", "sk-admin-", "sk-", "", "sess-"])
KEY_ALPHABET = st.characters(codec="ascii", categories=["L", "N"]) | st.sampled_from("-_")
DECORATION = st.sampled_from(["", " ", "\t", "\n", "\r\n", '"', "'", "`", "\u00a0", "\u201c"])
ODD = st.text(st.sampled_from(" \t\r\n\"'é\u00a0\u2011\u200b\x00"), max_size=2)


@st.composite
def keys(draw: st.DrawFn, min_body: int = 20) -> str:
    body = draw(st.text(KEY_ALPHABET, min_size=min_body, max_size=200))
    at = draw(st.integers(0, len(body)))
    body = body[:at] + draw(ODD) + body[at:]
    return draw(DECORATION) + draw(PREFIXES) + body + draw(DECORATION)


@given(keys(min_body=0))
@example("sk-proj-" + "a" * 16)
@example("x" * 23)
@example("x" * 24)
def test_redaction_never_reveals_more_than_12_characters(key: str) -> None:
    shown = revealed(redact(key))
    assert len(shown) <= 12
    fingerprint = lint_key(key).fingerprint
    assert len(revealed(fingerprint)) <= 12
    if len(key) >= 24:
        assert key not in redact(key)


@given(keys(min_body=0))
def test_lint_never_fails_and_is_consistent(key: str) -> None:
    lint = lint_key(key)
    assert lint.sendable is (lint.unsendable_reason == "")
    if "line_break" in lint.issues or "non_ascii" in lint.issues:
        assert not lint.sendable
    assert ("unknown_prefix" in lint.issues) == (lint.kind == "unknown")


@given(
    st.one_of(
        keys(min_body=0),
        st.text(alphabet="abcXYZ019_-", max_size=300),
        st.text(alphabet="sk-proj_aZ9 \t\r\n\"'`\x00\x7fé", max_size=200),
    )
)
@example("sk-proj-" + "a" * 60 + "\n")  # `$` in a regex would match before this newline
@example("sk-proj-" + "a" * 60)
@example("a" * 39)
def test_the_clean_key_shortcut_says_what_the_full_lint_says(key: str) -> None:
    assert lint_key(key) == _lint_any_text(key)


# scrub -------------------------------------------------------------------------------------


def test_scrub_replaces_whole_keys() -> None:
    text = f"request failed: Authorization: Bearer {PROJECT_KEY} (twice: {PROJECT_KEY})"
    scrubbed = scrub(text, [PROJECT_KEY])
    assert (
        scrubbed == "request failed: Authorization: Bearer sk-proj-...sQoA (twice: sk-proj-...sQoA)"
    )


def test_scrub_replaces_the_forms_a_key_takes_in_text() -> None:
    key = " " + PROJECT_KEY + "\r\n"
    # Every form shows the one fingerprint the key's metrics show.
    assert scrub(f"value {key!r}", [key]) == "value 'sk-proj-...sQoA'"
    assert PROJECT_KEY not in scrub(f"stripped {PROJECT_KEY}.", [key])
    assert scrub(f'quoted "{PROJECT_KEY}"', [f'"{PROJECT_KEY}"']) == "quoted sk-proj-...sQoA"


def test_scrub_withholds_a_text_holding_a_piece() -> None:
    truncated = f"Illegal header value b'Bearer {PROJECT_KEY[5:17]}'"
    assert scrub(truncated, [PROJECT_KEY]) == WITHHELD
    assert scrub(truncated, [PROJECT_KEY], pieces=False) == truncated
    # 11 characters is not a piece: ordinary text is not withheld for sharing a word with a key.
    assert scrub(f"x {PROJECT_KEY[20:31]} y", [PROJECT_KEY]) == f"x {PROJECT_KEY[20:31]} y"


def test_scrub_uses_the_keys_the_process_holds() -> None:
    SECRETS.remember("web", PROJECT_KEY)
    assert scrub(f"key {PROJECT_KEY}") == "key sk-proj-...sQoA"
    SECRETS.remember("web", "")  # the key is gone: nothing left to scrub
    assert scrub(f"key {PROJECT_KEY}") == f"key {PROJECT_KEY}"


def test_the_registry_tells_apart_keys_that_start_alike() -> None:
    """Keys sharing their first 12 characters (one project's keys) share an index entry:
    each is still scrubbed, and forgetting one keeps the others."""
    first, second = PROJECT_KEY, PROJECT_KEY[:-4] + "zzzz"
    SECRETS.remember("web", first)
    SECRETS.remember("worker", second)
    SECRETS.remember("batch", second)  # one key under two names
    text = f"a {first} b {second} c"
    assert scrub(text, pieces=False) == "a sk-proj-...sQoA b sk-proj-...zzzz c"
    SECRETS.forget("worker")
    assert scrub(text, pieces=False) == "a sk-proj-...sQoA b sk-proj-...zzzz c"
    SECRETS.forget("web")
    assert scrub(text, pieces=False) == f"a {first} b sk-proj-...zzzz c"
    SECRETS.forget("batch")
    assert scrub(text, pieces=False) == text
    assert SECRETS.secrets() == []


def test_the_registry_scrubs_every_form_of_a_key_read_with_its_quotes() -> None:
    quoted = f"'{PROJECT_KEY}'\n"  # as a careless .env line holds it
    SECRETS.remember("web", quoted)
    for form in (quoted, PROJECT_KEY, f"'{PROJECT_KEY}'", repr(quoted)[1:-1]):
        assert PROJECT_KEY not in scrub(f"x {form} y", pieces=False)
    SECRETS.forget("web")
    assert scrub(f"x {PROJECT_KEY} y", pieces=False) == f"x {PROJECT_KEY} y"


TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)


@given(keys(), TEXT, TEXT, st.booleans())
@settings(suppress_health_check=[HealthCheck.too_slow])
@example("sk-proj-" + "a" * 30, "", "a" * 30, False)
@example("sk-" + "ab" * 20, "ab", "ab", False)
@example("a" * 24, "", "a" * 20, False)  # a redacted tail and the text after it
@example("ab" * 12, "", "ab" * 10, False)
def test_scrubbed_text_never_holds_the_key(key: str, before: str, after: str, pieces: bool) -> None:
    scrubbed = scrub(before + key + after, [key], pieces=pieces)
    assert key not in scrubbed
    if pieces:
        assert not any(piece in scrubbed for piece in pieces_of(key))


@given(keys(), TEXT, TEXT)
def test_scrub_also_catches_the_repr_of_the_key(key: str, before: str, after: str) -> None:
    assert repr(key)[1:-1] not in scrub(before + repr(key) + after, [key], pieces=False)


# read_key ----------------------------------------------------------------------------------


def env_source(variable: str = "OKE_TEST_KEY") -> KeySource:
    return KeySource(SourceKind.ENV, variable)


def file_source(path: Path) -> KeySource:
    return KeySource(SourceKind.FILE, str(path))


def dotenv_source(
    path: Path, variable: str = "OPENAI_API_KEY", fmt: DotenvFormat = DotenvFormat.NODE
) -> KeySource:
    return KeySource(SourceKind.DOTENV, str(path), variable, fmt)


def secret_file(path: Path, content: str | bytes, mode: int = 0o600) -> Path:
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    path.chmod(mode)
    return path


def test_env_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OKE_TEST_KEY", raising=False)
    reading = read_key(env_source())
    assert reading.key is None and not reading.empty
    assert reading.problem == "environment variable OKE_TEST_KEY is not set"
    assert SECRETS.secrets() == []


def test_env_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OKE_TEST_KEY", "")
    reading = read_key(env_source())
    assert reading.key is None and reading.empty
    assert "empty" in reading.problem


def test_env_value_is_taken_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OKE_TEST_KEY", f" {PROJECT_KEY}\n")
    reading = read_key(env_source())
    assert reading.key == f" {PROJECT_KEY}\n"
    assert {"leading_whitespace", "line_break"} <= set(lint_key(reading.key).issues)
    # reading.key, whitespace and all, is what the runner registers for scrubbing.


def test_file_trailing_newline_is_not_part_of_the_key(tmp_path: Path) -> None:
    reading = read_key(file_source(secret_file(tmp_path / "key", PROJECT_KEY + "\n")))
    assert reading.key == PROJECT_KEY
    assert reading.problem == "" and reading.source_issues == ()
    assert lint_key(reading.key).issues == ()


def test_file_crlf_leaves_a_cr(tmp_path: Path) -> None:
    reading = read_key(file_source(secret_file(tmp_path / "key", PROJECT_KEY + "\r\n")))
    assert reading.key == PROJECT_KEY + "\r"
    lint = lint_key(reading.key)
    assert "line_break" in lint.issues and not lint.sendable


def test_file_only_one_newline_is_forgiven(tmp_path: Path) -> None:
    reading = read_key(file_source(secret_file(tmp_path / "key", PROJECT_KEY + "\n\n")))
    assert reading.key == PROJECT_KEY + "\n"


def test_file_empty(tmp_path: Path) -> None:
    reading = read_key(file_source(secret_file(tmp_path / "key", "\n")))
    assert reading.key is None and reading.empty
    assert reading.problem.endswith("is empty")


def test_file_missing(tmp_path: Path) -> None:
    reading = read_key(file_source(tmp_path / "gone"))
    assert reading.key is None and not reading.empty
    assert reading.problem == f"{tmp_path / 'gone'} does not exist"


def test_file_readable_by_others(tmp_path: Path) -> None:
    path = secret_file(tmp_path / "key", PROJECT_KEY, mode=0o644)
    assert read_key(file_source(path)).source_issues == ("file_readable_by_others",)
    path.chmod(0o640)
    assert read_key(file_source(path)).source_issues == ()


def test_file_that_cannot_be_read(tmp_path: Path) -> None:
    """A path that cannot be read as a file (here a folder, which even root cannot read as one)."""
    path = tmp_path / "key"
    path.mkdir()
    reading = read_key(file_source(path))
    assert reading.key is None and reading.problem == f"{path} is a directory, not a file"


def test_key_is_read_again_at_each_call(tmp_path: Path) -> None:
    """A rotated key on disk is seen at the next probe, with no restart and no cache."""
    path = secret_file(tmp_path / "key", PROJECT_KEY + "\n")
    assert read_key(file_source(path)).key == PROJECT_KEY
    secret_file(path, USER_KEY + "\n")
    assert read_key(file_source(path)).key == USER_KEY
    env = secret_file(tmp_path / ".env", f"OPENAI_API_KEY={PROJECT_KEY}\n")
    assert read_key(dotenv_source(env)).key == PROJECT_KEY
    secret_file(env, f"OPENAI_API_KEY={USER_KEY}\n")
    assert read_key(dotenv_source(env)).key == USER_KEY


# dotenv, as the npm dotenv package reads it ------------------------------------------------


@pytest.mark.parametrize(
    ("line", "issues"),
    [
        (f"OPENAI_API_KEY={PROJECT_KEY}", ()),
        (f"export OPENAI_API_KEY={PROJECT_KEY}", ()),
        (f"  OPENAI_API_KEY={PROJECT_KEY}   ", ()),
        (f"OPENAI_API_KEY={PROJECT_KEY} # the relay's key", ()),
        (f"OPENAI_API_KEY: {PROJECT_KEY}", ()),
        (f"OPENAI_API_KEY = {PROJECT_KEY}", ("dotenv_spaces_around_equals",)),
        (f"OPENAI_API_KEY ={PROJECT_KEY}", ("dotenv_spaces_around_equals",)),
        (f'OPENAI_API_KEY="{PROJECT_KEY}"', ("dotenv_quoted_value",)),
        (f"OPENAI_API_KEY='{PROJECT_KEY}'", ("dotenv_quoted_value",)),
        (f'OPENAI_API_KEY="{PROJECT_KEY}" # quoted', ("dotenv_quoted_value",)),
        (f"OPENAI_API_KEY={PROJECT_KEY}\r", ("dotenv_crlf",)),
    ],
)
def test_dotenv_node_reads_the_key(tmp_path: Path, line: str, issues: tuple[str, ...]) -> None:
    text = f"# settings\nPORT=8081\n# OPENAI_API_KEY=an-old-commented-key\n{line}\nDEBUG=1\n"
    reading = read_key(dotenv_source(secret_file(tmp_path / ".env", text)))
    assert reading.key == PROJECT_KEY
    assert reading.source_issues == issues
    assert lint_key(reading.key).issues == ()


def test_dotenv_crlf_file(tmp_path: Path) -> None:
    text = f"PORT=8081\r\nOPENAI_API_KEY={PROJECT_KEY}\r\nDEBUG=1\r\n"
    reading = read_key(dotenv_source(secret_file(tmp_path / ".env", text)))
    assert reading.key == PROJECT_KEY
    assert reading.source_issues == ("dotenv_crlf",)


def test_dotenv_duplicate_last_wins(tmp_path: Path) -> None:
    text = f"OPENAI_API_KEY={USER_KEY}\nOPENAI_API_KEY={PROJECT_KEY}\n"
    reading = read_key(dotenv_source(secret_file(tmp_path / ".env", text)))
    assert reading.key == PROJECT_KEY
    assert reading.source_issues == ("dotenv_duplicate_variable",)


def test_dotenv_double_quotes_expand_newlines(tmp_path: Path) -> None:
    text = f'OPENAI_API_KEY="{PROJECT_KEY}\\n"\n'
    reading = read_key(dotenv_source(secret_file(tmp_path / ".env", text)))
    assert reading.key == PROJECT_KEY + "\n"
    assert "line_break" in lint_key(reading.key).issues


def test_dotenv_other_variable_and_missing_variable(tmp_path: Path) -> None:
    path = secret_file(tmp_path / ".env", f"RELAY_KEY={PROJECT_KEY}\nOPENAI_API_KEY=\n")
    assert read_key(dotenv_source(path, "RELAY_KEY")).key == PROJECT_KEY
    empty = read_key(dotenv_source(path))
    assert empty.key is None and empty.empty
    assert empty.problem == f"OPENAI_API_KEY is empty in {path}"
    unset = read_key(dotenv_source(path, "OTHER"))
    assert unset.key is None and not unset.empty
    assert unset.problem == f"OTHER is not set in {path}"


def test_dotenv_missing_file(tmp_path: Path) -> None:
    reading = read_key(dotenv_source(tmp_path / ".env"))
    assert reading.key is None
    assert reading.problem == f"{tmp_path / '.env'} does not exist"


def test_dotenv_readable_by_others(tmp_path: Path) -> None:
    path = secret_file(tmp_path / ".env", f'OPENAI_API_KEY="{PROJECT_KEY}"\n', mode=0o604)
    reading = read_key(dotenv_source(path))
    assert reading.source_issues == ("file_readable_by_others", "dotenv_quoted_value")


# dotenv, as `docker run --env-file` reads it: everything after the first `=` --------------


@pytest.mark.parametrize(
    ("line", "key", "issues"),
    [
        (f"OPENAI_API_KEY={PROJECT_KEY}", PROJECT_KEY, ()),
        (f'OPENAI_API_KEY="{PROJECT_KEY}"', f'"{PROJECT_KEY}"', ("dotenv_quoted_value",)),
        (f"OPENAI_API_KEY={PROJECT_KEY}  ", f"{PROJECT_KEY}  ", ()),
        (f"OPENAI_API_KEY= {PROJECT_KEY}", f" {PROJECT_KEY}", ("dotenv_spaces_around_equals",)),
        (f"OPENAI_API_KEY={PROJECT_KEY}\r", f"{PROJECT_KEY}\r", ("dotenv_crlf",)),
        (f"OPENAI_API_KEY={PROJECT_KEY} # note", f"{PROJECT_KEY} # note", ()),
    ],
)
def test_dotenv_literal_keeps_the_value_as_is(
    tmp_path: Path, line: str, key: str, issues: tuple[str, ...]
) -> None:
    path = secret_file(tmp_path / ".env", f"PORT=8081\n{line}\n")
    reading = read_key(dotenv_source(path, fmt=DotenvFormat.LITERAL))
    assert reading.key == key
    assert reading.source_issues == issues


def test_dotenv_literal_quotes_reach_the_lint(tmp_path: Path) -> None:
    path = secret_file(tmp_path / ".env", f'OPENAI_API_KEY="{PROJECT_KEY}"\n')
    reading = read_key(dotenv_source(path, fmt=DotenvFormat.LITERAL))
    assert reading.key is not None
    lint = lint_key(reading.key)
    assert lint.issues == ("surrounding_quotes",)
    assert lint.kind == "project" and lint.fingerprint == "sk-proj-...sQoA"


class _Answering:
    """A prober that answers at once: what is under test is the runner's registration."""

    async def probe(self, config: KeyConfig, key: str) -> ProbeResult:
        return ProbeResult("rest", Result.OK)

    def forget(self, name: str) -> None:
        pass

    async def aclose(self) -> None:
        pass


def test_a_key_read_is_remembered_for_scrubbing_by_the_runner_not_by_reading(
    tmp_path: Path,
) -> None:
    source = file_source(secret_file(tmp_path / "key", PROJECT_KEY))
    read_key(source)
    assert SECRETS.secrets() == []  # reading alone fills no global
    runner = ProbeRunner(StateStore(), {"rest": _Answering()})
    config = KeyConfig(name="web", source=source, probes=("rest",))
    asyncio.run(runner.run(config, "rest"))
    assert scrub(f"boom {PROJECT_KEY}") == "boom sk-proj-...sQoA"
    secret_file(tmp_path / "key", USER_KEY)  # rotated
    asyncio.run(runner.run(config, "rest"))
    assert SECRETS.secrets() == [USER_KEY]  # the old key is no longer scrubbed for
    asyncio.run(runner.run(replace(config, source=file_source(tmp_path / "gone")), "rest"))
    assert SECRETS.secrets() == []


# The logging filter ------------------------------------------------------------------------


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def log_everything(key: str) -> None:
    log = logging.getLogger("exporter.test")
    log.info("probe failed for %s", key)
    log.warning(f"formatted by hand: {key}")
    log.info("fields", extra={"fields": {"error": f"Bearer {key}", "n": 3}})
    log.info("objects in fields", extra={"fields": {"error": ValueError(key), "list": [key]}})
    try:
        raise RuntimeError(f"Illegal header value b'Bearer {key[:30]}'")
    except RuntimeError:
        log.exception("request failed")
    try:
        raise RuntimeError(f"whole key {key}")
    except RuntimeError:
        log.error("request failed", exc_info=True, stack_info=True)


@pytest.mark.parametrize("fmt", ["logfmt", "json"])
def test_logs_never_hold_a_known_key(log_stream: io.StringIO, fmt: str) -> None:
    setup_logging("debug", fmt, log_stream)
    SECRETS.remember("web", PROJECT_KEY)
    log_everything(PROJECT_KEY)
    output = log_stream.getvalue()
    assert output.count("\n") == 6
    assert PROJECT_KEY not in output
    assert not [piece for piece in pieces_of(PROJECT_KEY) if piece in output]
    assert "sk-proj-...sQoA" in output
    assert "Traceback" in output and WITHHELD in output
    if fmt == "json":
        lines = [json.loads(line) for line in output.splitlines()]
        assert lines[2]["error"] == "Bearer sk-proj-...sQoA" and lines[2]["n"] == 3


def test_logs_scrub_a_key_with_line_breaks(log_stream: io.StringIO) -> None:
    key = PROJECT_KEY + "\r\n"
    setup_logging("info", "logfmt", log_stream)
    SECRETS.remember("web", key)
    logging.getLogger("exporter.test").info("read %r", key)
    output = log_stream.getvalue()
    assert not [piece for piece in pieces_of(PROJECT_KEY) if piece in output]
    assert "read 'sk-proj-...sQoA'" in output


def test_logs_keep_tracebacks_when_no_key_is_known(log_stream: io.StringIO) -> None:
    setup_logging("info", "logfmt", log_stream)
    try:
        raise RuntimeError("no key here")
    except RuntimeError:
        logging.getLogger("exporter.test").exception("request failed")
    assert "RuntimeError: no key here" in log_stream.getvalue()
