"""No key, or piece of one, in any output of the exporter process, for every prefix and log
format."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from exporter.simulator import make_key
from tests.harness import (
    assert_no_secret,
    start_exporter_process,
)
from tests.support.exporter_process import (
    PREFIXES,
    reload_config,
    stop_cleanly,
    wait_for_a_second_round,
)

# --- secrecy across every prefix and log format ---------------------------------------------------


@pytest.mark.parametrize("log_format", ["logfmt", "json"])
def test_no_key_or_piece_of_one_in_any_output(
    simulator: str, tmp_path: Path, log_format: str
) -> None:
    scenarios = ("ok", "invalid_api_key", "server_error", "rt_unknown_close", "non_json")
    keys: dict[str, str] = {}
    for prefix in PREFIXES:
        short = prefix.strip("-").replace("-", "_")
        for scenario in scenarios:
            keys[f"{short}.{scenario}"] = make_key(scenario, prefix=prefix, seed=log_format)
        base = make_key("ok", prefix=prefix, seed=f"{log_format}-variants")
        keys[f"{short}.inner-cr"] = base[:30] + "\r" + base[30:]
        keys[f"{short}.quoted"] = f'"{base}"'
        keys[f"{short}.trailing-space"] = base + " "
    config = reload_config(tmp_path, simulator, keys)
    exporter, url = start_exporter_process(
        config, tmp_path, "--log.level", "debug", "--log.format", log_format
    )
    try:
        # A second round, so the debug lines for unchanged results are logged.
        outputs = {
            "/metrics": wait_for_a_second_round(url, 2 * len(keys)).text,
            "the landing page": httpx.get(f"{url}/", timeout=5).text,
        }
    finally:
        stop_cleanly(exporter)
    outputs["the log"] = exporter.output()
    assert "debug" in outputs["the log"]
    for where, text in outputs.items():
        assert_no_secret(text, list(keys.values()), where)
