"""An admin key for an exporter under test: keys listed in the simulator's organization, the
admin key's file, the `admin` block of a configuration file, and waiting on its passes."""

from __future__ import annotations

from pathlib import Path

import httpx
import yaml

from exporter.simulator import make_key
from tests.harness import Process
from tests.support.metrics import scrape
from tests.support.waiting import wait_until


def list_in_organization(
    base_url: str, project: str, key: str, expires_at: int | None = None
) -> None:
    """Lists `key` under `project` in the simulator's organization (its Admin API's key list)."""
    root = base_url.removesuffix("/v1")
    response = httpx.post(
        f"{root}/_sim/admin/keys",
        json={"project": project, "key": key, "expires_at": expires_at},
    )
    assert response.status_code == 201, response.text


def write_admin_key(path: Path, key: str) -> Path:
    """The admin key written to `path`, readable by its owner only as the exporter demands."""
    path.write_text(key + "\n")
    path.chmod(0o600)
    return path


def add_admin_block(
    config: Path, admin_file: Path, base_url: str, interval: str = "2s", timeout: str = "1s"
) -> None:
    """Adds an `admin` block to the config file: key file, base URL, pass interval and timeout."""
    document = yaml.safe_load(config.read_text())
    document["admin"] = {
        "api_key_file": str(admin_file),
        "base_url": base_url,
        "interval": interval,
        "timeout": timeout,
    }
    config.write_text(yaml.safe_dump(document, sort_keys=False))


def wait_for_revoked(url: str, exporter: Process, name: str = "deleted") -> None:
    """Waits until the exporter reports key `name` (one its inventory lacks) key_revoked."""
    wait_until(
        lambda: scrape(url).result(name, "rest") == "key_revoked",
        20,
        f"the {name} key to be reported revoked",
        log=exporter,
    )


def reject_admin_key(admin_file: Path, url: str, exporter: Process, seed: str) -> str:
    """Writes a rejected admin key to `admin_file`, waits for the failed pass; returns the key."""
    bad_admin = make_key("invalid_api_key", prefix="sk-admin-", seed=seed)
    admin_file.write_text(bad_admin + "\n")
    wait_until(
        lambda: scrape(url).value("openai_admin_probe_success") == 0,
        20,
        "the pass with a rejected admin key",
        log=exporter,
    )
    return bad_admin
