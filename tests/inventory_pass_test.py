"""Inventory passes against the simulator's Admin API over real sockets: paging, 429, admin-key
errors, the last good inventory kept, and what it says about rejected keys."""

from __future__ import annotations

import asyncio
import math
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from exporter.classify import Result
from exporter.config import Config, parse_config
from exporter.inventory import AdminResult, KeyInventory
from exporter.service import Exporter
from exporter.simulator import RunningSimulator, make_key
from exporter.simulator.admin import redacted_form
from tests.conftest import require_tool
from tests.support.metrics import Scrape
from tests.support.simulator import simulator

__all__ = ["simulator"]  # a fixture from tests/support

ADMIN_KEY = "sk-admin-" + "Q7adminKEYbody" * 9 + "Zz9"


def _write_config(
    tmp_path: Path, base_url: str, keys: dict[str, str], admin: dict[str, object]
) -> Path:
    entries = []
    for name, key in keys.items():
        key_file = tmp_path / f"{name}.key"
        key_file.write_text(key + "\n")
        key_file.chmod(0o600)
        entries.append({"name": name, "api_key_file": str(key_file)})
    admin_file = tmp_path / "admin.key"
    if not admin_file.exists():
        admin_file.write_text(ADMIN_KEY + "\n")
        admin_file.chmod(0o600)
    document = {
        "defaults": {"base_url": base_url, "probes": ["rest"]},
        "keys": entries,
        "admin": {"api_key_file": str(admin_file), "base_url": base_url, **admin},
    }
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(document))
    return path


def _config(tmp_path: Path, base_url: str, keys: dict[str, str], **admin: object) -> Config:
    path = _write_config(tmp_path, base_url, keys or {"web": make_key("ok", seed="web")}, admin)
    return parse_config(path.read_text(), str(path))


async def test_a_pass_follows_every_page_with_the_fewest_requests(
    tmp_path: Path, simulator: RunningSimulator
) -> None:
    """Requests per pass: 1 projects page, then ceil(keys / 100) pages per project. At 10,000
    keys in 50 projects that is 1 + 50 x 2 = 101 requests per interval, whatever the keys."""
    sizes = {"proj_a": 250, "proj_b": 100, "proj_c": 1}
    monitored = {}
    for project, size in sizes.items():
        for n in range(size):
            key = make_key("ok", seed=f"{project}-{n}")
            simulator.admin.add_key(project, key)
            if n in (0, size - 1):
                monitored[f"{project}-{n}"] = key
    inventory = KeyInventory()
    inventory.apply(_config(tmp_path, simulator.base_url, monitored))
    assert await inventory.run_pass() is AdminResult.OK
    expected = 1 + sum(math.ceil(size / 100) for size in sizes.values())
    assert simulator.admin.requests == expected == 6
    assert inventory.state.index is not None
    assert len(inventory.state.index.entries) == 351
    assert all(match.listed for match in inventory.state.matches.values())
    scrape = Scrape(inventory.exposition().decode())
    assert scrape.value("openai_admin_requests_total") == expected
    assert scrape.value("openai_project_api_keys", project="proj_a", monitored="true") == 2
    assert scrape.value("openai_project_api_keys", project="proj_a", monitored="false") == 248
    assert scrape.value("openai_project_api_keys", project="proj_c", monitored="true") == 1
    assert scrape.value("openai_project_api_keys", project="proj_c", monitored="false") == 0


async def test_named_projects_are_not_listed(tmp_path: Path, simulator: RunningSimulator) -> None:
    simulator.admin.add_key("proj_a", make_key("ok", seed="a"))
    simulator.admin.add_key("proj_b", make_key("ok", seed="b"))
    inventory = KeyInventory()
    inventory.apply(_config(tmp_path, simulator.base_url, {}, projects=["proj_b"]))
    assert await inventory.run_pass() is AdminResult.OK
    assert simulator.admin.requests == 1  # proj_b's keys only
    assert inventory.state.index is not None
    assert [entry.project for entry in inventory.state.index.entries] == ["proj_b"]


async def test_a_429_waits_what_retry_after_asks_then_goes_on(
    tmp_path: Path, simulator: RunningSimulator
) -> None:
    simulator.admin.add_key("proj_a", make_key("ok", seed="a"))
    simulator.admin.rate_limit_next, simulator.admin.retry_after = 1, "1"
    inventory = KeyInventory()
    inventory.apply(_config(tmp_path, simulator.base_url, {}))
    started = time.monotonic()
    assert await inventory.run_pass() is AdminResult.OK
    assert time.monotonic() - started >= 1.0
    assert simulator.admin.requests == 3  # the refused one, then projects and keys


async def test_a_429_with_no_end_fails_the_pass_as_rate_limited(
    tmp_path: Path, simulator: RunningSimulator
) -> None:
    simulator.admin.rate_limit_next, simulator.admin.retry_after = 100, "0"
    inventory = KeyInventory()
    inventory.apply(_config(tmp_path, simulator.base_url, {}))
    assert await inventory.run_pass() is AdminResult.RATE_LIMITED
    assert simulator.admin.requests == 4  # bounded: three waits, then the next pass


async def test_a_failed_pass_keeps_the_last_good_inventory(
    tmp_path: Path, simulator: RunningSimulator
) -> None:
    key = make_key("ok", seed="kept")
    simulator.admin.add_key("proj_a", key, expires_at=1_900_000_000)
    inventory = KeyInventory()
    inventory.apply(_config(tmp_path, simulator.base_url, {"web": key}))
    assert await inventory.run_pass() is AdminResult.OK
    good_at = inventory.state.taken_at
    (tmp_path / "admin.key").write_text(make_key("invalid_api_key", prefix="sk-admin-") + "\n")
    assert await inventory.run_pass() is AdminResult.INVALID_ADMIN_KEY
    scrape = Scrape(inventory.exposition().decode())
    assert scrape.value("openai_admin_probe_success") == 0
    assert scrape.value("openai_admin_probe_result", result="invalid_admin_key") == 1
    assert scrape.value("openai_admin_last_success_timestamp_seconds") == round(good_at or 0, 3)
    assert scrape.value("openai_key_inventory_listed", key="web") == 1
    assert scrape.value("openai_key_expires_timestamp_seconds", key="web") == 1_900_000_000


