"""The GPT-Live probe inside the running exporter (real processes over loopback): its metrics,
the cost stated in the log at start, no key in any output, and a session in flight ended
with session.close when the exporter is stopped."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx

from exporter.simulator import key_id, make_key
from tests.harness import (
    assert_no_secret,
    start_exporter_process,
    start_simulator_process,
    write_config,
    write_key,
)
from tests.support.metrics import parse_metrics

LIVE = {"probes": ["rest", "live"], "live": {"model": "gpt-live-1", "interval": "2s"}}


def _sim_stats(base_url: str, key: str) -> dict[str, object]:
    stats = httpx.get(f"{base_url.removesuffix('/v1')}/_sim/stats", timeout=5).json()
    entry: dict[str, object] = stats["keys"].get(key_id(key), {})
    return entry


def test_live_probe_in_the_exporter(tmp_path: Path) -> None:
    simulator, base_url = start_simulator_process(tmp_path)
    keys = {
        "voice": make_key("ok", seed="live-voice"),
        "broke": make_key("insufficient_quota", seed="live-broke"),
        "in-band": make_key("live_key_in_band", seed="live-in-band"),
        "slow": make_key("slow", 6000, seed="live-slow"),
    }
    entries = [
        {"name": name, "api_key_file": str(write_key(tmp_path, name, key)), **LIVE}
        for name, key in keys.items()
    ]
    entries[-1]["timeout"] = "8s"
    entries[-1]["live"] = {"model": "gpt-live-1", "interval": "9s"}  # first run within 9 s
    entries[-1]["interval"] = "9s"
    config = write_config(tmp_path / "exporter.yml", base_url, entries, interval="2s")
    exporter = None
    try:
        exporter, url = start_exporter_process(config, tmp_path, wait_ready=False)
        deadline = time.monotonic() + 30
        while True:
            metrics = parse_metrics(httpx.get(f"{url}/metrics", timeout=5).text)
            done = (
                metrics.get('openai_probe_result{key="voice",probe="live",result="ok"}') == 1
                and metrics.get(
                    'openai_probe_result{key="broke",probe="live",result="insufficient_quota"}'
                )
                == 1
                and metrics.get(
                    'openai_probe_result{key="in-band",probe="live",result="invalid_api_key"}'
                )
                == 1
                and (_sim_stats(base_url, keys["slow"]).get("client_events") or {})
            )
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert done, metrics
        assert metrics['openai_live_close_code{key="voice"}'] == 1000
        assert metrics['openai_probe_billed_seconds_total{key="voice"}'] >= 1
        assert metrics['openai_probe_billed_seconds_total{key="broke"}'] == 0
        assert metrics['openai_live_close_code{key="in-band"}'] == 1008
        assert metrics['openai_model_listed{key="voice",model="gpt-live-1"}'] == 1
        assert 'openai_probe_success{key="voice",probe="realtime"}' not in metrics
        landing = httpx.get(f"{url}/", timeout=5).text
        assert 'data-probe="live"' in landing and "gpt-live-1: listed" in landing
        # The slow key's session is starting now (session.started after 6 s): stop the exporter.
        assert _sim_stats(base_url, keys["slow"])["client_events"] == {"session.start": 1}
        exporter.signal(signal.SIGTERM)
        assert exporter.popen is not None
        assert exporter.popen.wait(15) == 0
        assert _sim_stats(base_url, keys["slow"])["client_events"] == {
            "session.start": 1,
            "session.close": 1,
        }
        log = exporter.output()
        assert "the live probe starts billed GPT-Live sessions" in log
        assert "estimated_usd_per_month=" in log
        for where, text in (("metrics", "\n".join(metrics)), ("landing", landing), ("log", log)):
            assert_no_secret(text, list(keys.values()), where)
    finally:
        if exporter is not None:
            exporter.stop()
        simulator.stop()
