"""The checklist `check` prints, in-process, for keys in many states: the exact text a person
reads (tests/testdata/check/*), its colours, its JSON and its exit code. Durations and request
ids vary by run and are masked; everything else is pinned."""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from exporter.check import run_check
from exporter.simulator import RunningSimulator, make_key
from tests.support.simulator import simulator_in_thread

GOLDEN = Path(__file__).resolve().parent / "testdata" / "check"
KEYS = {  # name -> (scenario, settings); the file holds a simulator key for the scenario
    "healthy": ("ok", {}),
    "rest-only": ("ok", {"probes": ["rest"]}),
    "revoked": ("invalid_api_key", {}),
    "restricted": ("missing_scopes", {}),
    "realtime-denied": ("rt_forbidden", {}),
    "no-credit": ("insufficient_quota", {}),
    "throttled": ("rate_limited", {}),
    "flaky": ("server_error", {}),
    "realtime-only": ("ok", {"probes": ["realtime"]}),
    "service-account": ("ok", {}),  # made with the sk-svcacct- prefix below
    # Two permission failures at once: a scope missing on REST, a model refused on Realtime.
    "restricted-model": ("missing_scopes", {"realtime": {"model": "gpt-no-such-model"}}),
}


@pytest.fixture(scope="module")
def simulator() -> Iterator[RunningSimulator]:
    with simulator_in_thread() as simulator:
        yield simulator


def write_checked_config(directory: Path, base_url: str) -> Path:
    keys: list[dict[str, object]] = []
    for name, (scenario, settings) in KEYS.items():
        path = directory / f"{name}.key"
        prefix = "sk-svcacct-" if name == "service-account" else "sk-proj-"
        path.write_text(make_key(scenario, prefix=prefix, seed=f"check-{name}") + "\n")
        path.chmod(0o600)
        keys.append({"name": name, "api_key_file": str(path), **settings})
    quoted = directory / "quoted.key"
    quoted.write_text(f'"{make_key("ok", seed="check-quoted")}"\n')
    quoted.chmod(0o600)
    keys.append({"name": "quoted", "api_key_file": str(quoted)})
    keys.append({"name": "missing", "api_key_env": "CHECK_RENDER_TEST_UNSET"})
    service = directory / "service.key"
    service.write_text(f' "{make_key("ok", prefix="sk-svcacct-", seed="check-service")}"\n')
    service.chmod(0o600)  # a service account key, with two format issues
    keys.append({"name": "service", "api_key_file": str(service)})
    odd = directory / "odd.key"
    odd.write_text(make_key("ok", prefix="ak-", seed="check-odd") + "\n")
    odd.chmod(0o600)  # no known prefix
    keys.append({"name": "odd-prefix", "api_key_file": str(odd)})
    # REST cannot connect, Realtime is told the key is invalid: the verdict is the key's.
    revoked = directory / "split.key"
    revoked.write_text(make_key("invalid_api_key", seed="check-split") + "\n")
    revoked.chmod(0o600)
    keys.append(
        {
            "name": "split-verdict",
            "api_key_file": str(revoked),
            "base_url": "http://127.0.0.1:9/v1",
            "realtime": {"url": base_url.replace("http://", "ws://") + "/realtime"},
        }
    )
    config = {
        "defaults": {"base_url": base_url, "timeout": "3s", "probes": ["rest", "realtime"]},
        "keys": keys,
    }
    path = directory / "check.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def masked(text: str, directory: Path) -> str:
    text = text.replace(str(directory), "DIR")
    text = re.sub(r"\b\d+\.\d{3}s\b", "N.NNNs", text)
    # When the key files were written (their mtime: the key's last change), and since when.
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", "YYYY-MM-DDTHH:MM:SS+00:00", text)
    return re.sub(r"req_[0-9a-f]{32}", "req_ID", text)


def checked(
    simulator: RunningSimulator, directory: Path, output: str, colour: str
) -> tuple[int, str]:
    os.environ.pop("CHECK_RENDER_TEST_UNSET", None)
    config = write_checked_config(directory, simulator.base_url)
    stream = io.StringIO()
    code = run_check(str(config), output, colour, stream)
    return code, stream.getvalue()


def compare(text: str, name: str) -> None:
    golden = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert text == golden.read_text(), f"differs from {golden} (UPDATE_GOLDEN=1 rewrites it)"


def test_the_checklist_text(simulator: RunningSimulator, tmp_path: Path) -> None:
    code, text = checked(simulator, tmp_path, "text", "never")
    assert code == 1
    compare(masked(text, tmp_path), "checklist.txt")


def test_the_checklist_in_colour(simulator: RunningSimulator, tmp_path: Path) -> None:
    code, text = checked(simulator, tmp_path, "text", "always")
    assert code == 1
    compare(masked(text, tmp_path), "checklist-colour.txt")


def test_the_checklist_as_json(simulator: RunningSimulator, tmp_path: Path) -> None:
    code, text = checked(simulator, tmp_path, "json", "never")
    assert code == 1
    assert text.startswith('{\n  "healthy": false,\n  "not_checked": ')  # indented by 2
    payload = json.loads(text)
    for key in payload["keys"]:
        for probe in key["probes"].values():
            # Durations to the tenth of a millisecond, as the text shows them.
            times = [probe["duration_seconds"], *probe["phases"].values()]
            assert all(isinstance(seconds, float) for seconds in times), probe
            assert all(round(seconds, 4) == seconds for seconds in times), probe
            probe["duration_seconds"] = "N"
            probe["phases"] = sorted(probe["phases"])
            probe["request_id"] = "req_ID" if probe["request_id"] else ""
    compare(masked(json.dumps(payload, indent=2) + "\n", tmp_path), "checklist.json")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_colour_follows_the_terminal(simulator: RunningSimulator, tmp_path: Path) -> None:
    config = write_checked_config(tmp_path, simulator.base_url)
    plain, terminal = io.StringIO(), Terminal()
    run_check(str(config), "text", "auto", plain)
    run_check(str(config), "text", "auto", terminal)
    assert "\033[" not in plain.getvalue()
    assert "\033[32m" in terminal.getvalue() and "\033[31m" in terminal.getvalue()


def test_all_healthy_exits_0_and_a_broken_config_2(
    simulator: RunningSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "ok.key"
    key.write_text(make_key("ok", seed="check-alone") + "\n")
    key.chmod(0o600)
    config = tmp_path / "ok.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "defaults": {"base_url": simulator.base_url},
                "keys": [{"name": "a", "api_key_file": str(key)}],
            }
        )
    )
    stream = io.StringIO()
    assert run_check(str(config), "text", "never", stream) == 0
    # Not checked: the inference probe, credit and the application's restart.
    assert stream.getvalue().endswith("\n1 of 1 keys healthy, 3 items not checked\n")
    config.write_text("keys: [{name: a}]\n")
    assert run_check(str(config), "text", "never", io.StringIO()) == 2
    assert "configuration is invalid:" in capsys.readouterr().err
