"""Matching monitored keys to inventory entries by the head and tail OpenAI shows."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from exporter.config import parse_config
from exporter.inventory import (
    AdminResult,
    InventoryIndex,
    KeyEntry,
    KeyInventory,
    _owner,
    match_keys,
    parse_redacted,
    render_inventory,
)

KEY = "sk-proj-" + "Ab3dE" * 30 + "MxYA"


def _entry(redacted: str, project: str = "proj_a", entry_id: str = "key_1") -> KeyEntry:
    head, tail = parse_redacted(redacted) or ("", "")
    return KeyEntry(project, entry_id, head, tail, redacted, 1.0, None, "user", "ann")


@pytest.mark.parametrize(
    ("redacted", "expected"),
    [
        ("sk-abc...def", ("sk-abc", "def")),  # the documentation's example
        ("sk-proj-****…MxYA", ("sk-proj-", "MxYA")),
        ("sk-WRQsP****…xQBt", ("sk-WRQsP", "xQBt")),
        ("sk-proj-...sQoA", ("sk-proj-", "sQoA")),
        ("sk-proj-abcdef", None),  # nothing hidden
        ("...abcd", None),  # no head
        ("sk-proj-***", None),  # no tail
        (None, None),
        (42, None),
    ],
)
def test_redacted_values_are_split_whatever_hides_the_middle(
    redacted: object, expected: tuple[str, str] | None
) -> None:
    assert parse_redacted(redacted) == expected


@pytest.mark.parametrize(
    "redacted", ["sk-proj-...MxYA", "sk-proj-****…MxYA", "sk-proj-A...xYA", "sk-...A"]
)
def test_a_key_matches_every_form_of_its_own_redaction(redacted: str) -> None:
    index = InventoryIndex.build([_entry(redacted)])
    assert [entry.id for entry in index.matches(KEY, None)] == ["key_1"]


def test_a_key_with_another_tail_or_head_matches_nothing() -> None:
    index = InventoryIndex.build([_entry("sk-proj-...MxYB"), _entry("sk-svcac...MxYA")])
    assert index.matches(KEY, None) == []


def test_a_configured_project_limits_the_match() -> None:
    index = InventoryIndex.build(
        [_entry("sk-proj-...MxYA", "proj_a", "key_a"), _entry("sk-proj-...MxYA", "proj_b", "key_b")]
    )
    assert [entry.id for entry in index.matches(KEY, "proj_b")] == ["key_b"]
    # Without a project both match: reported as two matches, never guessed.
    assert sorted(entry.id for entry in index.matches(KEY, None)) == ["key_a", "key_b"]


def test_matching_is_a_lookup_per_redaction_form_not_a_scan() -> None:
    """10,000 entries in one form make one bucket of forms: a key costs one dictionary get."""
    entries = [_entry(f"sk-proj-...{n:04d}", entry_id=f"key_{n}") for n in range(10_000)]
    index = InventoryIndex.build(entries)
    assert list(index.by_form) == [(8, 4)]
    assert [entry.id for entry in index.matches("sk-proj-" + "x" * 150 + "0042", None)] == [
        "key_42"
    ]


def test_a_key_no_longer_than_the_visible_parts_matches_nothing() -> None:
    index = InventoryIndex.build([_entry("sk-proj-...MxYA")])
    assert index.matches("sk-proj-MxYA", None) == []


@pytest.mark.parametrize(
    ("owner", "expected"),
    [
        ({"type": "user", "user": {"name": "Ann", "email": "ann@example.com"}}, ("user", "Ann")),
        (
            {"type": "service_account", "service_account": {"name": "bot"}},
            ("service_account", "bot"),
        ),
        ({"type": "service_account", "name": "flat"}, ("service_account", "flat")),  # unconfirmed
        ({"type": "robot", "robot": {"name": "r"}}, ("other", "r")),
        ({"type": "user", "user": {"name": "n" * 500}}, ("user", "n" * 64)),
        ({"type": "user", "user": {"name": "sk-proj-" + "A" * 60}}, ("user", "sk-proj-...AAAA")),
        (None, ("other", "")),
    ],
)
def test_owner_labels_are_bounded(owner: object, expected: tuple[str, str]) -> None:
    assert _owner(owner) == expected


def test_a_key_not_read_is_not_called_unlisted(tmp_path: Path) -> None:
    """No value read (an unset variable, an empty file): no head and tail to look for, so no
    `openai_key_inventory_listed` 0 (an alert would call the key deleted) and `describe` says
    it was not checked; a key that was read and is missing from the list is still unlisted."""
    empty = tmp_path / "empty.key"
    empty.write_text("\n")
    other = tmp_path / "other.key"
    other.write_text("sk-proj-" + "Zz9yX" * 30 + "QQQQ\n")
    config = parse_config(
        yaml.safe_dump(
            {
                "keys": [
                    {"name": "unset", "api_key_env": "OPENAI_TEST_VARIABLE_NEVER_SET"},
                    {"name": "empty", "api_key_file": str(empty)},
                    {"name": "other", "api_key_file": str(other)},
                ],
                "admin": {"api_key_env": "OPENAI_TEST_ADMIN_NEVER_SET"},
            }
        ),
        "c.yml",
    )
    inventory = KeyInventory()
    inventory.apply(config)
    inventory.state.index = InventoryIndex.build([_entry("sk-proj-...MxYA")])
    inventory.state.result = AdminResult.OK
    inventory.state.matches = match_keys(inventory.state.index, config.keys)
    assert set(inventory.state.matches) == {"other"}
    text = render_inventory(inventory.state, config).decode()
    assert 'openai_key_inventory_listed{key="other"} 0' in text
    assert 'key="unset"' not in text and 'key="empty"' not in text
    for name in ("unset", "empty"):
        assert inventory.describe(name) == "not checked: no key could be read from its source"
    assert (inventory.describe("other") or "").startswith("not listed in the organization's")
