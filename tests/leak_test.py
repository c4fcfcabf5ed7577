"""Proof that keys never leak: generated keys of every kind pushed through every output.

A key is allowed out only in its redacted form (`sk-proj-...AbCd`). Every output here has those
forms removed first; then no 12-character window of the key may remain. Keys are a random part
of 40 to 120 characters drawn from OpenAI's alphabet by a hypothesis-chosen seed, so that no
window can match anything by chance (hypothesis' own shrinking towards `AAAA...` would).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import random
import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.check import check_keys, render_json, render_text
from exporter.classify import Result
from exporter.cli import build_parser
from exporter.config import Config, ConfigError, KeyConfig, RealtimeSettings, parse_config
from exporter.keys import KeySource, SourceKind, lint_key
from exporter.links import DEFAULT_LINKS
from exporter.logs import setup_logging
from exporter.probes.realtime import RealtimeProber
from exporter.probes.rest import RestProber
from exporter.redaction import redact
from exporter.result import ProbeResult
from exporter.service import Exporter
from exporter.simulator import RunningSimulator
from exporter.simulator.scenarios import KEY_CHARSET
from exporter.status_page import status_page
from tests.harness import (
    REPO,
    exporter_command,
    start_exporter_process,
    start_simulator_process,
    write_config,
)
from tests.support.key_config import key_config
from tests.support.metrics import parse_metrics
from tests.support.secrets import assert_no_piece
from tests.support.simulator import simulator_in_thread
from tests.support.tls import Tls, tls
from tests.support.waiting import wait_until

__all__ = ["tls"]  # a fixture from tests/support
PREFIXES = ("sk-proj-", "sk-svcacct-", "sk-admin-", "sk-", "")
DECORATIONS = (
    "leading_space",
    "trailing_space",
    "double_quotes",
    "single_quotes",
    "inner_tab",
    "inner_cr",
    "inner_lf",
    "trailing_crlf",
    "non_ascii",
)
UNSENDABLE = {"inner_cr", "inner_lf", "trailing_crlf", "non_ascii"}
SETTINGS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TIMEOUT_S = 0.3


@dataclass(frozen=True)
class Key:
    text: str  # as the source holds it, decorations and all
    parts: tuple[str, ...]  # the secret runs: no 12 characters of any may reach output
    decorations: frozenset[str]

    @property
    def sendable(self) -> bool:
        return not self.decorations & UNSENDABLE

    def __repr__(self) -> str:  # hypothesis prints failing examples: keep them readable
        return f"Key({self.text!r})"


@st.composite
def generated_keys(
    draw: st.DrawFn,
    prefixes: tuple[str, ...] = PREFIXES,
    decorations: tuple[str, ...] = DECORATIONS,
) -> Key:
    prefix = draw(st.sampled_from(prefixes))
    rng = random.Random(draw(st.integers(0, 2**64)))
    body = "".join(rng.choices(KEY_CHARSET, k=draw(st.integers(40, 120))))
    chosen: frozenset[str] = frozenset()
    if decorations:
        chosen = frozenset(draw(st.sets(st.sampled_from(decorations), max_size=3)))
    cut = draw(st.integers(12, len(body) - 12))
    inner = "".join(
        {"inner_tab": "\t", "inner_cr": "\r", "inner_lf": "\n", "non_ascii": "é"}[name]
        for name in sorted(chosen)
        if name in {"inner_tab", "inner_cr", "inner_lf", "non_ascii"}
    )
    parts = (prefix + body[:cut], body[cut:]) if inner else (prefix + body,)
    text = prefix + body[:cut] + inner + body[cut:]
    if "double_quotes" in chosen:
        text = f'"{text}"'
    elif "single_quotes" in chosen:
        text = f"'{text}'"
    if "leading_space" in chosen:
        text = " " + text
    if "trailing_space" in chosen:
        text += " "
    if "trailing_crlf" in chosen:
        text += "\r\n"
    return Key(text, parts, chosen)


def redacted_forms(key: str) -> set[str]:
    """Every public form of the key the exporter may print: the fingerprint and scrub's."""
    cleaned = key.strip()
    if len(cleaned) >= 2 and cleaned[0] == cleaned[-1] and cleaned[0] in "\"'`":
        cleaned = cleaned[1:-1].strip()
    forms = {key, key.strip(), key.strip().strip("\"'"), repr(key)[1:-1], cleaned}
    return {redact(form) for form in forms if form} | {lint_key(key).fingerprint}


