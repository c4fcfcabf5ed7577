"""Where each key comes from, what is wrong with its text, and its public identity."""

from __future__ import annotations

import enum
import errno
import os
import re
import stat
from dataclasses import dataclass, field

from exporter.redaction import SECRETS, redact


class SourceKind(enum.StrEnum):
    ENV = "api_key_env"
    FILE = "api_key_file"
    DOTENV = "dotenv"


class DotenvFormat(enum.StrEnum):
    NODE = "node"  # the `dotenv` npm package: trims, strips matching quotes
    LITERAL = "literal"  # `docker run --env-file`: everything after the first `=`, as is


@dataclass(frozen=True, slots=True)
class KeySource:
    kind: SourceKind
    location: str  # variable name or file path
    dotenv_var: str = "OPENAI_API_KEY"
    dotenv_format: DotenvFormat = DotenvFormat.NODE

    def describe(self) -> str:
        if self.kind is SourceKind.ENV:
            return f"environment variable {self.location}"
        if self.kind is SourceKind.FILE:
            return f"file {self.location}"
        return f"{self.dotenv_var} in {self.location}"


@dataclass(frozen=True)
class KeyReading:
    """A key as the application would read it, with what the reading revealed."""

    key: str | None = field(repr=False)  # None: the source holds no key
    problem: str = ""  # why key is None, for a person
    source_issues: tuple[str, ...] = ()  # findings on the source itself (dotenv line, file mode)
    empty: bool = False  # the source exists but holds an empty value


@dataclass(frozen=True)
class KeyLint:
    fingerprint: str
    kind: str
    issues: tuple[str, ...]
    sendable: bool  # can be put in an HTTP header as is
    unsendable_reason: str = ""


@dataclass
class _DotenvLine:
    value: str
    raw_value: str
    issues: list[str] = field(default_factory=list)


KEY_KINDS: tuple[tuple[str, str], ...] = (
    ("sk-proj-", "project"),
    ("sk-svcacct-", "service_account"),
    ("sk-admin-", "admin"),
    ("sk-", "user"),
)
_PLAUSIBLE_LENGTH = range(40, 257)
_KEY_CHARSET = re.compile(r"^[A-Za-z0-9_\-]+$")
_CLEAN_KEY = re.compile(r"[A-Za-z0-9_\-]+")  # fullmatch: `$` would let a final newline through
# Findings that already name the odd characters: unexpected_characters would only repeat them.
_CHARACTER_ISSUES = {"non_ascii", "inner_whitespace", "line_break"}


def read_key(name: str, source: KeySource) -> KeyReading:
    """Read the key now, from its source, exactly as the application would."""
    try:
        reading = _read(source)
    except OSError as error:
        reading = KeyReading(None, f"{source.describe()}: {error.strerror or error}")
    SECRETS.remember(name, reading.key or "")
    return reading


def _read(source: KeySource) -> KeyReading:
    if source.kind is SourceKind.ENV:
        value = os.environ.get(source.location)
        if value is None:
            return KeyReading(None, f"environment variable {source.location} is not set")
        return KeyReading(
            value or None, "" if value else f"{source.location} is empty", empty=not value
        )
    raw, problem, issues = read_key_file(source.location)
    if raw is None:
        return KeyReading(None, problem)
    text = raw.decode("utf-8", errors="replace")
    if source.kind is SourceKind.FILE:
        # A secret file's trailing newline is not part of the key (kubectl, echo, editors add it).
        value = text[:-1] if text.endswith("\n") else text
        problem = "" if value else f"{source.location} is empty"
        return KeyReading(value or None, problem, issues, empty=not value)
    line = _dotenv_lookup(text, source.dotenv_var, source.dotenv_format)
    if line is None:
        return KeyReading(None, f"{source.dotenv_var} is not set in {source.location}", issues)
    issues = issues + tuple(line.issues)
    problem = "" if line.value else f"{source.dotenv_var} is empty in {source.location}"
    return KeyReading(line.value or None, problem, issues, empty=not line.value)


MAX_KEY_FILE_BYTES = 64 * 1024  # a key is under 300 bytes; a .env file a few KiB
_WHAT_IT_IS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def key_file_problem(path: str) -> str:
    """ "" for a regular file (symlinks followed), else what the path is, for a person."""
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        return _open_problem(path, error)
    return _not_a_file(path, mode)


def _open_problem(path: str, error: OSError) -> str:
    if error.errno == errno.ENOENT:
        return f"{path} does not exist"
    if error.errno == errno.ELOOP:
        return f"{path} is a symlink loop, not a file"
    return f"{path}: {error.strerror or error}"


def _not_a_file(path: str, mode: int) -> str:
    if stat.S_ISREG(mode):
        return ""
    what = next((name for test, name in _WHAT_IT_IS if test(mode)), "not a regular file")
    return f"{path} is {what}, not a file"


