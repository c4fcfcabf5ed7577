"""`check` names a format finding before the rejection it explains, and says when the key's
value last changed and what that implies for the application."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.simulator import make_key
from tests.harness import assert_no_secret, exporter_command, start_simulator_process, write_config

EXTERNAL = "https://keys.ops.test"
CHANGED = 1_700_000_000  # 2023-11-14T22:13:20+00:00


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    process, base_url = start_simulator_process(tmp_path_factory.mktemp("sim"))
    yield base_url
    process.stop()


def _check(
    tmp_path: Path, simulator: str, *args: str
) -> tuple[subprocess.CompletedProcess[str], Path, str]:
    key = make_key("ok", seed="check-quoted")  # a good key, sent with the quotes around it
    dotenv = tmp_path / ".env"
    dotenv.write_text(f'OPENAI_API_KEY="{key}"\n')
    dotenv.chmod(0o600)
    os.utime(dotenv, (CHANGED, CHANGED))
    config = write_config(
        tmp_path / "config.yml",
        simulator,
        [{"name": "voice", "dotenv": str(dotenv), "dotenv_format": "literal"}],
        probes=("rest",),
    )
    checked = subprocess.run(
        exporter_command(
            "--config.file", str(config), "check", "--web.external-url", EXTERNAL, *args
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert_no_secret(checked.stdout + checked.stderr, [key], "check output")
    return checked, dotenv, key


def test_the_finding_comes_before_the_rejection(tmp_path: Path, simulator: str) -> None:
    checked, dotenv, _ = _check(tmp_path, simulator)
    lines = checked.stdout.splitlines()
    cause = next(i for i, line in enumerate(lines) if line.startswith("  cause: "))
    result = next(i for i, line in enumerate(lines) if line.startswith("  result: "))
    assert cause < result
    assert (
        lines[cause] == f"  cause: the value in {dotenv} is wrapped in quotes: OpenAI receives them"
    )
    assert lines[cause + 1] == f"  read first: {EXTERNAL}/runbook#key-format-issue"
    assert lines[result].startswith("  result: invalid_api_key")
    assert f"read: {EXTERNAL}/runbook#key-invalid" in checked.stdout
    fmt = next(line for line in lines if "Format: no stray spaces" in line)
    assert "[ ]" in fmt and "wrapped in quotes" in fmt and "fix first" in fmt
    restart = next(line for line in lines if "Application restarted" in line)
    assert restart.lstrip().startswith("[-] ") and "not checked" in restart  # never seen
    assert "2023-11-14T22:13:20+00:00" in restart and str(dotenv) in restart
    assert "still hold the old key" in restart
    assert f"{EXTERNAL}/runbook#application-restart" in restart


def test_json_carries_cause_since_and_last_change(tmp_path: Path, simulator: str) -> None:
    checked, dotenv, _ = _check(tmp_path, simulator, "--output", "json")
    report = json.loads(checked.stdout)["keys"][0]
    assert (
        report["root_cause"] == f"the value in {dotenv} is wrapped in quotes: OpenAI receives them"
    )
    assert report["key_changed_at"] == "2023-11-14T22:13:20+00:00"
    rest = report["probes"]["rest"]
    assert rest["cause"].startswith(f"The value in {dotenv} is wrapped in quotes")
    assert rest["cause"].endswith("OpenAI rejected the key (wrong, revoked or deleted)")
    assert rest["result_since"] and rest["result_probes"] == 1
