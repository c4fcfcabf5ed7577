"""Keeps keys out of every output: OpenAI-style redaction and a scrubber for free text."""

from __future__ import annotations

import logging
import threading

_PIECE = 12  # no run of this many characters of a key may reach output
_REDACTED_HEAD = 8
_REDACTED_TAIL = 4
_MIN_LENGTH_FOR_FULL_REDACTION = 24


def redact(key: str) -> str:
    """OpenAI's own public form of a key: first 8 characters, `...`, last 4 (`sk-proj-...sQoA`).

    A short key shows less, so that a truncated key is not mostly revealed.
    """
    visible = "".join(ch if ch.isprintable() and not ch.isspace() else "?" for ch in key)
    if not visible:
        return ""
    if len(visible) < _MIN_LENGTH_FOR_FULL_REDACTION:
        return visible[:3] + "..."
    return f"{visible[:_REDACTED_HEAD]}...{visible[-_REDACTED_TAIL:]}"


class SecretRegistry:
    """The keys the process currently holds, by key name, so any text can be scrubbed of them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_name: dict[str, str] = {}

    def remember(self, name: str, key: str) -> None:
        with self._lock:
            if key:
                self._by_name[name] = key
            else:
                self._by_name.pop(name, None)

    def forget(self, name: str) -> None:
        with self._lock:
            self._by_name.pop(name, None)

    def secrets(self) -> list[str]:
        with self._lock:
            return list(self._by_name.values())


SECRETS = SecretRegistry()


def scrub(text: str, secrets: list[str] | None = None, *, pieces: bool = True) -> str:
    """Text with every known key replaced by its redacted form.

    With `pieces`, for text a library wrote (exception messages quote header values, sometimes
    truncated), the whole text is withheld if any 12-character piece of a key survives.
    """
    for key in secrets if secrets is not None else SECRETS.secrets():
        text = _scrub_one(text, key, pieces)
    return text


def key_fingerprint(key: str) -> str:
    """The redacted form of the key as lint sees it: without surrounding whitespace and quotes."""
    cleaned = key.strip()
    if len(cleaned) >= 2 and cleaned[0] == cleaned[-1] and cleaned[0] in "\"'`":
        cleaned = cleaned[1:-1].strip()
    return redact(cleaned)


def _scrub_one(text: str, key: str, pieces: bool) -> str:
    # Every form becomes the key's one fingerprint, the one its metrics show.
    fingerprint = key_fingerprint(key)
    for form in sorted(
        {key, key.strip(), key.strip().strip("\"'"), repr(key)[1:-1]}, key=len, reverse=True
    ):
        if len(form) < _PIECE:
            continue
        replacement = fingerprint if len(fingerprint) < len(form) else redact(form)
        # Again until none is left: a redacted tail and the text after it can form the key anew.
        while form in text:
            text = text.replace(form, replacement)
    if pieces and _contains_piece(text, key):
        return "(message withheld: it quoted part of a key)"
    return text


def _contains_piece(text: str, key: str) -> bool:
    if len(key) < _PIECE or len(text) < _PIECE:
        return False
    return any(key[i : i + _PIECE] in text for i in range(len(key) - _PIECE + 1))


class ScrubbingFilter(logging.Filter):
    """Logging filter that scrubs every record's message and exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = SECRETS.secrets()
        if not secrets:
            return True
        # Our own lines never hold a piece of a key, so only whole keys are replaced there;
        # tracebacks come from libraries and get the piece check too.
        record.msg = scrub(record.getMessage(), secrets, pieces=False)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        for attr in ("exc_text", "stack_info"):
            value = getattr(record, attr, None)
            if value:
                setattr(record, attr, scrub(value, secrets))
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            record.fields = {name: _scrub_value(value, secrets) for name, value in extra.items()}
        return True


def _scrub_value(value: object, secrets: list[str]) -> object:
    """A log field scrubbed; an exception or any other object is written as its scrubbed text."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [_scrub_value(item, secrets) for item in value]
    if isinstance(value, dict):
        return {str(name): _scrub_value(item, secrets) for name, item in value.items()}
    return scrub(str(value), secrets, pieces=not isinstance(value, str))
