"""Model lifecycle from the REST probe's own `/v1/models` answer: is each watched model listed,
and when does OpenAI shut it down. Free: it reads the answer the probe already has.

Only the models a key watches are looked at (its probes' models and its `models:` list): at
10,000 keys the list is walked once per answer for a handful of ids, and a `shutdown_date`
text is parsed once per process, not once per key.
"""

from __future__ import annotations

import datetime
import logging
import math
from dataclasses import dataclass

from exporter.config import KeyConfig
from exporter.redaction import scrub

log = logging.getLogger("exporter.models")

_DAY = 86400.0
_MAX_REMEMBERED = 4096  # distinct shutdown_date texts and status tuples kept; then cleared


@dataclass(frozen=True, slots=True)
class ModelStatus:
    """One watched model as the key's model list shows it."""

    model: str
    listed: bool
    shutdown_at: float | None = None  # Unix time; None when OpenAI gives no date

    def days_left(self, now: float) -> float | None:
        return None if self.shutdown_at is None else (self.shutdown_at - now) / _DAY


ModelStatuses = tuple[ModelStatus, ...]


def watched_models(config: KeyConfig) -> frozenset[str]:
    """The models this key's probes use, and those listed under its `models:` field."""
    models = set(config.models)
    if "realtime" in config.probes:
        models.add(config.realtime.model)
    if "live" in config.probes and config.live.model:
        models.add(config.live.model)
    if "inference" in config.probes:
        models.add(config.inference.model)
    return frozenset(models)


def read_statuses(payload: object, watched: frozenset[str], key: str) -> ModelStatuses:
    """The watched models' statuses from a parsed model list (`{"data": [...]}`), sorted by
    model; () when nothing is watched. Stops reading once every watched model was seen."""
    if not watched or not isinstance(payload, dict):
        return ()
    data = payload.get("data")
    found: dict[str, object] = {}
    for entry in data if isinstance(data, list) else ():
        if type(entry) is dict:
            model = entry.get("id")
            if type(model) is str and model in watched:
                found[model] = entry.get("shutdown_date")
                if len(found) == len(watched):
                    break
    # Thousands of keys watching the same models see the same answer: one tuple for them all,
    # looked up by plain values (hashing the dataclasses would cost more than making them).
    reading: object = (watched, tuple(sorted(found.items(), key=_first)))
    try:
        statuses = _READINGS.get(reading)
    except TypeError:  # a shutdown_date that is a list or an object: not kept
        statuses, reading = None, None
    if statuses is None:
        dates = {model: shutdown_timestamp(model, value, key) for model, value in found.items()}
        statuses = tuple(
            ModelStatus(model, model in found, dates.get(model)) for model in sorted(watched)
        )
        if reading is not None:
            if len(_READINGS) >= _MAX_REMEMBERED:
                _READINGS.clear()
            _READINGS[reading] = statuses
    return statuses


def _first(item: tuple[str, object]) -> str:
    return item[0]


_READINGS: dict[object, ModelStatuses] = {}


_PARSED: dict[str, float | None] = {}
_WARNED: set[tuple[str, str]] = set()


def shutdown_timestamp(model: str, value: object, key: str = "") -> float | None:
    """`shutdown_date` as Unix time: an ISO date (midnight UTC), an ISO date-time (UTC when it
    names no offset), or null (no date). Any other form is ignored, with one warning per model
    and form, never an error: the key's probe result does not depend on it."""
    if value is None:
        return None
    if isinstance(value, str):
        if value in _PARSED:
            return _PARSED[value]
        parsed = _parse_iso(value)
        if parsed is not None:
            if len(_PARSED) >= _MAX_REMEMBERED:
                _PARSED.clear()
            _PARSED[value] = parsed
            return parsed
    _warn_once(model, value, key)
    return None


def _parse_iso(text: str) -> float | None:
    text = text.strip()
    if len(text) == 10:
        try:
            day = datetime.date.fromisoformat(text)
        except ValueError:
            return None
        moment = datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC)
    else:
        try:
            moment = datetime.datetime.fromisoformat(text)  # 3.11 reads a trailing Z
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
    timestamp = moment.timestamp()
    return timestamp if math.isfinite(timestamp) else None


def _warn_once(model: str, value: object, key: str) -> None:
    shown = scrub(repr(value)[:80], [key] if key else [])
    form = type(value).__name__ if not isinstance(value, str) else "text"
    if (model, form) in _WARNED:
        return
    if len(_WARNED) >= _MAX_REMEMBERED:
        return  # the warnings stop rather than grow without bound
    _WARNED.add((model, form))
    log.warning(
        "model list: shutdown_date in an unexpected form, ignored",
        extra={"fields": {"model": model[:100], "shutdown_date": shown}},
    )


def days_left_text(status: ModelStatus, now: float) -> str:
    """For a person: `listed, shuts down 2027-01-20 (47 days left)`, `NOT LISTED`..."""
    if not status.listed:
        return "not listed"
    days = status.days_left(now)
    if days is None or status.shutdown_at is None:
        return "listed, no shutdown date"
    date = datetime.datetime.fromtimestamp(status.shutdown_at, datetime.UTC).date().isoformat()
    if days <= 0:
        return f"listed, shutdown date {date} has passed"
    return f"listed, shuts down {date} ({math.ceil(days)} days left)"
