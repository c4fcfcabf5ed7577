"""Each key's last result and failure count kept across restarts, in one file under
--storage.path, so a restart neither resolves a firing alert nor starts its count again.

The file is written atomically (a temporary file, fsync, rename) whenever a result class or a
failure count changed, at most every WRITE_EVERY seconds, and at shutdown; it is read once at
start. What cannot be used is ignored, never fatal: a missing, unreadable or corrupt file, a
file of another format version, and entry by entry a key no longer configured, a probe no
longer configured or a record that does not parse, each with a warning.

Format (version 1), easy to extend: a reader ignores fields it does not know, and a field
added later is optional.

    {"version": 1, "written_at": 1764800000.0,
     "keys": {"web": {"fingerprint": "sk-proj-...sQoA", "kind": "project", "valid": false,
                      "probes": {"rest": {"result": "invalid_api_key", "consecutive_failures": 2,
                                          "started_at": ..., "duration": ..., "http_status": 401,
                                          "error_code": "invalid_api_key", "message": "...",
                                          "last_success_at": null, "result_since": ...,
                                          "result_probes": 2}},
                      "key_changed_at": 1764790000.0}}}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Mapping
from typing import Any

from exporter.classify import Result
from exporter.result import ProbeResult
from exporter.state import KeyIdentity, KeyState, ProbeState, StateStore

log = logging.getLogger("exporter.state_file")

FORMAT_VERSION = 1
FILE_NAME = "openai-key-exporter-state.json"
WRITE_EVERY = 10.0  # seconds between writes while results change
MAX_FILE_BYTES = 256 * 1024 * 1024
_LISTED_UNKNOWN = 10  # names quoted in the warning about keys no longer configured


def probe_record(state: ProbeState) -> dict[str, Any] | None:
    """One probe's record; None before its first result. New fields go here."""
    last = state.last
    if last is None:
        return None
    return {
        "result": last.result.value,
        "consecutive_failures": state.consecutive_failures,
        "started_at": last.started_at,
        "duration": last.duration,
        "http_status": last.http_status,
        "error_code": last.error_code,
        "message": last.message,  # already scrubbed of keys, as every message is
        "last_success_at": state.last_success_at,
        "result_since": state.result_since,
        "result_probes": state.result_probes,
    }


def key_record(state: KeyState) -> dict[str, Any] | None:
    probes = {
        kind: record for kind, probe in state.probes.items() if (record := probe_record(probe))
    }
    if not probes:
        return None
    return {
        "fingerprint": state.identity.fingerprint,
        "kind": state.identity.kind,
        "provider": state.identity.provider,
        "valid": state.valid,
        "key_changed_at": state.key_changed_at,
        "probes": probes,
    }


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} is not a number")
    return float(value)


def _optional_number(record: Mapping[str, object], name: str) -> float | None:
    value = record.get(name)
    return None if value is None else _number(value, name)


def _restore_probe(kind: str, record: object) -> tuple[ProbeResult, int, float | None]:
    """A record as (last result, failures in a row, last success); ValueError if it is not one."""
    if not isinstance(record, Mapping):
        raise ValueError("not a mapping")
    result = Result(str(record.get("result")))  # ValueError for an unknown class
    failures = record.get("consecutive_failures")
    if isinstance(failures, bool) or not isinstance(failures, int) or failures < 0:
        raise ValueError("consecutive_failures is not a count")
    success = record.get("last_success_at")
    last_success = None if success is None else _number(success, "last_success_at")
    status = record.get("http_status", 0)
    last = ProbeResult(
        probe=kind,
        result=result,
        duration=_number(record.get("duration", 0.0), "duration"),
        http_status=status if isinstance(status, int) and not isinstance(status, bool) else 0,
        error_code=str(record.get("error_code") or ""),
        message=str(record.get("message") or "")[:300],
        requests_made=0,  # made by the previous process: this one has sent nothing yet
        started_at=_number(record.get("started_at"), "started_at"),
    )
    return last, failures, last_success


def _streak(record: Mapping[str, object], last: ProbeResult) -> tuple[float, int]:
    """Since when the restored result holds and over how many probes; files written before
    these fields count from the restored probe alone."""
    try:
        since = _optional_number(record, "result_since")
    except ValueError:
        since = None
    probes = record.get("result_probes")
    if since is None or isinstance(probes, bool) or not isinstance(probes, int) or probes < 1:
        return last.started_at, 1
    return since, probes


