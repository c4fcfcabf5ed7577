"""The demo shows each case of the key inventory: revoked, mistyped, expiring, unwatched keys."""

from __future__ import annotations

import time
from pathlib import Path

from exporter.classify import Result
from exporter.demo import DEMO_UNMONITORED, fill_demo_organization, write_demo_config
from exporter.inventory import AdminResult
from exporter.service import Exporter
from exporter.simulator import start_simulator
from tests.support.metrics import Scrape


async def test_the_demo_shows_every_inventory_case(tmp_path: Path) -> None:
    async with await start_simulator() as simulator:
        fill_demo_organization(simulator.admin)
        exporter = Exporter(str(write_demo_config(tmp_path, simulator.base_url)))
        config = exporter.read_and_switch()
        try:
            assert await exporter.inventory.run_pass() is AdminResult.OK
            keys = {key.name: key for key in config.keys}
            revoked = await exporter.runner.run(keys["revoked"], "rest")
            mistyped = await exporter.runner.run(keys["mistyped"], "rest")
            body = exporter.renderer.render().decode()
        finally:
            await exporter.stop()
    assert revoked.result is Result.KEY_REVOKED
    assert mistyped.result is Result.INVALID_API_KEY
    assert "differs from the key OpenAI holds" in mistyped.message
    scrape = Scrape(body)
    assert scrape.value("openai_key_inventory_listed", key="revoked") == 0
    assert scrape.value("openai_key_inventory_listed", key="mistyped") == 1
    days = {
        name: ((scrape.value("openai_key_expires_timestamp_seconds", key=name) or 0) - time.time())
        / 86400
        for name in ("expires-this-week", "expires-tomorrow")
    }
    assert 1 < days["expires-this-week"] < 7  # OpenAIKeyExpiresSoon
    assert 0 < days["expires-tomorrow"] < 1  # OpenAIKeyExpiresImminent
    for project, unwatched in DEMO_UNMONITORED.items():
        assert scrape.value("openai_project_api_keys", project=project, monitored="false") == (
            unwatched
        )