def assert_no_leak(text: str, key: Key, where: str) -> None:
    for form in sorted(redacted_forms(key.text), key=len, reverse=True):
        if len(form) > 3:
            text = text.replace(form, "")
    assert_no_piece(text, key.parts, where, f"{key!r}:\n{text[:3000]}")


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def simulators(tls: Tls) -> Iterator[tuple[RunningSimulator, RunningSimulator]]:
    """A plain simulator and one over TLS whose CA the exporter does not trust."""
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    with simulator_in_thread() as plain, simulator_in_thread(ssl_context=context) as secure:
        yield plain, secure


@pytest.fixture
def captured_logs() -> Iterator[dict[str, io.StringIO]]:
    """Debug logging into a buffer, restoring the root logger after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    buffers: dict[str, io.StringIO] = {}
    try:
        yield buffers
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


# --- every result class, every output -------------------------------------------------------------

# A scenario and configuration per result class; a generated key is made to hit the scenario with
# the simulator's override, since a key it does not know gets invalid_api_key.
CASES: dict[str, tuple[str, dict[str, object], Result]] = {
    "ok": ("ok", {}, Result.OK),
    "invalid_api_key": ("invalid_api_key", {}, Result.INVALID_API_KEY),
    "account_deactivated": ("account_deactivated", {}, Result.ACCOUNT_DEACTIVATED),
    "insufficient_permissions": ("missing_scopes", {}, Result.INSUFFICIENT_PERMISSIONS),
    "mismatched_organization": ("mismatched_organization", {}, Result.MISMATCHED_ORGANIZATION),
    "mismatched_project": ("mismatched_project", {}, Result.MISMATCHED_PROJECT),
    "insufficient_quota": ("insufficient_quota", {}, Result.INSUFFICIENT_QUOTA),
    "rate_limited": ("rate_limited", {}, Result.RATE_LIMITED),
    "unsupported_region": ("unsupported_region", {}, Result.UNSUPPORTED_REGION),
    "model_not_found": ("rt_forbidden", {}, Result.MODEL_NOT_FOUND),
    "api_shape_retired": ("ok", {"beta": True}, Result.API_SHAPE_RETIRED),
    "server_error": ("server_error", {}, Result.SERVER_ERROR),
    "timeout": ("hang", {}, Result.TIMEOUT),
    "connection_error": ("reset", {}, Result.CONNECTION_ERROR),
    "tls_error": ("ok", {"tls": True}, Result.TLS_ERROR),
    "protocol_error": ("non_json", {}, Result.PROTOCOL_ERROR),
    "key_missing": ("ok", {"missing": True}, Result.KEY_MISSING),
    "key_malformed": ("ok", {}, Result.KEY_MALFORMED),  # with a line break in the key
    "other": ("rt_unknown_close", {}, Result.OTHER),
}


def _key_config(
    simulators: tuple[RunningSimulator, RunningSimulator], variable: str, options: dict[str, object]
) -> KeyConfig:
    plain, secure = simulators
    return KeyConfig(
        name="generated",
        source=KeySource(SourceKind.ENV, variable),
        base_url=(secure if options.get("tls") else plain).base_url,
        timeout=TIMEOUT_S,
        interval=60.0,
        probes=("rest", "realtime", "inference"),  # the billed probe's outputs are proven too
        realtime=RealtimeSettings(api="beta" if options.get("beta") else "ga"),
    )


async def _every_output(config: KeyConfig, log_format: str) -> dict[str, str]:
    """Probe twice (a change, then the debug line for no change), then run `check`."""
    stream = io.StringIO()
    setup_logging("debug", log_format, stream=stream)
    exporter = Exporter(None)
    exporter.store.configure({config.name: config.probes})
    results = []
    try:
        for _ in range(2):
            results += await asyncio.gather(
                *(exporter.runner.run(config, probe) for probe in config.probes)
            )
    finally:
        await exporter.runner.aclose()
    reports = await check_keys(Config(keys=(config,), source="generated.yml"))
    return {
        "probe results": "\n".join(repr(result) for result in results),
        f"the {log_format} log": stream.getvalue(),
        "the status page": status_page(exporter, "/metrics", DEFAULT_LINKS),
        "/metrics": exporter.renderer.render().decode(),
        "check (text)": render_text(reports, colour=False),
        "check (json)": render_json(reports),
        "check (text, colour)": render_text(reports, colour=True),
    }


def _run_case(
    simulators: tuple[RunningSimulator, RunningSimulator],
    key: Key,
    case: str,
    log_format: str,
) -> dict[str, str]:
    scenario, options, _ = CASES[case]
    variable = "LEAK_TEST_KEY"
    for simulator in simulators:
        simulator.clear_overrides()
        simulator.set_override(key.text.strip(), scenario)  # the token the simulator parses
        simulator.reset()
    if options.get("missing"):
        os.environ.pop(variable, None)
    else:
        os.environ[variable] = key.text
    try:
        outputs = asyncio.run(_every_output(_key_config(simulators, variable, options), log_format))
    finally:
        os.environ.pop(variable, None)
    if not key.sendable:
        for simulator in simulators:  # the runner refused it: not a byte went out
            totals = simulator.stats()["totals"]
            assert (totals["rest_requests"], totals["realtime_sessions"]) == (0, 0), totals
    return outputs


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_result_class_leaks_nothing(
    simulators: tuple[RunningSimulator, RunningSimulator],
    captured_logs: dict[str, io.StringIO],
    case: str,
) -> None:
    """Each class reached for real, with a key of each prefix in turn."""
    prefix = PREFIXES[sorted(CASES).index(case) % len(PREFIXES)]
    body = "".join(random.Random(case).choices(KEY_CHARSET, k=64))
    if case == "key_malformed":
        key = Key(
            f"{prefix}{body[:30]}\r{body[30:]}",
            (prefix + body[:30], body[30:]),
            frozenset({"inner_cr"}),
        )
    else:
        key = Key(prefix + body, (prefix + body,), frozenset())
    expected = CASES[case][2]
    for log_format in ("logfmt", "json"):
        outputs = _run_case(simulators, key, case, log_format)
        reached = outputs["check (json)"]
        assert f'"result": "{expected.value}"' in reached, reached
        for where, text in outputs.items():
            assert_no_leak(text, key, where)


@SETTINGS
@given(
    key=generated_keys(),
    case=st.sampled_from(sorted(CASES)),
    log_format=st.sampled_from(("logfmt", "json")),
)
def test_generated_keys_leak_nothing_anywhere(
    simulators: tuple[RunningSimulator, RunningSimulator],
    captured_logs: dict[str, io.StringIO],
    key: Key,
    case: str,
    log_format: str,
) -> None:
    if case == "timeout":
        case = "server_error"  # the hang costs TIMEOUT_S per probe; the fixed test covers it
    for where, text in _run_case(simulators, key, case, log_format).items():
        assert_no_leak(text, key, where)


# --- library exceptions that quote header values ------------------------------------------------


@SETTINGS
@given(
    key=generated_keys(
        prefixes=PREFIXES[:-1], decorations=("inner_cr", "inner_lf", "trailing_crlf", "inner_tab")
    ).filter(lambda key: not key.sendable)
)
def test_errors_the_probers_raise_on_a_header_they_cannot_send_are_scrubbed(
    simulators: tuple[RunningSimulator, RunningSimulator], key: Key
) -> None:
    """The probers themselves handed a key the runner's lint would stop: aiohttp (pooled), the
    exporter's own connection (fresh) and websockets (the upgrade) refuse the header, and
    websockets quotes it whole; each prober's result must hold no piece of it."""
    plain, _ = simulators
    plain.reset()  # the module's other tests used it: count from here
    config = key_config("leak", base_url=plain.base_url)

    async def results() -> dict[str, ProbeResult]:
        rest = RestProber()
        try:
            return {
                "pooled REST": await rest.probe_on_connection(config, key.text, fresh=False),
                "fresh REST": await rest.probe_on_connection(config, key.text, fresh=True),
                "Realtime": await RealtimeProber().probe(config, key.text),
            }
        finally:
            await rest.aclose()

    for where, result in asyncio.run(results()).items():
        assert not result.healthy and result.message, (where, result)
        assert_no_leak(repr(result), key, where)
    totals = plain.stats()["totals"]
    assert (totals["rest_requests"], totals["realtime_sessions"]) == (0, 0), totals


