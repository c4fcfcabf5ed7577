"""Leak checks read from /proc: a process's open file descriptors, RSS, and TCP connections."""

from __future__ import annotations

import os
from collections.abc import Collection


def established_to(ports: Collection[int], pid: int | None = None) -> int:
    """ESTABLISHED TCP connections to one of `ports` (remote side); only `pid`'s when given."""
    inodes: set[str] | None = None
    if pid is not None:
        inodes = set()
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue  # closed while we looked
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                lines = handle.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port not in ports or fields[3] != "01":  # 01: ESTABLISHED
                continue
            if inodes is None or fields[9] in inodes:
                count += 1
    return count


def proc_status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))
