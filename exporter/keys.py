"""Where each key comes from, what is wrong with its text, and its public identity."""

from __future__ import annotations

import enum
import errno
import hashlib
import os
import re
import secrets
import stat
import time
from dataclasses import dataclass, field, replace

from exporter.provider import is_azure_key_shape, is_openai_key
from exporter.redaction import redact


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
    modified_at: float | None = None  # the file's mtime, for a file or .env source


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
# Lengths of the keys OpenAI issues today, per kind. OpenAI documents none; these are what
# public secret scanners (gitleaks, trufflehog) match: `sk-proj-`, `sk-svcacct-`, `sk-admin-` and
# `sk-None-` followed by 74 + `T3BlbkFJ` + 74 characters, or 58 + `T3BlbkFJ` + 58 (seen on admin
# and some project keys), and a legacy user key `sk-` + 48. A small tolerance covers a variant
# the scanners have not seen; a key cut in a `.env` is short by far more.
TYPICAL_BODY_LENGTHS = (156, 124)  # after the kind's prefix
LENGTH_TOLERANCE = 2
LEGACY_USER_KEY_LENGTH = 51
_PLAUSIBLE_LENGTH = range(40, 257)  # a key of no known kind (a proxy's, Azure's is 32 or 84)
_KEY_CHARSET = re.compile(r"^[A-Za-z0-9_\-]+$")
_CLEAN_KEY = re.compile(r"[A-Za-z0-9_\-]+")  # fullmatch: `$` would let a final newline through
# Findings that already name the odd characters: unexpected_characters would only repeat them.
_CHARACTER_ISSUES = {"non_ascii", "inner_whitespace", "line_break"}


# Per process, never written anywhere: a digest tells that a key's value changed without
# keeping or showing anything a key could be guessed back from.
_DIGEST_SALT = secrets.token_bytes(16)


def value_digest(key: str | None) -> bytes:
    """A salted digest of the value read (None: no value), to notice a change of key."""
    data = b"\x00" if key is None else b"\x01" + key.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=16, key=_DIGEST_SALT).digest()


def change_time(reading: KeyReading, previous: float | None, now: float | None = None) -> float:
    """When the value just read changed in its source: the file's mtime when it is newer than
    the previous change and not in the future (a file moved in keeps an old mtime), else now."""
    now = time.time() if now is None else now
    modified = reading.modified_at
    if modified is not None and modified <= now and (previous is None or modified > previous):
        return modified
    return now


def read_key(source: KeySource) -> KeyReading:
    """Read the key now, from its source, exactly as the application would. Pure: the caller
    that goes on to use the key registers it for scrubbing (redaction.SECRETS.remember)."""
    try:
        return _read(source)
    except OSError as error:
        return KeyReading(None, f"{source.describe()}: {error.strerror or error}")


def _read(source: KeySource) -> KeyReading:
    if source.kind is SourceKind.ENV:
        value = os.environ.get(source.location)
        if value is None:
            return KeyReading(None, f"environment variable {source.location} is not set")
        return KeyReading(
            value or None, "" if value else f"{source.location} is empty", empty=not value
        )
    raw, problem, issues, modified = read_key_file(source.location)
    if raw is None:
        return KeyReading(None, problem)
    text = raw.decode("utf-8", errors="replace")
    if source.kind is SourceKind.FILE:
        # A secret file's trailing newline is not part of the key (kubectl, echo, editors add it).
        value = text[:-1] if text.endswith("\n") else text
        problem = "" if value else f"{source.location} is empty"
        return KeyReading(value or None, problem, issues, empty=not value, modified_at=modified)
    line = _dotenv_lookup(text, source.dotenv_var, source.dotenv_format)
    if line is None:
        problem = f"{source.dotenv_var} is not set in {source.location}"
        return KeyReading(None, problem, issues, modified_at=modified)
    issues = issues + tuple(line.issues)
    problem = "" if line.value else f"{source.dotenv_var} is empty in {source.location}"
    return KeyReading(
        line.value or None, problem, issues, empty=not line.value, modified_at=modified
    )


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