# --- configuration errors -----------------------------------------------------------------------

# Every place of a configuration file a key can be pasted by mistake, with the error that follows.
MISPLACED = {
    "name": "keys: [{name: KEY, api_key_env: X}]",
    "api_key_env": "keys: [{name: a, api_key_env: KEY}]",
    "api_key_file": "keys: [{name: a, api_key_file: KEY}]",
    "dotenv": "keys: [{name: a, dotenv: KEY}]",
    "dotenv_var": "keys: [{name: a, dotenv: DOTENV, dotenv_var: KEY}]",
    "dotenv_format": "keys: [{name: a, dotenv: DOTENV, dotenv_format: KEY}]",
    "base_url": "keys: [{name: a, api_key_env: X, base_url: KEY}]",
    "interval": "keys: [{name: a, api_key_env: X, interval: KEY}]",
    "timeout": "defaults: {timeout: KEY}\nkeys: [{name: a, api_key_env: X}]",
    "probes": "keys: [{name: a, api_key_env: X, probes: [KEY]}]",
    "field_name": "keys: [{name: a, api_key_env: X, KEY: 1}]",
    "top_level_field": "KEY: 1\nkeys: [{name: a, api_key_env: X}]",
    "realtime.url": "keys: [{name: a, api_key_env: X, realtime: {url: KEY}}]",
    "realtime.api": "keys: [{name: a, api_key_env: X, realtime: {api: KEY}}]",
    "realtime.interval": "keys: [{name: a, api_key_env: X, realtime: {interval: KEY}}]",
    "tls.ca_file": "keys: [{name: a, api_key_env: X, tls: {ca_file: KEY}}]",
    "yaml_alias": "keys: [{name: *KEY, api_key_env: X}]",
    "keys_scalar": "keys: KEY",
}


