"""Runs one probe for one key: read the key, lint it, probe, record, and log what changed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from exporter.classify import Result
from exporter.config import KeyConfig
from exporter.keys import KeyLint, KeyReading, change_time, lint_key, read_key, value_digest
from exporter.links import DEFAULT_LINKS, Links
from exporter.provider import OPENAI_KEY_FOR_AZURE_FIX
from exporter.redaction import SECRETS, scrub
from exporter.result import ProbeResult
from exporter.state import KeyIdentity, ProbeState, StateStore

log = logging.getLogger("exporter.runner")

MAX_CONCURRENT_PROBES = 256  # bounds sockets and memory, whatever the number of keys


class Prober(Protocol):
    async def probe(self, config: KeyConfig, key: str) -> ProbeResult: ...

    def forget(self, name: str) -> None: ...

    async def aclose(self) -> None: ...


# Reads a rejection against the organization's key inventory (exporter/inventory.py).
RejectionCheck = Callable[[KeyConfig, str, ProbeResult], ProbeResult]


class ProbeRunner:
    """Runs probes for the scheduler (it is the scheduler's ProbeRuns): at most
    MAX_CONCURRENT_PROBES at once, each bounded by its key's timeout, every outcome recorded in
    the store as a classified result (a prober that raises is Result.OTHER, never a crash)."""

    def __init__(
        self, store: StateStore, probers: dict[str, Prober], links: Links = DEFAULT_LINKS
    ) -> None:
        self.store = store
        self.probers = probers
        self.links = links
        self.rejection_check: RejectionCheck | None = None
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_PROBES)

    async def run(self, config: KeyConfig, probe: str) -> ProbeResult:
        read_at = time.time()
        reading = read_key(config.source)
        # Before anything can print it: every log line, error message and scrubbed text of the
        # process must find this key (and no longer the one it replaces) from here on.
        SECRETS.remember(config.name, reading.key or "")
        lint = lint_key(reading.key, config.provider) if reading.key is not None else None
        identity = _identity(reading, lint, config.provider)
        async with self._slots:
            started = time.time()
            result = await self._probe(config, probe, reading, lint)
        # The run's start, taken here: openai_probe_last_run_timestamp_seconds says when it began.
        result = replace(result, started_at=started)
        if self.rejection_check is not None and result.result is Result.INVALID_API_KEY:
            assert reading.key is not None  # a rejection means the key was sent
            result = self.rejection_check(config, reading.key, result)
        previous_state = self.store.get(config.name)
        previous = None
        previous_probe = previous_state.probe(probe) if previous_state is not None else None
        if previous_state is not None and previous_probe is not None:
            previous = previous_probe.last
            if previous_state.identity != identity and read_at >= previous_state.key_read_at:
                _log_identity(config.name, previous_state.identity, identity)
        previous_since = previous_probe.result_since if previous_probe is not None else None
        previous_probes = previous_probe.result_probes if previous_probe is not None else 0
        state = self.store.record(
            config.name,
            identity,
            result,
            lambda previous_change: change_time(reading, previous_change),
            read_at,
        )
        probe_state = state.probe(probe) if state is not None else None
        _log_result(
            config.name,
            identity,
            previous,
            result,
            self.links,
            _Streak(previous_since, previous_probes, probe_state),
        )
        return result

    async def _probe(
        self, config: KeyConfig, probe: str, reading: KeyReading, lint: KeyLint | None
    ) -> ProbeResult:
        if reading.key is None or lint is None:
            return ProbeResult(
                probe=probe,
                result=Result.KEY_MISSING,
                error_code=Result.KEY_MISSING.value,
                message=reading.problem,
                requests_made=0,
            )
        if not lint.sendable:
            return ProbeResult(
                probe=probe,
                result=Result.KEY_MALFORMED,
                error_code=Result.KEY_MALFORMED.value,
                message=lint.unsendable_reason,
                requests_made=0,
            )
        started = time.time()
        try:
            # The probe's own timeout should win; this one catches a probe that forgot to.
            async with asyncio.timeout(config.timeout + 1.0):
                return await self.probers[probe].probe(config, reading.key)
        except (TimeoutError, asyncio.CancelledError):
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # a real cancellation (shutdown, reload): not a result
            # A timeout a library turned into a bare CancelledError is still a timeout.
            return ProbeResult(
                probe=probe,
                result=Result.TIMEOUT,
                duration=time.time() - started,
                error_code=Result.TIMEOUT.value,
                message=f"no answer within {config.timeout:g}s",
                started_at=started,
            )
        except Exception as error:  # a probe bug must not stop the schedule
            message = scrub(f"{type(error).__name__}: {error}", [reading.key])
            log.error(
                "probe crashed",
                extra={"fields": {"key": config.name, "probe": probe, "error": message}},
            )
            return ProbeResult(
                probe=probe,
                result=Result.OTHER,
                duration=time.time() - started,
                error_code=Result.OTHER.value,
                message=message,
                started_at=started,
            )

    def forget(self, name: str) -> None:
        for prober in self.probers.values():
            prober.forget(name)

    def consecutive_failures(self, name: str, probe: str) -> int:
        state = self.store.get(name)
        probe_state = state.probe(probe) if state is not None else None
        return probe_state.consecutive_failures if probe_state is not None else 0

    async def aclose(self) -> None:
        for prober in self.probers.values():
            await prober.aclose()


def _identity(reading: KeyReading, lint: KeyLint | None, provider: str) -> KeyIdentity:
    digest = value_digest(reading.key)
    if lint is None:
        return KeyIdentity(
            issues=(*reading.source_issues, "empty" if reading.empty else "missing"),
            provider=provider,
            value_digest=digest,
        )
    return KeyIdentity(
        fingerprint=lint.fingerprint,
        kind=lint.kind,
        issues=tuple(dict.fromkeys((*lint.issues, *reading.source_issues))),
        provider=provider,
        value_digest=digest,
    )


def _log_identity(name: str, before: KeyIdentity, after: KeyIdentity) -> None:
    """One line when a key is rotated or its text or source gets a new problem."""
    fields: dict[str, object] = {"key": name, "fingerprint": after.fingerprint, "kind": after.kind}
    if before.fingerprint and before.fingerprint != after.fingerprint:
        fields["previous_fingerprint"] = before.fingerprint
    new_issues = [issue for issue in after.issues if issue not in before.issues]
    value_changed = before.value_digest is not None and before.value_digest != after.value_digest
    if value_changed:
        # Said once, when it happens: the exporter rereads the key, the application does not.
        fields["restart"] = "processes of the application started before now still hold the old key"
    if new_issues:
        fields["issues"] = ",".join(new_issues)
        if "openai_key_for_azure" in new_issues:
            fields["fix"] = OPENAI_KEY_FOR_AZURE_FIX
        if "file_readable_by_others" in new_issues:
            fields["fix"] = "chmod 600 the key file: other users on this machine can read the key"
        log.warning("key has format or source issues", extra={"fields": fields})
    elif value_changed:
        log.info("key value changed in its source", extra={"fields": fields})
    elif "previous_fingerprint" in fields or not before.fingerprint:
        log.info("key read", extra={"fields": fields})


@dataclass(frozen=True, slots=True)
class _Streak:
    """The previous result class's run (since when, how many probes) and the current one's."""

    previous_since: float | None
    previous_probes: int
    current: ProbeState | None


def iso_seconds(timestamp: float) -> str:
    """A Unix time as people and logs read it: ISO 8601, UTC, to the second."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def _log_result(
    name: str,
    identity: KeyIdentity,
    previous: ProbeResult | None,
    result: ProbeResult,
    links: Links,
    streak: _Streak,
) -> None:
    fields = {
        "key": name,
        "probe": result.probe,
        "result": result.result.value,
        "fingerprint": identity.fingerprint,
        "duration_seconds": round(result.duration, 4),
        "http_status": result.http_status,
    }
    if result.error_code:
        fields["error_code"] = result.error_code
    if result.close_code is not None:
        fields["close_code"] = result.close_code
    if result.request_id:
        fields["request_id"] = result.request_id
    if result.message:
        fields["message"] = result.message
    current = streak.current
    if current is not None and current.result_since is not None:
        fields["since"] = iso_seconds(current.result_since)
        fields["probes"] = current.result_probes
    changed = previous is None or previous.result is not result.result
    if not changed:
        log.debug("probe finished", extra={"fields": fields})
        return
    if previous is not None:
        fields["previous_result"] = previous.result.value
        if streak.previous_since is not None:
            fields["previous_since"] = iso_seconds(streak.previous_since)
            fields["previous_probes"] = streak.previous_probes
    runbook = links.for_result(result.result)
    if runbook:
        fields["runbook"] = runbook
    if result.healthy:
        log.info("key result changed", extra={"fields": fields})
    else:
        log.warning("key result changed", extra={"fields": fields})