def read_key_file(path: str) -> tuple[bytes | None, str, tuple[str, ...], float | None]:
    """A key or .env file's bytes, or None and why; with findings on the file's mode and its
    modification time (when its value changed, for a file written in place).

    Only a regular file is read: a FIFO would block the event loop until something writes
    to it, a device may never end. Its type is checked before opening (a device is never
    opened) and again on what was opened (it may have been swapped in between); the open
    is non-blocking, and at most MAX_KEY_FILE_BYTES are read. A regular file's read does not
    wait for a writer, so it stays on the loop: a thread per probe costs more than it saves.
    """
    if problem := key_file_problem(path):
        return None, problem, (), None
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as error:
        return None, _open_problem(path, error), (), None
    try:
        status = os.fstat(descriptor)
        if problem := _not_a_file(path, status.st_mode):
            return None, problem, (), None
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
                    None,
                )
    except OSError as error:
        return None, _open_problem(path, error), (), None
    finally:
        os.close(descriptor)
    issues = ("file_readable_by_others",) if status.st_mode & stat.S_IROTH else ()
    return b"".join(chunks), "", issues, status.st_mtime


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


def typical_lengths(key: str) -> tuple[int, ...]:
    """The whole lengths a key with this prefix has when it is complete; () when unknown."""
    for prefix, kind in KEY_KINDS:
        if key.startswith(prefix):
            if kind == "user" and not key.startswith("sk-None-"):
                return (LEGACY_USER_KEY_LENGTH,)
            head = "sk-None-" if kind == "user" else prefix
            return tuple(len(head) + body for body in TYPICAL_BODY_LENGTHS)
    return ()


def _length_plausible(key: str) -> bool:
    typical = typical_lengths(key)
    if not typical:
        return len(key) in _PLAUSIBLE_LENGTH
    if typical == (LEGACY_USER_KEY_LENGTH,):
        return len(key) == LEGACY_USER_KEY_LENGTH  # one fixed format since 2020
    return any(abs(len(key) - length) <= LENGTH_TOLERANCE for length in typical)


def _kind_issues(kind: str) -> tuple[str, ...]:
    if kind == "unknown":
        return ("unknown_prefix",)
    # An admin key manages the organization (keys, projects, costs); it cannot call models, so
    # an application given one fails whatever the probes say about it.
    return ("admin_key",) if kind == "admin" else ()


def key_kind(key: str) -> str:
    cleaned = key.strip().strip("\"'")
    for prefix, kind in KEY_KINDS:
        if cleaned.startswith(prefix):
            return kind
    return "unknown"


def lint_key(key: str, provider: str = "openai") -> KeyLint:
    """Findings about the key's text, without sending it anywhere."""
    if provider == "azure":
        return _lint_azure(key)
    if _CLEAN_KEY.fullmatch(key):
        # The usual key, read before every probe: only letters, digits, - and _, so no space,
        # quote, line break or control character to look for.
        kind = key_kind(key)
        issues = _kind_issues(kind)
        if not _length_plausible(key):
            issues += ("implausible_length",)
        return KeyLint(fingerprint=redact(key), kind=kind, issues=issues, sendable=True)
    return _lint_any_text(key)


def _lint_azure(key: str) -> KeyLint:
    """An Azure OpenAI resource's key: kind `azure` when it has an Azure key's shape, so it is
    not reported as an unknown prefix; the text checks are those of any key."""
    if is_azure_key_shape(key):
        return KeyLint(fingerprint=redact(key), kind="azure", issues=(), sendable=True)
    lint = _lint_any_text(key)
    cleaned = "".join(key.split()).strip("\"'`")
    issues = [issue for issue in lint.issues if issue != "unknown_prefix"]
    if is_openai_key(key):  # an Azure resource refuses it: a warning, the probe says the rest
        issues.append("openai_key_for_azure")
    if is_azure_key_shape(cleaned):
        kind = "azure"  # an Azure key with a stray space or quotes around it
        issues = [issue for issue in issues if issue != "implausible_length"]
    else:
        kind = lint.kind
    return replace(lint, kind=kind, issues=tuple(issues))


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
    issues.extend(_kind_issues(kind))
    # Measured without the whitespace already reported: a stray CR does not make a key long.
    if not _length_plausible("".join(cleaned.split())):
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