def _misplaced(template: str, key: str, dotenv: Path) -> str:
    return template.replace("DOTENV", str(dotenv)).replace("KEY", key)


@SETTINGS
@given(
    # Prefix-less text cannot be told from a misspelled value, so only sk- keys are recognised.
    key=generated_keys(prefixes=PREFIXES[:-1], decorations=()),
    where=st.sampled_from(sorted(MISPLACED)),
)
def test_a_key_in_the_wrong_place_of_the_config_is_never_quoted(
    tmp_path_factory: pytest.TempPathFactory, key: Key, where: str
) -> None:
    dotenv = tmp_path_factory.getbasetemp() / "wrong-place.env"
    dotenv.write_text("OPENAI_API_KEY=x\n")
    with pytest.raises(ConfigError) as raised:
        parse_config(_misplaced(MISPLACED[where], key.text, dotenv), "exporter.yml")
    assert "exporter.yml" in str(raised.value)
    assert_no_leak(str(raised.value), key, f"the error for a key in {where}")


# A .env file that holds the key, but not where the configuration says.
WRONG_DOTENV = {
    "bare_line": "{key}\n",
    "no_equals": "OPENAI_API_KEY {key}\n",
    "other_variable": "OPENAI_KEY={key}\n",
    "key_as_name": "{key}=x\n",
    "commented": "# OPENAI_API_KEY={key}\n",
}


