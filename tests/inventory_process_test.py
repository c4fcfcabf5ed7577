"""The exporter process with an admin key: passes on their own schedule, a reload that changes
the admin key, and neither the admin key nor a monitored key in any output."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import yaml

from exporter.simulator import make_key
from tests.harness import assert_no_secret, start_exporter_process
from tests.support import admin
from tests.support.exporter_process import reload_config, stop_cleanly
from tests.support.metrics import scrape
from tests.support.waiting import wait_until

ADMIN_KEY = "sk-admin-" + "ProcessAdmin7" * 11


def test_admin_key_passes_reload_and_secrecy(simulator: str, tmp_path: Path) -> None:
    keys = {
        "listed": make_key("ok", seed="process-listed"),
        "deleted": make_key("invalid_api_key", seed="process-deleted"),
    }
    admin.list_in_organization(simulator, "proj_process", keys["listed"])
    config = reload_config(tmp_path, simulator, keys)
    admin_file = admin.write_admin_key(tmp_path / "admin.key", ADMIN_KEY)
    admin.add_admin_block(config, admin_file, simulator)
    exporter, url = start_exporter_process(config, tmp_path, "--log.level", "debug")
    try:
        admin.wait_for_revoked(url, exporter)
        first = scrape(url)
        assert first.value("openai_admin_probe_success") == 1
        assert first.value("openai_key_inventory_listed", key="listed") == 1
        # Another admin key, rejected: the next pass fails and keeps the last good inventory.
        bad_admin = admin.reject_admin_key(admin_file, url, exporter, seed="process-bad")
        failed = scrape(url)
        assert failed.value("openai_admin_probe_result", result="invalid_admin_key") == 1
        assert failed.value("openai_key_inventory_listed", key="listed") == 1
        # A reload that drops the admin block: nothing of the inventory is published any more.
        document = yaml.safe_load(config.read_text())
        del document["admin"]
        config.write_text(yaml.safe_dump(document))
        exporter.signal(signal.SIGHUP)
        wait_until(
            lambda: scrape(url).value("openai_admin_probe_success") is None,
            20,
            "the inventory to go with its admin block",
            log=exporter,
        )
        outputs = {"/metrics": scrape(url).text, "the landing page": httpx.get(url).text}
    finally:
        stop_cleanly(exporter)
    outputs["the log"] = exporter.output()
    assert "key inventory taken" in outputs["the log"]
    assert "key inventory failed; keeping the last good one" in outputs["the log"]
    for where, text in outputs.items():
        assert_no_secret(text, [ADMIN_KEY, bad_admin, *keys.values()], where)