@pytest.mark.parametrize(
    ("admin_key", "expected", "requests"),
    [
        # A project key is never sent to the admin endpoints: its prefix says it cannot list.
        (make_key("ok", seed="project"), AdminResult.NOT_ADMIN_KEY, 0),
        (make_key("invalid_api_key", prefix="sk-admin-"), AdminResult.INVALID_ADMIN_KEY, 0),
        ("", AdminResult.KEY_MISSING, 0),
    ],
)
async def test_admin_key_problems_are_named(
    tmp_path: Path,
    simulator: RunningSimulator,
    admin_key: str,
    expected: AdminResult,
    requests: int,
) -> None:
    (tmp_path / "admin.key").write_text(admin_key)
    inventory = KeyInventory()
    inventory.apply(_config(tmp_path, simulator.base_url, {}))
    assert await inventory.run_pass() is expected
    assert simulator.admin.requests == requests  # the simulator counts only accepted keys
    assert admin_key[9:40] not in inventory.state.message or not admin_key


async def test_an_under_privileged_key_without_the_admin_prefix_is_named(
    tmp_path: Path, simulator: RunningSimulator
) -> None:
    """A key of no known prefix is sent (a proxy's may differ); a `Missing scopes` answer
    names it as under-privileged."""
    (tmp_path / "admin.key").write_text("proxy-" + "k" * 50)
    inventory = KeyInventory()
    inventory.apply(_config(tmp_path, simulator.base_url, {}))
    assert await inventory.run_pass() is AdminResult.INSUFFICIENT_PERMISSIONS


async def test_a_rejected_key_is_revoked_or_mistyped_by_the_inventory(
    tmp_path: Path, simulator: RunningSimulator
) -> None:
    """Through the exporter's own runner: the probe's rejection, read against the inventory."""
    listed = make_key("ok", seed="listed")
    mistyped = make_key("invalid_api_key", seed="mistyped")
    deleted = make_key("invalid_api_key", seed="deleted")
    simulator.admin.add_key("proj_a", listed, expires_at=1_900_000_000, owner_name="web-bot")
    # The key OpenAI holds: the same head and tail as the value in the source, another middle.
    simulator.admin.add_key(
        "proj_a", mistyped, redacted_value=redacted_form(mistyped, 6, 3, "****…")
    )
    gone = simulator.admin.add_key("proj_a", deleted)
    simulator.admin.remove_key("proj_a", gone)
    keys = {"listed": listed, "mistyped": mistyped, "deleted": deleted}
    path = _write_config(tmp_path, simulator.base_url, keys, {})
    exporter = Exporter(str(path))
    config = exporter.read_and_switch()
    try:
        by_name = {key.name: key for key in config.keys}
        # Before any pass: nothing is known, nothing changes.
        before = await exporter.runner.run(by_name["deleted"], "rest")
        assert before.result is Result.INVALID_API_KEY
        assert await exporter.inventory.run_pass() is AdminResult.OK
        results = {name: await exporter.runner.run(key, "rest") for name, key in by_name.items()}
        assert results["listed"].result is Result.OK
        assert results["deleted"].result is Result.KEY_REVOKED
        assert "no longer holds it" in results["deleted"].message
        assert results["mistyped"].result is Result.INVALID_API_KEY
        assert "differs from the key OpenAI holds" in results["mistyped"].message
        body = exporter.renderer.render().decode()
    finally:
        await exporter.stop()
    scrape = Scrape(body)
    assert scrape.value("openai_key_inventory_listed", key="listed") == 1
    assert scrape.value("openai_key_inventory_listed", key="mistyped") == 1
    assert scrape.value("openai_key_inventory_listed", key="deleted") == 0
    assert scrape.value("openai_key_expires_timestamp_seconds", key="listed") == 1_900_000_000
    assert scrape.value("openai_key_created_timestamp_seconds", key="listed") is not None
    assert scrape.value(
        "openai_key_owner_info", key="listed", owner_type="service_account", owner="web-bot"
    )
    assert scrape.result("deleted", "rest") == "key_revoked"
    for secret in (ADMIN_KEY, *keys.values()):
        assert secret[12:40] not in body
    promtool = require_tool("promtool")
    checked = await asyncio.to_thread(
        subprocess.run,
        [promtool, "check", "metrics"],
        input=body,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0 and not checked.stdout.strip(), checked.stdout + checked.stderr


async def test_two_matching_entries_are_reported_not_guessed(
    tmp_path: Path, simulator: RunningSimulator
) -> None:
    key = make_key("ok", seed="twin")
    simulator.admin.add_key("proj_a", key, expires_at=1_900_000_000)
    simulator.admin.add_key("proj_b", key, expires_at=1_800_000_000)
    inventory = KeyInventory()
    inventory.apply(_config(tmp_path, simulator.base_url, {"twin": key}))
    assert await inventory.run_pass() is AdminResult.OK
    scrape = Scrape(inventory.exposition().decode())
    assert scrape.value("openai_key_inventory_matches", key="twin") == 2
    assert scrape.value("openai_key_inventory_listed", key="twin") == 1
    assert scrape.value("openai_key_expires_timestamp_seconds", key="twin") is None