@SETTINGS
@given(key=generated_keys(), layout=st.sampled_from(sorted(WRONG_DOTENV)))
def test_a_key_in_the_wrong_place_of_a_dotenv_file_is_never_quoted(
    tmp_path_factory: pytest.TempPathFactory, key: Key, layout: str
) -> None:
    dotenv = tmp_path_factory.getbasetemp() / "wrong-layout.env"
    dotenv.write_bytes(WRONG_DOTENV[layout].format(key=key.text).encode())
    config = KeyConfig(name="a", source=KeySource(SourceKind.DOTENV, str(dotenv)))
    reports = asyncio.run(check_keys(Config(keys=(config,), source="exporter.yml")))
    assert reports[0].probes["rest"].result == Result.KEY_MISSING.value
    for where, text in {
        "check (text)": render_text(reports, colour=False),
        "check (json)": render_json(reports),
    }.items():
        assert_no_leak(text, key, where)


def _fixed_key(prefix: str, seed: str) -> Key:
    text = prefix + "".join(random.Random(seed).choices(KEY_CHARSET, k=60))
    return Key(text, (text,), frozenset())


@pytest.mark.parametrize("where", sorted(MISPLACED))
def test_config_check_never_quotes_a_misplaced_key(tmp_path: Path, where: str) -> None:
    """`--config.check`, a real process, with the key in the file and in its environment."""
    key = _fixed_key(PREFIXES[sorted(MISPLACED).index(where) % 4], where)
    dotenv = tmp_path / "x.env"
    dotenv.write_text("OPENAI_API_KEY=x\n")
    config = tmp_path / "exporter.yml"
    config.write_text(_misplaced(MISPLACED[where], key.text, dotenv))
    run = subprocess.run(
        exporter_command("--config.check", "--config.file", str(config)),
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "X": key.text, "OPENAI_API_KEY": key.text},
    )
    assert run.returncode == 1, run
    assert "configuration is invalid" in run.stderr
    assert_no_leak(run.stdout + run.stderr, key, "--config.check")


# --- the exporter process: arguments, file modes ------------------------------------------------


def _shipped_command_lines() -> dict[str, list[str]]:
    """The arguments every shipped way of running the exporter passes it: the Kubernetes
    manifests, the compose services built from this image, the image's ENTRYPOINT, the scripts."""
    found: dict[str, list[str]] = {}
    for manifest in sorted((REPO / "deploy" / "kubernetes").rglob("*.yaml")):
        for document in yaml.safe_load_all(manifest.read_text()):
            pod = ((document or {}).get("spec") or {}).get("template", {}).get("spec", {})
            for container in pod.get("containers", []):
                where = f"{manifest.relative_to(REPO)} {container['name']}"
                found[where] = [*container.get("command", []), *container.get("args", [])]
                assert not container.get("env"), f"{where}: configured by file, not environment"
    compose = yaml.safe_load((REPO / "deploy" / "compose" / "compose.yaml").read_text())
    for name, service in compose["services"].items():
        if service.get("image") == "openai-key-exporter:local":
            found[f"compose {name}"] = list(service.get("command", []))
    dockerfile = (REPO / "Dockerfile").read_text()
    entrypoint = re.search(r"^ENTRYPOINT (\[.*\])$", dockerfile, re.MULTILINE)
    assert entrypoint, "the Dockerfile has no ENTRYPOINT in exec form"
    found["Dockerfile ENTRYPOINT"] = json.loads(entrypoint.group(1))[1:]
    for script in sorted((REPO / "scripts").glob("*.sh")):
        for line in script.read_text().splitlines():
            if "openai-key-exporter " in line and not line.lstrip().startswith("#"):
                command = shlex.split(line.split("openai-key-exporter ", 1)[1])
                found[f"{script.relative_to(REPO)}"] = [arg for arg in command if arg != "$@"]
    return found


