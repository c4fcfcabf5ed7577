"""The status page with an admin key: a line on the key inventory (how many keys, when the list
was taken, a failed pass said as such) and, in each key's cell, what the list says of the key;
the last good list stays quoted after a failed pass. No admin key, no inventory text."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from exporter.simulator import make_key
from tests.harness import assert_no_secret, start_exporter_process
from tests.support import admin
from tests.support.exporter_process import reload_config, stop_cleanly
from tests.support.metrics import scrape
from tests.support.waiting import wait_until

ADMIN_KEY = "sk-admin-" + "StatusAdmin7" * 11


def _key_cell(page: str, name: str) -> str:
    """The key cell of the first row of key `name`."""
    row = re.search(rf'<tr [^>]*data-key="{name}"[^>]*>(.*?)</tr>', page, re.S)
    assert row is not None, f"no row for {name}"
    cell = re.search(r'<td class="key">(.*?)</td>', row.group(1), re.S)
    assert cell is not None
    return cell.group(1)


def test_the_status_page_quotes_the_inventory(simulator: str, tmp_path: Path) -> None:
    keys = {
        "listed": make_key("ok", seed="status-listed"),
        "deleted": make_key("invalid_api_key", seed="status-deleted"),
    }
    admin.list_in_organization(simulator, "proj_status", keys["listed"])
    admin.list_in_organization(simulator, "proj_status", make_key("ok", seed="status-unwatched"))
    config = reload_config(tmp_path, simulator, keys)
    plain, plain_url = start_exporter_process(config, tmp_path)
    try:
        wait_until(lambda: scrape(plain_url).result("listed", "rest") == "ok", 20, "a probe")
        without = httpx.get(plain_url).text
    finally:
        stop_cleanly(plain)
    assert 'id="inventory"' not in without and "inventory:" not in without

    admin_file = admin.write_admin_key(tmp_path / "admin.key", ADMIN_KEY)
    admin.add_admin_block(config, admin_file, simulator)
    exporter, url = start_exporter_process(config, tmp_path)
    try:
        admin.wait_for_revoked(url, exporter)
        page = httpx.get(url).text
        summary = re.search(r'<p class="inventory" id="inventory">(.*?)</p>', page, re.S)
        assert summary is not None
        assert "Key inventory (Admin API): 2 keys listed in 1 project, taken " in summary.group(1)
        assert "failed" not in summary.group(1)
        listed = _key_cell(page, "listed")
        assert f"inventory: listed in proj_status as {keys['listed'][:8]}..." in listed
        assert "owner " in listed
        deleted = _key_cell(page, "deleted")
        assert "inventory: not listed in the organization&#x27;s key list" in deleted

        # A rejected admin key: the pass fails, the page says so and still quotes the last list.
        bad_admin = admin.reject_admin_key(admin_file, url, exporter, seed="status-bad")
        failed = httpx.get(url).text
    finally:
        stop_cleanly(exporter)
    summary = re.search(r'<p class="inventory" id="inventory">(.*?)</p>', failed, re.S)
    assert summary is not None
    assert "The last pass failed (invalid_admin_key" in summary.group(1)
    assert "The rows quote the last list taken." in summary.group(1)
    assert "inventory: listed in proj_status as" in _key_cell(failed, "listed")
    for where, text in {"the page": page, "the page after a failed pass": failed}.items():
        assert_no_secret(text, [ADMIN_KEY, bad_admin, *keys.values()], where)