def read_key_file(path: str) -> tuple[bytes | None, str, tuple[str, ...]]:
    """A key or .env file's bytes, or None and why; with findings on the file's mode.

    Only a regular file is read: a FIFO would block the event loop until something writes
    to it, a device may never end. Its type is checked before opening (a device is never
    opened) and again on what was opened (it may have been swapped in between); the open
    is non-blocking, and at most MAX_KEY_FILE_BYTES are read. A regular file's read does not
    wait for a writer, so it stays on the loop: a thread per probe costs more than it saves.
    """
    if problem := key_file_problem(path):
        return None, problem, ()
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as error:
        return None, _open_problem(path, error), ()
    try:
        status = os.fstat(descriptor)
        if problem := _not_a_file(path, status.st_mode):
            return None, problem, ()
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(descriptor, MAX_KEY_FILE_BYTES + 1 - size):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_KEY_FILE_BYTES:
                return (
                    None,
                    f"{path} is larger than {MAX_KEY_FILE_BYTES // 1024} KiB: not a key file",
                    (),
                )
    except OSError as error:
        return None, _open_problem(path, error), ()
    finally:
        os.close(descriptor)
    issues = ("file_readable_by_others",) if status.st_mode & stat.S_IROTH else ()
    return b"".join(chunks), "", issues


_DOTENV_LINE = re.compile(
    r"""^\s*(?:export\s+)?(?P<name>[\w.-]+)(?P<sep>\s*=\s*|:\s+)(?P<value>.*)$"""
)


def _dotenv_lookup(text: str, variable: str, fmt: DotenvFormat) -> _DotenvLine | None:
    found: _DotenvLine | None = None
    count = 0
    for raw_line in text.split("\n"):
        match = _DOTENV_LINE.match(raw_line)
        if not match or match.group("name") != variable:
            continue
        count += 1
        found = _parse_dotenv_value(raw_line, match, fmt)
    if found is not None and count > 1:
        found.issues.append("dotenv_duplicate_variable")
    return found


def _parse_dotenv_value(raw_line: str, match: re.Match[str], fmt: DotenvFormat) -> _DotenvLine:
    issues: list[str] = []
    if raw_line.endswith("\r"):
        issues.append("dotenv_crlf")
    if match.group("sep") not in {"=", ": "} and "=" in match.group("sep"):
        issues.append("dotenv_spaces_around_equals")
    if fmt is DotenvFormat.LITERAL:
        value = raw_line.split("=", 1)[1] if "=" in raw_line else ""
        if re.match(r"""^\s*(['"`]).*\1\s*$""", value):
            issues.append("dotenv_quoted_value")
        return _DotenvLine(value, value, issues)
    raw_value = match.group("value")
    # The npm dotenv package turns CRLF into LF first, then trims, then strips one pair of quotes.
    value = raw_value.rstrip("\r")
    quoted = re.match(r"""^\s*(['"`])(.*)\1""", value)
    if quoted:
        issues.append("dotenv_quoted_value")
        value = quoted.group(2)
        if quoted.group(1) == '"':
            value = value.replace("\\n", "\n").replace("\\r", "\r")
    else:
        # Unquoted, the npm package stops at the first `#`: the rest is a comment.
        value = value.split("#", 1)[0].strip()
    return _DotenvLine(value, raw_value, issues)


def key_kind(key: str) -> str:
    cleaned = key.strip().strip("\"'")
    for prefix, kind in KEY_KINDS:
        if cleaned.startswith(prefix):
            return kind
    return "unknown"


def lint_key(key: str) -> KeyLint:
    """Findings about the key's text, without sending it anywhere."""
    if _CLEAN_KEY.fullmatch(key):
        # The usual key, read before every probe: only letters, digits, - and _, so no space,
        # quote, line break or control character to look for.
        kind = key_kind(key)
        issues: tuple[str, ...] = ("unknown_prefix",) if kind == "unknown" else ()
        if len(key) not in _PLAUSIBLE_LENGTH:
            issues += ("implausible_length",)
        return KeyLint(fingerprint=redact(key), kind=kind, issues=issues, sendable=True)
    return _lint_any_text(key)


def _lint_any_text(key: str) -> KeyLint:
    issues: list[str] = []
    cleaned = key.strip()
    if key != key.lstrip():
        issues.append("leading_whitespace")
    if key != key.rstrip():
        issues.append("trailing_whitespace")
    if any(ch in "\r\n" for ch in key):
        issues.append("line_break")
    if any(ch.isspace() and ch not in "\r\n" for ch in cleaned):
        issues.append("inner_whitespace")
    if len(cleaned) >= 2 and cleaned[0] == cleaned[-1] and cleaned[0] in "\"'`":
        issues.append("surrounding_quotes")
        cleaned = cleaned[1:-1].strip()
    if not key.isascii():
        issues.append("non_ascii")
    kind = key_kind(cleaned)
    if kind == "unknown":
        issues.append("unknown_prefix")
    if len(cleaned) not in _PLAUSIBLE_LENGTH:
        issues.append("implausible_length")
    elif not _KEY_CHARSET.match(cleaned) and not _CHARACTER_ISSUES & set(issues):
        issues.append("unexpected_characters")
    reason = ""
    if "line_break" in issues:
        reason = "the key contains a line break (CR or LF), which cannot be sent in a header"
    elif "non_ascii" in issues:
        reason = "the key contains non-ASCII characters, which cannot be sent in a header"
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in key if ch != "\t"):
        reason = "the key contains control characters, which cannot be sent in a header"
    return KeyLint(
        fingerprint=redact(cleaned),
        kind=kind,
        issues=tuple(issues),
        sendable=not reason,
        unsendable_reason=reason,
    )