def test_no_shipped_command_line_carries_a_key() -> None:
    """A process's arguments are readable by every user of the machine (/proc/PID/cmdline):
    no shipped deployment passes a key, or anything that expands to one, as an argument."""
    command_lines = _shipped_command_lines()
    assert {"compose exporter", "Dockerfile ENTRYPOINT", "scripts/demo.sh"} <= set(command_lines)
    assert sum("deploy/kubernetes" in where for where in command_lines) >= 2, command_lines
    parser = build_parser()
    for where, arguments in command_lines.items():
        for argument in arguments:
            assert "sk-" not in argument, f"{where}: {argument!r} looks like a key"
            # $(VAR) is expanded by Kubernetes, ${VAR} and $VAR by compose and the shell.
            assert "$" not in argument, f"{where}: {argument!r} expands a variable"
        with contextlib.redirect_stderr(io.StringIO()):
            parsed = parser.parse_args(arguments)  # exits on an argument the CLI does not take
        assert not [name for name in vars(parsed) if "api_key" in name], where
    # No flag of the CLI takes a key: only files and environment variables do.
    flags = [flag for action in parser._actions for flag in action.option_strings]
    assert flags and not [flag for flag in flags if "key" in flag and "key-file" not in flag]


def test_keys_never_reach_outputs_and_a_world_readable_file_is_flagged(tmp_path: Path) -> None:
    simulator, base_url = start_simulator_process(tmp_path)
    keys = {prefix or "none": _fixed_key(prefix, f"process-{prefix}") for prefix in PREFIXES}
    entries: list[dict[str, object]] = []
    env = {}
    for index, (name, key) in enumerate(keys.items()):
        if index % 2:
            env[f"KEY_{index}"] = key.text
            entries.append({"name": f"{name}-env", "api_key_env": f"KEY_{index}"})
        else:
            path = tmp_path / f"{name}.key"
            path.write_text(key.text + "\n")
            path.chmod(0o644 if name == "sk-proj-" else 0o600)
            entries.append({"name": f"{name}-file", "api_key_file": str(path)})
    config = write_config(tmp_path / "exporter.yml", base_url, entries, interval="2s")
    exporter, url = start_exporter_process(
        config, tmp_path, "--log.level", "debug", env={**env, "OPENAI_API_KEY": keys["sk-"].text}
    )

    def second_round_recorded() -> bool:
        """Every key probed twice both ways, as the exporter itself counts: its debug lines
        of a second round are written."""
        samples = parse_metrics(httpx.get(f"{url}/metrics", timeout=5).text)
        counts = [
            value
            for series, value in samples.items()
            if series.startswith("openai_probe_requests_total{")
        ]
        return len(counts) == 2 * len(keys) and min(counts) >= 2

    try:
        wait_until(second_round_recorded, 30, "a second round of every key")
        metrics = httpx.get(f"{url}/metrics", timeout=5).text
        landing = httpx.get(f"{url}/", timeout=5).text
    finally:
        exporter.stop()
        simulator.stop()
    log = exporter.output()
    for key in keys.values():
        for where, text in {"/metrics": metrics, "/": landing, "the log": log}.items():
            assert_no_leak(text, key, where)
    readable = 'openai_key_format_issue{key="sk-proj--file",issue="file_readable_by_others"} 1'
    assert readable in metrics
    private = 'openai_key_format_issue{key="sk-svcacct--file",issue="file_readable_by_others"}'
    assert private not in metrics
    # No log line names the issue: the runner logs results, not format issues, so a key file
    # readable by others shows in /metrics, on `check` and in openai_key_info only.


def test_the_leak_check_itself_catches_a_piece_and_allows_the_redacted_form() -> None:
    key = _fixed_key("sk-proj-", "self-test")
    assert_no_leak(f"fingerprint {redact(key.text)} ok", key, "a redacted line")
    with pytest.raises(AssertionError, match="12 characters"):
        assert_no_leak(f"x{key.text[20:32]}x", key, "a line with a piece")
