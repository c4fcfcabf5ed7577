"""Keeps keys out of every output: OpenAI-style redaction and a scrubber for free text."""

from __future__ import annotations

import logging
import re
import threading

_PIECE = 12  # no run of this many characters of a key may reach output
_REDACTED_HEAD = 8
_REDACTED_TAIL = 4
_MIN_LENGTH_FOR_FULL_REDACTION = 24
_PASTED_KEY = re.compile(r"sk-[A-Za-z0-9_-]{20,}")  # every kind of key OpenAI issues starts sk-


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


def redact_pasted_keys(text: str) -> str:
    """Text a person wrote (a file's values and field names) as a message may quote it: what
    looks like an OpenAI key in it shown redacted, whether or not it is a known key."""
    return _PASTED_KEY.sub(lambda match: redact(match.group()), text)


def _forms(key: str) -> set[str]:
    """The ways a key can appear in text: as read, trimmed, unquoted, escaped by repr()."""
    candidates = {key, key.strip(), key.strip().strip("\"'"), repr(key)[1:-1]}
    return {form for form in candidates if len(form) >= _PIECE}


class SecretRegistry:
    """The keys the process currently holds, by key name, so any text can be scrubbed of them.

    Each form of each key is indexed by its first 12 characters, so scrubbing a log line costs
    one dictionary look-up per character of the line, not one search per key held. A start
    that only a key as read has (the usual case) maps to that key itself; other forms, and
    starts shared by several keys, get a dict of form -> key (not a dict for every key: the
    registry stays small with thousands of keys).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_name: dict[str, str] = {}
        self._holders: dict[str, int] = {}  # key -> how many names hold it
        self._anchors: dict[str, str | dict[str, str]] = {}  # first 12 chars -> key or {form: key}

    def remember(self, name: str, key: str) -> None:
        with self._lock:
            old = self._by_name.get(name)
            if old == (key or None):
                return  # the usual case: the same key read again before each probe
            if old is not None:
                self._release(old)
                del self._by_name[name]
            if key:
                self._by_name[name] = key
                self._hold(key)

    def forget(self, name: str) -> None:
        with self._lock:
            old = self._by_name.pop(name, None)
            if old is not None:
                self._release(old)

    def _hold(self, key: str) -> None:
        self._holders[key] = self._holders.get(key, 0) + 1
        for form in _forms(key):
            anchor = form[:_PIECE]
            held = self._anchors.get(anchor)
            if held == form:
                continue  # this key, held under another name too
            if held is None and form == key:
                self._anchors[anchor] = key
                continue
            if held is None:
                held = self._anchors[anchor] = {}
            elif isinstance(held, str):
                held = self._anchors[anchor] = {held: held}
            held[form] = key

    def _release(self, key: str) -> None:
        self._holders[key] -= 1
        if self._holders[key]:
            return
        del self._holders[key]
        for form in _forms(key):
            anchor = form[:_PIECE]
            held = self._anchors.get(anchor)
            if isinstance(held, dict):
                held.pop(form, None)
                if not held:
                    del self._anchors[anchor]
            elif held == form:
                del self._anchors[anchor]

    def secrets(self) -> list[str]:
        with self._lock:
            return list(self._holders)

    def scrub(self, text: str) -> str:
        """Text with every whole key this process holds replaced by its fingerprint."""
        found: dict[str, str] = {}
        with self._lock:
            anchors = self._anchors
            if not anchors:
                return text
            for start in range(len(text) - _PIECE + 1):
                held = anchors.get(text[start : start + _PIECE])
                if isinstance(held, str):
                    found[held] = held
                elif held:
                    found.update(held)
        for key in set(found.values()):
            text = _scrub_one(text, key, pieces=False)
        return text


SECRETS = SecretRegistry()


def scrub(text: str, secrets: list[str] | None = None, *, pieces: bool = True) -> str:
    """Text with each of `secrets` (by default every key held) replaced by its redacted form.

    With `pieces`, for text a library wrote (exception messages quote header values, sometimes
    truncated), the whole text is withheld if any 12-character piece of a key survives.
    The probes pass the one key they hold, which keeps this cheap with thousands of keys.
    """
    if secrets is None:
        text = SECRETS.scrub(text)
        if not pieces:
            return text
        secrets = SECRETS.secrets()
    for key in secrets:
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
    """Logging filter that scrubs every record's message, fields and exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Our own lines never hold a piece of a key, so whole keys are replaced there;
        # tracebacks come from libraries and get the piece check against every key too.
        record.msg = SECRETS.scrub(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        for attr in ("exc_text", "stack_info"):
            value = getattr(record, attr, None)
            if value:
                setattr(record, attr, scrub(value, SECRETS.secrets()))
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            record.fields = {name: _scrub_value(value) for name, value in extra.items()}
        return True


def _scrub_value(value: object) -> object:
    """A log field scrubbed; an exception or any other object is written as its scrubbed text."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [_scrub_value(item) for item in value]
    if isinstance(value, dict):
        return {str(name): _scrub_value(item) for name, item in value.items()}
    if isinstance(value, str):
        return SECRETS.scrub(value)
    return scrub(str(value), SECRETS.secrets())
