"""TLS for both probes: verification always on, a CA file's roots added to the system's and read
again when the file changes, so that a rotated corporate root needs no restart."""

from __future__ import annotations

import functools
import logging
import os
import ssl

log = logging.getLogger("exporter.tls")

_FileIdentity = tuple[int, int, int, int]  # device, inode, size, mtime in ns
# Per CA file: the identity its contents were read at (None: it could not be stat'ed) and the
# context built from the last good contents.
_BY_FILE: dict[str, tuple[_FileIdentity | None, ssl.SSLContext]] = {}


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """The context for `ca_file` as the file is now; the system's roots alone without one.

    A corporate root is added, never substituted for trust. One context per CA file, shared by
    both probes (each holds its own parsed copy of the system's roots, about 1 MiB), built again
    when the file's device, inode, size or mtime change: a Kubernetes secret or config map
    swaps a symlink, an editor writes a new file. A file that is gone or unreadable for the
    moment keeps the last good context, so a rotation caught half-way fails no probe; it is
    tried again once the file changes, not at every probe.
    """
    if ca_file is None:
        return _system_roots()
    identity = _identity(ca_file)
    held = _BY_FILE.get(ca_file)
    if held is not None and held[0] == identity:
        return held[1]
    try:
        context = ssl.create_default_context()
        context.load_verify_locations(cafile=ca_file)
    except (OSError, ssl.SSLError) as error:  # gone, unreadable, or PEM cut short
        if held is None:
            raise
        log.warning(
            "the CA file cannot be read; TLS goes on trusting its last good contents",
            extra={"fields": {"file": ca_file, "error": str(error)}},
        )
        _BY_FILE[ca_file] = (identity, held[1])
        return held[1]
    if held is not None:
        log.info(
            "the CA file changed; new connections trust its new contents",
            extra={"fields": {"file": ca_file}},
        )
    _BY_FILE[ca_file] = (identity, context)
    return context


@functools.cache
def _system_roots() -> ssl.SSLContext:
    return ssl.create_default_context()


def _identity(path: str) -> _FileIdentity | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)
