"""The configuration file: every bad configuration refused with its file, field and fix; good
ones loaded with the values they mean; `--config.check` as a real process."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from exporter.cli import config_check as cli_config_check
from exporter.config import (
    DEFAULT_BASE_URL,
    ConfigError,
    config_from_environment,
    load_config,
    parse_config,
    parse_duration,
)
from exporter.keys import DotenvFormat, SourceKind
from tests.support.secrets import SAMPLE_KEY as KEY
from tests.support.secrets import assert_no_key

REPO = Path(__file__).resolve().parent.parent
TESTDATA = Path(__file__).resolve().parent / "testdata" / "config"
BAD = sorted((TESTDATA / "bad").glob("*.yml"))
GOOD = sorted((TESTDATA / "good").glob("*.yml"))


# Looks like a real project key; never written anywhere but the temporary key files.
def expected_error(path: Path) -> str:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# error: "), f"{path.name}: first line must be `# error: ...`"
    return first.removeprefix("# error: ").strip()


# Bad configurations, one per file ----------------------------------------------------------


def test_there_is_a_bad_configuration_per_mistake() -> None:
    assert len(BAD) >= 30
    assert len(GOOD) >= 3


@pytest.mark.parametrize("path", BAD, ids=[path.stem for path in BAD])
def test_bad_configuration_is_refused_with_file_field_and_fix(path: Path) -> None:
    expected = expected_error(path)
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    message = str(caught.value)
    assert expected in message
    # Every error a person can cause says how to fix it, in parentheses at the end.
    assert re.search(r" \(.+\)$", message), message
    # YAML refused as a whole (syntax, a key set twice, an alias bomb) names the line in words.
    if expected.startswith(("not valid YAML", "line ")):
        assert message.startswith(f"{path}: "), message
        return
    field = expected.split(":", 1)[0]
    assert re.fullmatch(r"top level|[a-z_]+(\[\d+\])?(\.[a-z_]+)*", field), field
    # The file, the line of the node at fault, the field: `config.yml:7: admin.projects: ...`;
    # a file with nothing in it has no node, so no line.
    located = re.match(rf"{re.escape(str(path))}(?::(\d+))?: {re.escape(field)}: ", message)
    assert located, message
    lines = path.read_text(encoding="utf-8").splitlines()
    written = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not written:
        assert located.group(1) is None, message
        return
    assert located.group(1) is not None, message
    assert 1 < int(located.group(1)) <= len(lines), message  # line 1 is the `# error:` comment


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


@dataclass(frozen=True)
class TmpCase:
    """A bad configuration that needs real files beside it."""

    name: str
    yaml: str  # {dir} is the temporary directory
    field: str
    error: str


TMP_CASES = [
    TmpCase(
        "dotenv_var with an existing api_key_file",
        "keys:\n  - name: web\n    api_key_file: {dir}/keys/web\n    dotenv_var: OPENAI_API_KEY\n",
        "keys[0].dotenv_var",
        "only applies with dotenv (remove it)",
    ),
    TmpCase(
        "dotenv_format with an existing api_key_file",
        "keys:\n  - name: web\n    api_key_file: {dir}/keys/web\n    dotenv_format: node\n",
        "keys[0].dotenv_format",
        "only applies with dotenv (remove it)",
    ),
    TmpCase(
        "unknown dotenv_format",
        "keys:\n  - name: relay\n    dotenv: {dir}/.env\n    dotenv_format: docker\n",
        "keys[0].dotenv_format",
        "'docker' is not one of node, literal (use node (the npm dotenv package) or literal",
    ),
    TmpCase(
        "api_key_file is a directory",
        "keys:\n  - name: web\n    api_key_file: {dir}/keys\n",
        "keys[0].api_key_file",
        "keys is a directory, not a file (set api_key_file to a readable file)",
    ),
    TmpCase(
        "second key's file missing next to a good one",
        "keys:\n  - name: web\n    api_key_file: {dir}/keys/web\n"
        "  - name: worker\n    api_key_file: {dir}/keys/worker\n",
        "keys[1].api_key_file",
        "keys/worker does not exist (set api_key_file to a readable file)",
    ),
    TmpCase(
        "tls.ca_file that is not PEM (a key file given by mistake: its key is not shown)",
        "keys:\n  - name: web\n    api_key_file: {dir}/keys/web\n    tls:\n"
        "      ca_file: {dir}/keys/web\n",
        "keys[0].tls.ca_file",
        "keys/web holds no CA certificate in PEM form (give a readable PEM file of CA certificates)",
    ),
    TmpCase(
        "timeout longer than a key's own interval, file source",
        "keys:\n  - name: web\n    api_key_file: {dir}/keys/web\n    interval: 5s\n",
        "keys[0].timeout",
        "10s is longer than the interval (5s) (make the timeout shorter than the interval)",
    ),
]


@pytest.fixture
def key_files(tmp_path: Path) -> Path:
    write(tmp_path / "keys" / "web", KEY + "\n")
    write(tmp_path / ".env", f"# the relay's settings\nOPENAI_API_KEY={KEY}\nPORT=8081\n")
    return tmp_path


@pytest.mark.parametrize("case", TMP_CASES, ids=[case.name for case in TMP_CASES])
def test_bad_configuration_beside_real_files(key_files: Path, case: TmpCase) -> None:
    config = write(key_files / "config.yml", case.yaml.format(dir=key_files))
    with pytest.raises(ConfigError) as caught:
        load_config(str(config))
    message = str(caught.value)
    assert re.match(rf"{re.escape(str(config))}:\d+: {re.escape(case.field)}: ", message), message
    assert case.error in message
    assert_no_key(message)


@pytest.mark.parametrize("field", ["api_key_env", "api_key_file", "dotenv", "name"])
def test_a_key_pasted_into_the_configuration_is_never_quoted_back(field: str) -> None:
    source = "" if field == "name" else "    " + field + ": " + KEY + "\n"
    name = KEY if field == "name" else "web"
    text = f"keys:\n  - name: {name}\n" + (source or "    api_key_env: OPENAI_API_KEY\n")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "config.yml")
    message = str(caught.value)
    line = 2 if field == "name" else 3
    assert message.startswith(f"config.yml:{line}: keys[0].{field}: ")
    assert "API key" in message
    assert_no_key(message)


def test_a_key_pasted_as_dotenv_var_is_never_quoted_back(key_files: Path) -> None:
    text = f"keys:\n  - name: relay\n    dotenv: {key_files}/.env\n    dotenv_var: {KEY}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "config.yml")
    assert str(caught.value).startswith("config.yml:4: keys[0].dotenv_var: ")
    assert_no_key(str(caught.value))


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    with pytest.raises(ConfigError, match=r"cannot be read: .*\(pass --config.file a readable"):
        load_config(str(missing))
    latin1 = tmp_path / "latin1.yml"
    latin1.write_bytes(b"keys:\n  - name: caf\xe9\n    api_key_env: X\n")
    with pytest.raises(ConfigError, match=r"is not UTF-8 text \(save it as UTF-8\)"):
        load_config(str(latin1))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("10s", 10), ("5m", 300), ("1h30m", 5400), ("1.5s", 1.5), ("1d", 86400)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", [10, "10", "ten seconds", "5x", "", "-5s", "5s ", "s", None])
def test_not_durations(text: object) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["0s", "0ms", "0m0s"])
def test_a_zero_duration_must_be_positive(text: str) -> None:
    with pytest.raises(ValueError, match=f"^'{text}' must be positive$"):
        parse_duration(text)


# Good configurations -----------------------------------------------------------------------


def prepare_good(directory: Path) -> Path:
    """The good configurations next to the files they name, as the tests run them."""
    shutil.copytree(TESTDATA / "good", directory, dirs_exist_ok=True)
    write(directory / "keys" / "web", KEY + "\n")
    write(
        directory / "websocket-server" / ".env",
        f"OPENAI_API_KEY={KEY}\nRELAY_OPENAI_API_KEY={KEY}\n",
    )
    write(directory / "ca.pem", trustme.CA().cert_pem.bytes().decode())  # read at load
    return directory


@pytest.fixture
def good_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    prepare_good(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_minimal(good_dir: Path) -> None:
    config = load_config("minimal.yml")
    assert config.source == "minimal.yml"
    (key,) = config.keys
    assert key.name == "default"
    assert key.source.kind is SourceKind.ENV
    assert key.source.location == "OPENAI_API_KEY"
    assert key.base_url == DEFAULT_BASE_URL
    assert (key.interval, key.timeout, key.retry_interval) == (60, 10, 5)
    assert key.probes == ("rest", "realtime")
    assert key.organization is None and key.project is None and key.tls_ca_file is None
    assert key.realtime.model == "gpt-realtime-2.1" and key.realtime.api == "ga"
    assert key.realtime_url == "wss://api.openai.com/v1/realtime"
    assert key.interval_for("rest") == 60
    assert key.interval_for("realtime") == 300  # Realtime sessions cost more: every 5m


def test_full(good_dir: Path) -> None:
    keys = {key.name: key for key in load_config("full.yml").keys}
    assert list(keys) == ["web", "voice-relay", "voice-relay-docker", "batch@eu/nightly"]

    web = keys["web"]
    assert web.source.kind is SourceKind.FILE and web.source.location == str(good_dir / "keys/web")
    assert web.base_url == "https://api.openai.com/v1"  # trailing slash dropped
    assert (web.interval, web.timeout, web.retry_interval) == (60, 10, 15)
    assert web.probes == ("rest",)
    assert web.organization == "org-defaultorg" and web.project is None
    assert web.realtime.interval == 600
    assert web.interval_for("realtime") == 600

    relay = keys["voice-relay"]
    assert relay.source.kind is SourceKind.DOTENV
    # Relative paths are read from the configuration file's folder, as Prometheus does.
    assert relay.source.location == str(good_dir / "websocket-server/.env")
    assert relay.source.dotenv_var == "OPENAI_API_KEY"
    assert relay.source.dotenv_format is DotenvFormat.NODE
    assert relay.probes == ("rest", "realtime")
    assert relay.organization == "org-defaultorg"  # inherited beside its own project
    assert relay.project == "proj_voice"
    assert relay.realtime.api == "beta"
    assert relay.realtime.model == "gpt-realtime"  # the rest of realtime still inherited
    assert relay.realtime.interval == 600
    assert relay.realtime_url == "wss://api.openai.com/v1/realtime"

    docker = keys["voice-relay-docker"]
    assert docker.source.dotenv_var == "RELAY_OPENAI_API_KEY"
    assert docker.source.dotenv_format is DotenvFormat.LITERAL
    assert docker.probes == ("realtime",)
    assert docker.realtime.api == "ga"  # the sibling's beta is not inherited
    assert docker.realtime_url == "wss://realtime.example.internal/v1/realtime"
    assert docker.interval_for("realtime") == 120
    assert docker.interval_for("rest") == 60

    batch = keys["batch@eu/nightly"]
    assert batch.source.kind is SourceKind.ENV
    assert batch.source.location == "BATCH_OPENAI_API_KEY"
    assert batch.base_url == "http://openai-proxy.internal:8080/v1"
    assert batch.realtime_url == "ws://openai-proxy.internal:8080/v1/realtime"
    assert (batch.interval, batch.timeout, batch.retry_interval) == (300, 30, 60)
    assert batch.tls_ca_file == str(good_dir / "ca.pem")


def test_many_keys(good_dir: Path) -> None:
    keys = load_config("many-keys.yml").keys
    assert len(keys) == 200
    assert len({key.name for key in keys}) == 200
    assert keys[7].name == "team-007" and keys[7].source.location == "TEAM_007_OPENAI_API_KEY"
    for key in keys:
        assert key.interval == 120 and key.probes == ("rest", "realtime")
        assert key.interval_for("realtime") == 300


def test_duplicate_probes_are_listed_once() -> None:
    config = parse_config("keys:\n  - {name: a, api_key_env: X, probes: [rest, rest]}\n", "c")
    assert config.keys[0].probes == ("rest",)


def test_defaults_realtime_url_is_inherited_and_overridden() -> None:
    config = parse_config(
        "defaults:\n  realtime: {url: 'ws://127.0.0.1:9/realtime/'}\n"
        "keys:\n  - {name: a, api_key_env: X}\n"
        "  - {name: b, api_key_env: X, realtime: {url: 'wss://b.example/rt'}}\n",
        "c",
    )
    assert [key.realtime_url for key in config.keys] == [
        "ws://127.0.0.1:9/realtime",
        "wss://b.example/rt",
    ]


# No configuration file ---------------------------------------------------------------------


def test_no_file_one_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    config = config_from_environment()
    (key,) = config.keys
    assert key.name == "default"
    assert key.source.kind is SourceKind.ENV and key.source.location == "OPENAI_API_KEY"
    assert key.base_url == DEFAULT_BASE_URL
    assert "OPENAI_API_KEY" in config.source


def test_no_file_base_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8089/v1/")
    (key,) = config_from_environment().keys
    assert key.base_url == "http://127.0.0.1:8089/v1"
    assert key.realtime_url == "ws://127.0.0.1:8089/v1/realtime"
    monkeypatch.setenv("OPENAI_BASE_URL", "")
    assert config_from_environment().keys[0].base_url == DEFAULT_BASE_URL


def test_no_file_bad_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "api.openai.com")
    with pytest.raises(ConfigError, match=r"^OPENAI_BASE_URL: .*\(set it to an https:// URL\)"):
        config_from_environment()


# --config.check as a real process ----------------------------------------------------------


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str


def config_check(config: Path, cwd: Path, extra_env: dict[str, str] | None = None) -> Run:
    done = subprocess.run(
        [sys.executable, "-m", "exporter", "--config.file", str(config), "--config.check"],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO), **(extra_env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)


# A process takes a second or more on a busy machine: every good file and a few bad ones go
# through a real process, in parallel; every bad file goes through the same function in-process.
BAD_AS_PROCESS = [
    TESTDATA / "bad" / name
    for name in (
        "unknown-key-field.yml",
        "api-key-file-missing.yml",
        "duration-in-words.yml",
        "yaml-syntax-error.yml",
        "not-a-mapping.yml",
    )
]


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, Run]:
    good_dir = prepare_good(tmp_path_factory.mktemp("good"))
    jobs = {path: (path, REPO) for path in BAD_AS_PROCESS}
    jobs |= {path: (good_dir / path.name, good_dir) for path in GOOD}
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {path: pool.submit(config_check, *job) for path, job in jobs.items()}
        return {path: future.result() for path, future in futures.items()}


@pytest.mark.parametrize("path", GOOD, ids=[path.stem for path in GOOD])
def test_config_check_good(checked: dict[Path, Run], path: Path) -> None:
    run = checked[path]
    assert run.code == 0, run.stderr
    keys = {"minimal": 1, "full": 4, "many-keys": 200}[path.stem]
    assert re.fullmatch(rf"configuration is valid: \S*{path.name}: {keys} keys\n", run.stdout)
    assert_no_key(run.stdout + run.stderr)


@pytest.mark.parametrize("path", BAD_AS_PROCESS, ids=[path.stem for path in BAD_AS_PROCESS])
def test_config_check_bad(checked: dict[Path, Run], path: Path) -> None:
    run = checked[path]
    assert run.code == 1
    assert run.stdout == ""
    assert re.search(rf"configuration is invalid: {re.escape(str(path))}(:\d+)?: ", run.stderr)
    assert expected_error(path) in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("path", BAD, ids=[path.stem for path in BAD])
def test_config_check_function_bad(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_config_check(str(path)) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert re.match(rf"configuration is invalid: {re.escape(str(path))}(:\d+)?: ", err), err
    assert expected_error(path) in err


def test_config_check_never_prints_a_key(key_files: Path) -> None:
    """Configurations next to key files, good and bad, and the key files themselves passed as
    the configuration by mistake: the key never reaches stdout or stderr."""
    env_file = key_files / ".env"
    key_file = key_files / "keys" / "web"
    yaml_env = write(key_files / "yaml.env", f"OPENAI_API_KEY: {KEY}\n")
    configs = {
        "good": f"keys:\n  - name: web\n    api_key_file: {key_file}\n"
        f"  - name: relay\n    dotenv: {env_file}\n",
        "bad probe": f"keys:\n  - name: web\n    api_key_file: {key_file}\n    probes: [x]\n",
        "key as api_key_env": f"keys:\n  - name: web\n    api_key_env: {KEY}\n",
        "key as api_key_file": f"keys:\n  - name: web\n    api_key_file: {KEY}\n",
    }
    paths = {
        name: write(key_files / f"{i}.yml", text) for i, (name, text) in enumerate(configs.items())
    }
    paths |= {".env as config": env_file, "key file as config": key_file, "yaml.env": yaml_env}
    # The in-process checks above cover the other mistakes; these need a real process's output.
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = dict(
            zip(
                paths,
                pool.map(
                    lambda path: config_check(path, key_files, {"OPENAI_API_KEY": KEY}),
                    paths.values(),
                ),
                strict=True,
            )
        )
    for name, run in runs.items():
        assert run.code == (0 if name == "good" else 1), (name, run.stderr)
        assert_no_key(run.stdout + run.stderr)


def test_credentials_in_a_url_are_never_quoted_back() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(str(TESTDATA / "bad" / "base-url-credentials.yml"))
    assert "hunter2" not in str(caught.value)
    assert "proxy-user" not in str(caught.value)
