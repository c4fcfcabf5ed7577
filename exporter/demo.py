"""`openai-key-exporter demo`: the exporter against the bundled simulator, with keys that show
each kind of failure, so /metrics, the landing page and the alerts have something to say."""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from pathlib import Path

import yaml

from exporter.config import ConfigError
from exporter.links import Links, default_external_url
from exporter.service import Exporter
from exporter.serving import serve_until_stopped
from exporter.simulator import make_key, start_simulator
from exporter.simulator.admin import AdminDirectory
from exporter.simulator.azure import make_azure_key

log = logging.getLogger("exporter.demo")

# name -> (scenario, extra settings); each key's file holds a fake key selecting the scenario.
_LIVE: dict[str, object] = {
    "probes": ["rest", "realtime", "live"],
    "live": {"model": "gpt-live-1", "interval": "30s"},
}
DEMO_KEYS: dict[str, tuple[str, dict[str, object]]] = {
    # Watches, beside gpt-realtime (shuts down 2027-01-20), a preview that is already gone.
    "prod": ("ok", {"models": ["gpt-realtime-2.1", "gpt-4o-realtime-preview-2024-12-17"]}),
    "voice-live": ("ok", _LIVE),  # the opt-in GPT-Live probe (billed on the real API)
    "live-no-credit": ("insufficient_quota", _LIVE),
    "voice-agent-beta": ("ok", {"realtime": {"api": "beta", "interval": "30s"}}),
    "revoked": ("invalid_api_key", {}),
    "restricted": ("missing_scopes", {}),
    "realtime-denied": ("rt_forbidden", {}),
    # Only a billed call sees credit: this key shows it through the opt-in inference probe.
    "no-credit": ("insufficient_quota", {"probes": ["rest", "realtime", "inference"]}),
    "paid": ("ok", {"probes": ["rest", "realtime", "inference"]}),
    "throttled": ("rate_limited", {}),
    "flaky-upstream": ("server_error", {}),
    # The key inventory (admin key): a key whose value in its source is a wrong copy of a
    # listed key, and two keys that expire soon; `revoked` above is listed nowhere.
    "mistyped": ("invalid_api_key", {}),
    "expires-this-week": ("ok", {}),
    "expires-tomorrow": ("ok", {}),
}
# How the demo organization lists each key (exporter/simulator/admin.py): (project, days to
# its expiry or None); a key absent here is deleted (key_revoked when OpenAI rejects it).
DEMO_INVENTORY: dict[str, tuple[str, float | None]] = {
    "prod": ("proj_voice", None),
    "voice-live": ("proj_voice", 90.0),
    "mistyped": ("proj_voice", None),
    "expires-this-week": ("proj_voice", 5.0),
    "expires-tomorrow": ("proj_voice", 0.5),
    "paid": ("proj_batch", None),
}
DEMO_UNMONITORED = {"proj_voice": 2, "proj_batch": 3}  # keys nobody watches, per project


def write_demo_config(directory: Path, base_url: str) -> Path:
    keys: list[dict[str, object]] = []
    for name, (scenario, extra) in DEMO_KEYS.items():
        key_file = directory / f"{name}.key"
        key_file.write_text(make_key(scenario, seed=name) + "\n")
        key_file.chmod(0o600)
        keys.append({"name": name, "api_key_file": str(key_file), **extra})
    # The outage this project was born from: a .env line a naive parser reads with its quotes.
    dotenv = directory / "websocket-server.env"
    dotenv.write_text(f'OPENAI_API_KEY = "{make_key("ok", seed="dotenv")}"\n')
    dotenv.chmod(0o600)
    keys.append({"name": "dotenv-quoted", "dotenv": str(dotenv), "dotenv_format": "literal"})
    keys.append({"name": "missing", "api_key_env": "OPENAI_DEMO_KEY_THAT_IS_NOT_SET"})
    keys.extend(_azure_keys(directory, base_url))
    admin_key = directory / "admin.key"
    admin_key.write_text(make_key("ok", prefix="sk-admin-", seed="demo-admin") + "\n")
    admin_key.chmod(0o600)
    config = {
        "defaults": {
            "base_url": base_url,
            "interval": "15s",
            "timeout": "5s",
            "probes": ["rest", "realtime"],
            "realtime": {"interval": "30s"},
        },
        "keys": keys,
        "admin": {
            "api_key_file": str(admin_key),
            "base_url": base_url,
            "interval": "1m",
            "timeout": "10s",
        },
    }
    path = directory / "demo.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def fill_demo_organization(admin: AdminDirectory, now: float | None = None) -> None:
    """The simulator's organization as the demo's admin key lists it."""
    now = time.time() if now is None else now
    for name, (project, days) in DEMO_INVENTORY.items():
        scenario = DEMO_KEYS[name][0]
        expires_at = None if days is None else int(now + days * 86400)
        admin.add_key(project, make_key(scenario, seed=name), name=name, expires_at=expires_at)
    for project, count in DEMO_UNMONITORED.items():
        for index in range(count):
            admin.add_key(project, make_key("ok", seed=f"unwatched-{project}-{index}"))


# Keys of an Azure OpenAI resource (exporter/simulator/azure.py): name -> (scenario, deployment)
AZURE_DEMO_KEYS: dict[str, tuple[str, str]] = {
    "azure-voice": ("ok", "voice-realtime"),
    "azure-rotated": ("invalid_api_key", "voice-realtime"),  # Key 1 regenerated under it
    "azure-no-realtime": ("ok", "unsupported-gpt-4o-mini"),  # deploys a model without Realtime
}


def _azure_keys(directory: Path, base_url: str) -> list[dict[str, object]]:
    azure_url = base_url.removesuffix("/v1") + "/openai/v1"  # the simulator's Azure paths
    keys: list[dict[str, object]] = []
    for name, (scenario, deployment) in AZURE_DEMO_KEYS.items():
        key_file = directory / f"{name}.key"
        key_file.write_text(make_azure_key(scenario, filler=name) + "\n")
        key_file.chmod(0o600)
        keys.append(
            {
                "name": name,
                "provider": "azure",
                "base_url": azure_url,
                "api_key_file": str(key_file),
                "realtime": {"model": deployment, "interval": "30s"},
            }
        )
    return keys


async def _demo(listen_address: tuple[str | None, int]) -> None:
    simulator = await start_simulator()
    fill_demo_organization(simulator.admin)
    with tempfile.TemporaryDirectory(prefix="openai-key-exporter-demo-") as directory:
        config_path = write_demo_config(Path(directory), simulator.base_url)
        host, port = listen_address
        # The demo runs on the machine of the person trying it: links open on localhost.
        links = Links(default_external_url(host or "localhost", port))
        exporter = Exporter(str(config_path), links=links)
        exporter.read_and_switch()
        log.info(
            "demo running against the bundled simulator",
            extra={
                "fields": {
                    "simulator": simulator.base_url,
                    "status": links.external_url,
                    "runbook": links.runbook(),
                }
            },
        )
        try:
            await serve_until_stopped(exporter, listen_address, enable_lifecycle=True)
        finally:
            await simulator.close()


def run_demo(listen_address: tuple[str | None, int]) -> int:
    os.environ.pop("OPENAI_DEMO_KEY_THAT_IS_NOT_SET", None)
    try:
        asyncio.run(_demo(listen_address))
    except (ConfigError, OSError) as error:
        log.error("demo failed", extra={"fields": {"error": str(error)}})
        return 1
    return 0