class StateFile:
    """Keeps the store's results in `directory`; `restore` at start, `run` while serving."""

    def __init__(self, directory: str, store: StateStore) -> None:
        self.directory = directory
        self.path = os.path.join(directory, FILE_NAME)
        self.store = store
        # per key: the (probe, result, failures) that a write must keep; a change marks dirty
        self._signatures: dict[str, tuple[tuple[str, str, int], ...]] = {}
        self._dirty = False
        store.subscribe(self._changed)

    def _changed(self, state: KeyState) -> None:
        signature = tuple(
            (kind, probe.last.result.value, probe.consecutive_failures)
            for kind, probe in state.probes.items()
            if probe.last is not None
        )
        if self._signatures.get(state.name) != signature:
            self._signatures[state.name] = signature
            self._dirty = True

    def restore(self) -> int:
        """Load what the file holds for the configured keys and probes; the number restored."""
        document = self._read()
        if document is None:
            return 0
        keys = document.get("keys")
        if not isinstance(keys, Mapping):
            log.warning("state file ignored: no keys", extra={"fields": {"path": self.path}})
            return 0
        restored, unknown = 0, []
        for name, record in keys.items():
            state = self.store.get(str(name))
            if state is None:
                unknown.append(str(name))
                continue
            restored += self._restore_key(state, record)
        if unknown:
            log.warning(
                "state file names keys no longer configured; ignored",
                extra={
                    "fields": {"count": len(unknown), "keys": ",".join(unknown[:_LISTED_UNKNOWN])}
                },
            )
        self._dirty = False  # what was read is what the file holds
        log.info(
            "state restored",
            extra={"fields": {"path": self.path, "probes": restored}},
        )
        return restored

    def _restore_key(self, state: KeyState, record: object) -> int:
        if not isinstance(record, Mapping) or not isinstance(record.get("probes"), Mapping):
            self._ignored(state.name, "", "not a key record")
            return 0
        restored = 0
        for kind, probe_record_ in record["probes"].items():
            probe = state.probe(str(kind))
            if probe is None:
                self._ignored(state.name, str(kind), "probe not configured for this key")
                continue
            if probe.last is not None:
                continue  # probed by this process already: newer than the file
            try:
                last, failures, last_success = _restore_probe(str(kind), probe_record_)
            except (ValueError, TypeError) as problem:
                self._ignored(state.name, str(kind), str(problem))
                continue
            probe.last = last
            probe.consecutive_failures = failures
            probe.last_success_at = last_success
            probe.result_since, probe.result_probes = _streak(probe_record_, last)
            restored += 1
        if restored:
            fingerprint, kind = record.get("fingerprint"), record.get("kind")
            if (
                isinstance(fingerprint, str)
                and isinstance(kind, str)
                and not state.identity.fingerprint
            ):
                provider = record.get("provider")
                state.identity = KeyIdentity(
                    fingerprint=fingerprint,
                    kind=kind,
                    provider=provider if provider in ("openai", "azure") else "openai",
                )
            changed = record.get("key_changed_at")
            if state.key_changed_at is None and isinstance(changed, int | float):
                state.key_changed_at = float(changed)
            valid = record.get("valid")
            if state.valid is None and isinstance(valid, bool):
                state.valid = valid
            self.store.changed(state)
        return restored

    @staticmethod
    def _ignored(name: str, probe: str, problem: str) -> None:
        fields = {"key": name, "problem": problem}
        if probe:
            fields["probe"] = probe
        log.warning("state file entry ignored", extra={"fields": fields})

    def _read(self) -> dict[str, Any] | None:
        try:
            with open(self.path, "rb") as handle:
                raw = handle.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            log.info("no state file yet", extra={"fields": {"path": self.path}})
            return None
        except OSError as error:
            self._warn(f"cannot be read: {error.strerror or error}")
            return None
        if len(raw) > MAX_FILE_BYTES:
            self._warn("is too large")
            return None
        try:
            document = json.loads(raw)
        except (ValueError, RecursionError):
            self._warn("is not JSON (a write cut short?)")
            return None
        if not isinstance(document, dict) or document.get("version") != FORMAT_VERSION:
            version = document.get("version") if isinstance(document, dict) else None
            self._warn(f"has format version {version!r}, not {FORMAT_VERSION}")
            return None
        return document

    def _warn(self, problem: str) -> None:
        log.warning(
            "state file ignored; starting from no results",
            extra={"fields": {"path": self.path, "problem": problem}},
        )

    def snapshot(self) -> bytes:
        keys = {}
        for state in self.store.states():
            record = key_record(state)
            if record is not None:
                keys[state.name] = record
        document = {"version": FORMAT_VERSION, "written_at": time.time(), "keys": keys}
        return json.dumps(document, separators=(",", ":")).encode()

    def write(self) -> None:
        """Write the file atomically: readers see the old file or the new one, never half."""
        data = self.snapshot()
        self._dirty = False
        try:
            os.makedirs(self.directory, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=".state-", dir=self.directory)
            try:
                with os.fdopen(handle, "wb") as file:
                    file.write(data)
                    file.flush()
                    os.fsync(file.fileno())
                os.replace(temporary, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
        except OSError as error:
            self._dirty = True  # tried again at the next round
            log.warning(
                "state file not written",
                extra={"fields": {"path": self.path, "error": error.strerror or str(error)}},
            )

    async def run(self) -> None:
        """Write whenever something changed, at most every WRITE_EVERY seconds, until cancelled."""
        while True:
            await asyncio.sleep(WRITE_EVERY)
            if self._dirty:
                self.write()
