"""Both probes by default, everywhere a new user starts: quick mode and every shipped config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.config import DEFAULT_REALTIME_MODEL, config_from_environment
from tests.harness import REPO

# What OpenAI has scheduled for shutdown (reference facts, "Models and their shutdown dates").
SCHEDULED_FOR_SHUTDOWN = {"gpt-realtime", "gpt-4o-realtime-preview"}


def _configmap_config() -> dict[str, Any]:
    configmap = yaml.safe_load((REPO / "deploy/kubernetes/base/configmap.yaml").read_text())
    config: dict[str, Any] = yaml.safe_load(configmap["data"]["config.yml"])
    return config


SHIPPED: dict[str, Any] = {
    "examples/config.yml": lambda: yaml.safe_load((REPO / "examples/config.yml").read_text()),
    "deploy/compose/exporter.yml": lambda: yaml.safe_load(
        (REPO / "deploy/compose/exporter.yml").read_text()
    ),
    "deploy/compose/demo/exporter.yml": lambda: yaml.safe_load(
        (REPO / "deploy/compose/demo/exporter.yml").read_text()
    ),
    "deploy/kubernetes/base/configmap.yaml": _configmap_config,
}


def test_quick_mode_probes_rest_and_realtime_with_a_model_not_scheduled_for_shutdown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "unused")
    (key,) = config_from_environment().keys
    assert key.probes == ("rest", "realtime")
    assert key.realtime.model == DEFAULT_REALTIME_MODEL == "gpt-realtime-2.1"
    assert key.realtime.model not in SCHEDULED_FOR_SHUTDOWN


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_every_shipped_config_probes_realtime(name: str) -> None:
    config = SHIPPED[name]()
    probes = config["defaults"]["probes"]
    assert probes[:2] == ["rest", "realtime"], f"{name}: {probes}"
    for key in config["keys"]:
        assert "realtime" in key.get("probes", probes), f"{name}: {key['name']}"
    model = config["defaults"].get("realtime", {}).get("model", DEFAULT_REALTIME_MODEL)
    assert model not in SCHEDULED_FOR_SHUTDOWN, f"{name}: {model}"


def test_readme_says_how_to_turn_realtime_off_and_to_set_the_model() -> None:
    readme = (REPO / "README.md").read_text()
    assert "turns it off with `probes: [rest]`" in readme
    assert "set\n`realtime.model` to the model your application really uses" in readme
    for name in ("examples/config.yml", "deploy/compose/exporter.yml"):
        assert "set the model your application really opens sessions with" in (
            Path(REPO / name).read_text()
        )
