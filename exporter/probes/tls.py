"""TLS for every probe: verification always on, a CA file's roots added to the system's and read
again when the file changes, so that a rotated corporate root needs no restart."""

from __future__ import annotations

import functools
import hashlib
import logging
import ssl
import time
from dataclasses import dataclass

from exporter.file_identity import FileIdentity, file_identity
from exporter.probes.rest_timing import TimedSSLObject

log = logging.getLogger("exporter.tls")

RETRY_FAILED_S = 30.0  # a CA file that could not be read is tried again this often


@dataclass(slots=True)
class _CaFileState:
    """What a CA file last was: its identity, the digest of its contents, and the context built
    from its last good contents (None if it never had any). `failed_at` is set while the file
    as it is now cannot be read."""

    identity: FileIdentity | None
    digest: bytes
    context: ssl.SSLContext | None
    failed_at: float | None = None
    error: OSError | None = None


_CA_FILES: dict[str, _CaFileState] = {}  # by CA file path, for the life of the process


class CaFileUnreadable(OSError):
    """The CA file has no good contents yet: TLS probes that need it fail until it has."""


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """The context for `ca_file` as the file is now; the system's roots alone without one.

    A corporate root is added, never substituted for trust. One context per CA file, shared by
    every probe (a context holds its own parsed copy of the system's roots). The file is
    stat'ed at each call; when its device, inode, size, mtime or ctime change (a Kubernetes
    secret swaps a symlink, an editor writes a new file, a chmod) its contents are read, and a
    new context built only if they differ. A file that is gone or unreadable keeps the last good
    context, so a rotation caught half-way fails no probe; it is tried again when the file
    changes and every RETRY_FAILED_S. Without any good contents yet, the error is raised, from
    memory between tries.
    """
    if ca_file is None:
        return _system_roots()
    identity = file_identity(ca_file)
    known = _CA_FILES.get(ca_file)
    if known is None or known.identity != identity or _retry_due(known):
        return _read_again(ca_file, identity, known)
    if known.context is None:
        raise CaFileUnreadable(f"{ca_file} cannot be read: {known.error}")
    return known.context


def _retry_due(known: _CaFileState) -> bool:
    return known.failed_at is not None and time.monotonic() - known.failed_at >= RETRY_FAILED_S


def _read_again(
    ca_file: str, identity: FileIdentity | None, known: _CaFileState | None
) -> ssl.SSLContext:
    try:
        with open(ca_file, "rb") as handle:
            digest = hashlib.sha256(handle.read()).digest()
        if known is not None and known.context is not None and digest == known.digest:
            # Touched, not changed: the same context, under the file's new identity.
            _CA_FILES[ca_file] = _CaFileState(identity, digest, known.context)
            return known.context
        context = _new_context()
        context.load_verify_locations(cafile=ca_file)
    except OSError as error:  # gone, unreadable, or PEM cut short (ssl.SSLError is an OSError)
        if known is None or known.identity != identity or known.failed_at is None:
            log.warning(
                "the CA file cannot be read; TLS goes on trusting its last good contents"
                if known is not None and known.context is not None
                else "the CA file cannot be read; TLS probes fail until it can",
                extra={"fields": {"file": ca_file, "error": str(error)}},
            )
        last_good = known.context if known is not None else None
        last_digest = known.digest if known is not None else b""
        _CA_FILES[ca_file] = _CaFileState(identity, last_digest, last_good, time.monotonic(), error)
        if last_good is None:
            raise CaFileUnreadable(f"{ca_file} cannot be read: {error}") from error
        return last_good
    if known is not None:
        log.info(
            "the CA file changed; new connections trust its new contents",
            extra={"fields": {"file": ca_file}},
        )
    _CA_FILES[ca_file] = _CaFileState(identity, digest, context)
    return context


@functools.cache
def _system_roots() -> ssl.SSLContext:
    return _new_context()


def _new_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    # A REST probe's connect and tls phases are told apart by the handshake's own stamps.
    context.sslobject_class = TimedSSLObject
    return context
