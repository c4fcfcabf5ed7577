"""`check` with an admin key: the inventory's facts for each key, and a rejected key named
revoked or mistyped. Without an admin key its output does not change (tests/check_test.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import yaml

from exporter.check import check_keys, render_json, render_text
from exporter.config import parse_config
from exporter.links import DEFAULT_LINKS
from exporter.simulator import RunningSimulator, make_key
from tests.harness import assert_no_secret
from tests.support.simulator import simulator

__all__ = ["simulator"]  # a fixture from tests/support

ADMIN_KEY = "sk-admin-" + "Check7admin" * 12


def _config_text(tmp_path: Path, base_url: str, keys: dict[str, str], admin_key: str) -> str:
    entries = []
    for name, key in [*keys.items(), ("admin", admin_key)]:
        path = tmp_path / f"{name}.key"
        path.write_text(key + "\n")
        path.chmod(0o600)
        if name != "admin":
            entries.append({"name": name, "api_key_file": str(path)})
    return yaml.safe_dump(
        {
            "defaults": {"base_url": base_url, "probes": ["rest"]},
            "keys": entries,
            "admin": {"api_key_file": str(tmp_path / "admin.key"), "base_url": base_url},
        }
    )


async def test_check_prints_the_inventory_facts_of_each_key(
    tmp_path: Path, simulator: RunningSimulator
) -> None:
    expires = int(time.time()) + 3 * 86400
    keys = {
        "web": make_key("ok", seed="check-web"),
        "typo": make_key("invalid_api_key", seed="check-typo"),
        "gone": make_key("invalid_api_key", seed="check-gone"),
    }
    simulator.admin.add_key("proj_a", keys["web"], expires_at=expires, owner_name="web-bot")
    simulator.admin.add_key("proj_a", keys["typo"])
    simulator.admin.add_key("proj_b", make_key("ok", seed="nobody-watches"))
    config = parse_config(_config_text(tmp_path, simulator.base_url, keys, ADMIN_KEY), "c.yml")
    reports = await check_keys(config)
    text = render_text(reports, colour=False)
    blocks = {report.name: report for report in reports}
    assert blocks["web"].inventory is not None
    assert blocks["web"].inventory.startswith(f"listed in proj_a as {keys['web'][:8]}...")
    assert "(3.0 days left), owner service_account web-bot" in blocks["web"].inventory
    assert blocks["gone"].probes["rest"].result == "key_revoked"
    assert "not listed in the organization's key list" in (blocks["gone"].inventory or "")
    assert blocks["typo"].probes["rest"].result == "invalid_api_key"
    assert "differs from the key OpenAI holds" in blocks["typo"].probes["rest"].message
    assert "result: key_revoked (OpenAI rejected the key and the organization no longer" in text
    assert f"read: {DEFAULT_LINKS.runbook('key-revoked')}" in text
    assert "  inventory: listed in proj_a as" in text
    document = json.loads(render_json(reports))
    assert [key["inventory"] is not None for key in document["keys"]] == [True, True, True]
    assert_no_secret(text + render_json(reports), [ADMIN_KEY, *keys.values()], "check output")


async def test_a_failed_inventory_is_not_checked_and_changes_no_result(
    tmp_path: Path, simulator: RunningSimulator
) -> None:
    keys = {"gone": make_key("invalid_api_key", seed="check-gone-2")}
    bad_admin = make_key("invalid_api_key", prefix="sk-admin-", seed="bad-admin")
    config = parse_config(_config_text(tmp_path, simulator.base_url, keys, bad_admin), "c.yml")
    (report,) = await check_keys(config)
    assert report.probes["rest"].result == "invalid_api_key"  # no fresh list: nothing claimed
    assert report.inventory is not None
    assert report.inventory.startswith("not checked: the key inventory failed (invalid_admin_key")
    assert_no_secret(render_text([report], colour=False), [bad_admin], "check output")
