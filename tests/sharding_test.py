"""Sharding: every key lands on exactly one replica, evenly, and resharding moves few keys."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from exporter.cli import shard_filter
from exporter.config import Config
from exporter.sharding import ordinal_from_hostname, resolve_shard, shard_for
from tests.support.key_config import key_config

KEY = key_config("")
NAMES = [f"team-{i % 37}/key-{i}" for i in range(10_000)]


@pytest.mark.parametrize("total", [1, 2, 3, 7, 16])
def test_every_key_has_exactly_one_shard(total: int) -> None:
    owners = {name: [i for i in range(total) if shard_for(name, total) == i] for name in NAMES}
    assert all(len(found) == 1 for found in owners.values())
    assert all(0 <= shard_for(name, total) < total for name in NAMES)


@pytest.mark.parametrize("total", [2, 3, 7, 16])
def test_keys_are_balanced(total: int) -> None:
    counts = Counter(shard_for(name, total) for name in NAMES)
    expected = len(NAMES) / total
    assert set(counts) == set(range(total))
    # 10,000 keys: a binomial count strays ~sqrt(expected) from the mean; 15% is generous.
    for shard, count in counts.items():
        assert abs(count - expected) < 0.15 * expected, (shard, count, expected)


@pytest.mark.parametrize("total", [1, 2, 3, 6, 15])
def test_adding_a_shard_moves_about_one_share(total: int) -> None:
    before = {name: shard_for(name, total) for name in NAMES}
    after = {name: shard_for(name, total + 1) for name in NAMES}
    moved = [name for name in NAMES if before[name] != after[name]]
    share = len(NAMES) / (total + 1)
    assert abs(len(moved) - share) < 0.15 * share
    # A key that moves goes to the new shard, never between old ones.
    assert all(after[name] == total for name in moved)


def test_adding_keys_moves_none() -> None:
    """Each replica's filter over a configuration, before and after keys are added among the
    others: every original key stays on the replica that had it."""
    original = NAMES[::2]  # the added keys fall between the original ones, not only at the end

    def served(names: list[str]) -> list[set[str]]:
        config = Config(keys=tuple(replace(KEY, name=name) for name in names), source="test")
        return [{key.name for key in shard_filter(index, 7)(config).keys} for index in range(7)]

    before, after = served(original), served(NAMES)
    assert all(before), "every replica holds some of the original keys"
    for index in range(7):
        assert before[index] == after[index] & set(original), index
    assert set().union(*after) == set(NAMES)


def test_assignment_is_stable_across_processes() -> None:
    # Pinned values: a change here reshuffles every deployed fleet, so it must be deliberate.
    assert [shard_for(f"key-{i}", 16) for i in range(8)] == [2, 14, 7, 0, 4, 7, 0, 2]


def test_shard_for_rejects_zero_total() -> None:
    with pytest.raises(ValueError, match=r"--shard\.total=0"):
        shard_for("key", 0)


@pytest.mark.parametrize(
    ("hostname", "ordinal"),
    [
        ("openai-key-exporter-0", 0),
        ("openai-key-exporter-3", 3),
        ("openai-key-exporter-12.openai-key-exporter.monitoring.svc.cluster.local", 12),
        ("web-1", 1),
        ("openai-key-exporter", None),
        ("openai-key-exporter-7d9f8b6c5-x2x9q", None),
        ("host-03", None),
        ("", None),
        ("-1", None),
    ],
)
def test_ordinal_from_hostname(hostname: str, ordinal: int | None) -> None:
    assert ordinal_from_hostname(hostname) == ordinal


def test_resolve_shard_prefers_the_flag() -> None:
    assert resolve_shard(2, 4, "openai-key-exporter-0") == (2, 4)


def test_resolve_shard_from_hostname() -> None:
    assert resolve_shard(None, 3, "openai-key-exporter-2") == (2, 3)


def test_resolve_shard_single_replica_needs_nothing() -> None:
    assert resolve_shard(None, 1, "laptop.local") == (0, 1)


@pytest.mark.parametrize(
    ("index", "total", "hostname", "message"),
    [
        (3, 3, "x", r"--shard.index=3 is out of range for --shard.total=3 .*between 0 and 2"),
        (-1, 3, "x", r"--shard.index=-1 is out of range"),
        (None, 0, "x-0", r"--shard.total=0 must be at least 1"),
        (None, 3, "laptop", r"--shard.index is not set and hostname 'laptop'.*set --shard.index"),
        (None, 3, "openai-key-exporter-3", r"replica 3, out of range for --shard.total=3"),
    ],
)
def test_resolve_shard_errors_name_the_flag_and_fix(
    index: int | None, total: int, hostname: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_shard(index, total, hostname)
