"""The demo shows Azure OpenAI keys beside OpenAI ones: the real `demo` command, scraped."""

from __future__ import annotations

from pathlib import Path

from tests.support.demo import AZURE_DEMO_RESULTS, results_shown, running_demo
from tests.support.metrics import scrape


def test_demo_shows_azure_keys(tmp_path: Path) -> None:
    with running_demo(tmp_path) as (_, url):
        metrics = scrape(url)
        assert results_shown(metrics, AZURE_DEMO_RESULTS) == AZURE_DEMO_RESULTS
        (info,) = metrics.find("openai_key_info", key="azure-voice")
        assert (info.labels["provider"], info.labels["kind"]) == ("azure", "azure")
        (prod,) = metrics.find("openai_key_info", key="prod")
        assert prod.labels["provider"] == "openai"
