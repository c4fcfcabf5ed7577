"""The demo shows Azure OpenAI keys beside OpenAI ones: the real `demo` command, scraped."""

from __future__ import annotations

from pathlib import Path

from tests.harness import Process, exporter_command, free_port, wait_http
from tests.support.exporter_process import stop_cleanly
from tests.support.metrics import scrape

AZURE_DEMO_RESULTS = {
    ("azure-voice", "rest"): "ok",
    ("azure-voice", "realtime"): "ok",
    ("azure-rotated", "rest"): "invalid_api_key",
    ("azure-rotated", "realtime"): "invalid_api_key",
    ("azure-no-realtime", "rest"): "ok",
    ("azure-no-realtime", "realtime"): "model_not_found",
}


def test_demo_shows_azure_keys(tmp_path: Path) -> None:
    port = free_port()
    demo = Process(
        exporter_command("demo", "--web.listen-address", f"127.0.0.1:{port}"),
        tmp_path / "demo.log",
    ).start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/-/ready", timeout=60, process=demo)
        metrics = scrape(url)
        results = {pair: metrics.result(*pair) for pair in AZURE_DEMO_RESULTS}
        assert results == AZURE_DEMO_RESULTS
        (info,) = metrics.find("openai_key_info", key="azure-voice")
        assert (info.labels["provider"], info.labels["kind"]) == ("azure", "azure")
        (prod,) = metrics.find("openai_key_info", key="prod")
        assert prod.labels["provider"] == "openai"
    finally:
        stop_cleanly(demo)
