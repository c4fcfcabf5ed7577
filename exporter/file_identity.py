"""What a file on disk is now, without reading it: the one test of "did this file change" for
CA files, web-config files and the TLS files they name.

A Kubernetes secret swaps a symlink (device and inode change), an editor writes a new file
(inode), a write in place changes size or mtime, a chmod changes ctime: any of them is a change.
"""

from __future__ import annotations

import os

FileIdentity = tuple[int, int, int, int, int]  # device, inode, size, mtime and ctime in ns


def identity_of(status: os.stat_result) -> FileIdentity:
    """The identity of a file already stat'ed."""
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)


def file_identity(path: str) -> FileIdentity | None:
    """The file's identity now (symlinks followed); None when it cannot be stat'ed."""
    try:
        return identity_of(os.stat(path))
    except OSError:
        return None
