"""Which replica probes which key: a stable split of key names over `--shard.total` replicas."""

from __future__ import annotations

import hashlib
import re

_MASK64 = (1 << 64) - 1
# The linear congruential step from Lamping & Veach, "A Fast, Minimal Memory, Consistent
# Hash Algorithm" (2014). Changing it would move every key, so it is part of the format.
_JUMP_MULTIPLIER = 2862933555777941757

# A StatefulSet pod is named `<statefulset>-<ordinal>`; its hostname is the pod name, and a
# fully qualified one (`name-3.svc.ns.svc.cluster.local`) starts with it.
_ORDINAL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?-(?P<ordinal>0|[1-9][0-9]*)$")


def _name_hash(key_name: str) -> int:
    # sha256 rather than hash(): Python salts str hashes per process, and every replica
    # must agree on where each key lives.
    digest = hashlib.sha256(key_name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def _jump_consistent_hash(key: int, buckets: int) -> int:
    bucket, candidate = -1, 0
    while candidate < buckets:
        bucket = candidate
        key = (key * _JUMP_MULTIPLIER + 1) & _MASK64
        candidate = int((bucket + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return bucket


def shard_for(key_name: str, total: int) -> int:
    """The shard (0 .. total-1) that probes `key_name`.

    Jump consistent hashing: a key depends on its own name only, so adding or removing keys
    moves no other key, and going from N to N+1 shards moves about 1/(N+1) of the keys, all of
    them onto the new shard.
    """
    if total < 1:
        raise ValueError(f"--shard.total={total} must be at least 1")
    return _jump_consistent_hash(_name_hash(key_name), total)


def ordinal_from_hostname(hostname: str) -> int | None:
    """The StatefulSet ordinal in a pod hostname (`openai-key-exporter-3` -> 3), else None."""
    short_name = hostname.strip().split(".", 1)[0].lower()
    match = _ORDINAL.match(short_name)
    if match is None:
        return None
    return int(match.group("ordinal"))


def resolve_shard(index: int | None, total: int, hostname: str) -> tuple[int, int]:
    """The (index, total) this process serves, from the flags or else from the pod hostname.

    Raises ValueError naming the flag and the fix when the flags are inconsistent or the
    index cannot be derived.
    """
    if total < 1:
        raise ValueError(
            f"--shard.total={total} must be at least 1 "
            "(set --shard.total to the number of replicas, or leave it at 1 to probe every key)"
        )
    if index is not None:
        if not 0 <= index < total:
            raise ValueError(
                f"--shard.index={index} is out of range for --shard.total={total} "
                f"(set --shard.index between 0 and {total - 1})"
            )
        return index, total
    if total == 1:
        return 0, 1
    ordinal = ordinal_from_hostname(hostname)
    if ordinal is None:
        raise ValueError(
            f"--shard.index is not set and hostname {hostname!r} has no StatefulSet ordinal "
            f"(set --shard.index to 0..{total - 1}, or run as a StatefulSet pod named NAME-0, "
            "NAME-1, ...)"
        )
    if ordinal >= total:
        raise ValueError(
            f"hostname {hostname!r} is replica {ordinal}, out of range for "
            f"--shard.total={total} (set --shard.total to the StatefulSet's replicas, "
            f"{ordinal + 1} or more)"
        )
    return ordinal, total
