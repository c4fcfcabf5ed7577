"""The state file: each key's last result and failure count across a restart; whatever cannot
be used is ignored with a warning, file by file or entry by entry, never a crash."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest

from exporter.classify import Result
from exporter.metrics import render_key
from exporter.result import ProbeResult
from exporter.state import KeyIdentity, StateStore
from exporter.state_file import FILE_NAME, FORMAT_VERSION, StateFile

KEY = "sk-proj-" + "Zq8" * 52  # what must never reach the file


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    """Messages and their fields, as the log line shows them."""
    return "\n".join(f"{r.getMessage()} {getattr(r, 'fields', {})}" for r in caplog.records)


def _store(*names: str, probes: tuple[str, ...] = ("rest", "realtime")) -> StateStore:
    store = StateStore()
    store.configure({name: probes for name in names})
    return store


def _fail(store: StateStore, name: str, probe: str, times: int, result: Result) -> None:
    identity = KeyIdentity(fingerprint="sk-proj-...Zq8Z", kind="project")
    for _ in range(times):
        store.record(
            name,
            identity,
            ProbeResult(probe, result, http_status=401, error_code=result.value, started_at=1000.0),
        )


def _written(tmp_path: Path) -> tuple[StateStore, StateFile]:
    store = _store("web", "voice")
    state_file = StateFile(str(tmp_path), store)
    _fail(store, "web", "rest", 2, Result.INVALID_API_KEY)
    store.record("voice", KeyIdentity(), ProbeResult("rest", Result.OK, started_at=2000.0))
    state_file.write()
    return store, state_file


def test_a_restart_brings_back_results_failures_and_validity(tmp_path: Path) -> None:
    _written(tmp_path)
    store = _store("web", "voice")
    assert StateFile(str(tmp_path), store).restore() == 2
    web = store.get("web")
    assert web is not None and web.rest is not None and web.rest.last is not None
    assert (web.rest.last.result, web.rest.consecutive_failures) == (Result.INVALID_API_KEY, 2)
    assert web.rest.last.requests_made == 0  # sent by the previous process
    assert (web.valid, web.identity.fingerprint) == (False, "sk-proj-...Zq8Z")
    assert web.realtime is not None and web.realtime.last is None  # never probed: not invented
    text = b"".join(render_key(web)).decode()
    assert 'openai_probe_consecutive_failures{key="web",probe="rest"} 2' in text
    assert 'openai_probe_result{key="web",probe="rest",result="invalid_api_key"} 1' in text
    voice = store.get("voice")
    assert voice is not None and voice.rest is not None and voice.rest.last_success_at == 2000.0


def test_the_file_is_private_complete_and_holds_no_key(tmp_path: Path) -> None:
    _written(tmp_path)
    path = tmp_path / FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(path.read_text())
    assert document["version"] == FORMAT_VERSION
    assert set(document["keys"]) == {"web", "voice"}
    assert KEY not in path.read_text() and KEY[8:20] not in path.read_text()
    assert [name for name in os.listdir(tmp_path) if name != FILE_NAME] == []  # no temporary


def test_a_probe_already_run_by_this_process_is_not_overwritten(tmp_path: Path) -> None:
    _written(tmp_path)
    store = _store("web")
    store.record("web", KeyIdentity(), ProbeResult("rest", Result.OK))
    StateFile(str(tmp_path), store).restore()
    web = store.get("web")
    assert web is not None and web.rest is not None and web.rest.last is not None
    assert web.rest.last.result is Result.OK and web.rest.consecutive_failures == 0


@pytest.mark.parametrize(
    ("contents", "problem"),
    [
        (b"", "not JSON"),
        (b'{"version": 1, "keys": {"web": {"probes": {"rest": {"res', "not JSON"),
        (b"\x00\xff garbage", "not JSON"),
        (b'{"version": 2, "keys": {}}', "format version 2"),
        (b'["version", 1]', "format version None"),
    ],
)
def test_an_unusable_file_is_a_warning_and_a_fresh_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, contents: bytes, problem: str
) -> None:
    (tmp_path / FILE_NAME).write_bytes(contents)
    store = _store("web")
    with caplog.at_level(logging.WARNING, logger="exporter.state_file"):
        assert StateFile(str(tmp_path), store).restore() == 0
    assert "state file ignored" in caplog.text and problem in _logged(caplog)
    web = store.get("web")
    assert web is not None and web.rest is not None and web.rest.last is None


def test_a_missing_file_or_directory_is_no_problem(tmp_path: Path) -> None:
    store = _store("web")
    assert StateFile(str(tmp_path / "not" / "yet"), store).restore() == 0
    state_file = StateFile(str(tmp_path / "not" / "yet"), store)
    state_file.write()  # the directory is made
    assert (tmp_path / "not" / "yet" / FILE_NAME).exists()


def test_an_unwritable_directory_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING, logger="exporter.state_file"):
        StateFile(str(blocker), _store("web")).write()
    assert "state file not written" in caplog.text


def test_entries_are_ignored_key_by_key(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = {
        "result": "invalid_api_key",
        "consecutive_failures": 3,
        "started_at": 5.0,
        "duration": 0.1,
        "a_field_from_a_later_version": "ignored",
    }
    document = {
        "version": FORMAT_VERSION,
        "keys": {
            "web": {"probes": {"rest": good, "realtime": {**good, "result": "no_such_class"}}},
            "voice": {"probes": {"rest": {**good, "consecutive_failures": -1}}},
            "batch": {"probes": {"inference": good}},  # not configured for this key
            "gone": {"probes": {"rest": good}},  # no longer configured
            "odd": "not a record",
        },
    }
    (tmp_path / FILE_NAME).write_text(json.dumps(document))
    store = _store("web", "voice", "batch", "odd")
    with caplog.at_level(logging.WARNING, logger="exporter.state_file"):
        assert StateFile(str(tmp_path), store).restore() == 1
    web = store.get("web")
    assert web is not None and web.rest is not None and web.rest.consecutive_failures == 3
    assert web.realtime is not None and web.realtime.last is None
    for name in ("voice", "batch"):
        state = store.get(name)
        assert state is not None and all(p.last is None for p in state.probes.values())
    assert caplog.text.count("state file entry ignored") == 4
    assert "no longer configured" in caplog.text and "gone" in _logged(caplog)


def test_writes_follow_changes_of_result_or_count_only(tmp_path: Path) -> None:
    store = _store("web")
    state_file = StateFile(str(tmp_path), store)
    store.record("web", KeyIdentity(), ProbeResult("rest", Result.OK))
    assert state_file._dirty
    state_file.write()
    store.record("web", KeyIdentity(), ProbeResult("rest", Result.OK))  # nothing to keep
    assert not state_file._dirty
    _fail(store, "web", "rest", 1, Result.TIMEOUT)
    assert state_file._dirty


async def test_the_file_holds_no_key_after_real_probes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Probes whose answers quote the key (an invalid key's message) leave no piece of it."""
    from exporter.config import KeyConfig
    from exporter.keys import KeySource, SourceKind
    from exporter.probes.inference import InferenceProber
    from exporter.probes.realtime import RealtimeProber
    from exporter.probes.rest import RestProber
    from exporter.runner import ProbeRunner
    from exporter.simulator import make_key, start_simulator
    from tests.harness import assert_no_secret

    simulator = await start_simulator()
    store = _store("leaky", probes=("rest", "realtime", "inference"))
    state_file = StateFile(str(tmp_path), store)
    runner = ProbeRunner(
        store,
        {"rest": RestProber(), "realtime": RealtimeProber(), "inference": InferenceProber()},
    )
    key = make_key("invalid_api_key", seed="state-file-leak")
    monkeypatch.setenv("STATE_FILE_LEAK_KEY", key)
    config = KeyConfig(
        name="leaky",
        source=KeySource(SourceKind.ENV, "STATE_FILE_LEAK_KEY"),
        base_url=simulator.base_url,
        timeout=3.0,
        probes=("rest", "realtime", "inference"),
    )
    try:
        for probe in config.probes:
            result = await runner.run(config, probe)
            assert result.result is Result.INVALID_API_KEY, result
    finally:
        await runner.aclose()
        await simulator.close()
    state_file.write()
    text = (tmp_path / FILE_NAME).read_text()
    assert "Incorrect API key provided" in text  # the message is kept, scrubbed
    assert_no_secret(text, [key], "the state file")


def test_since_when_and_the_key_change_time_survive_a_restart(tmp_path: Path) -> None:
    store = _store("web")
    state_file = StateFile(str(tmp_path), store)
    digest = KeyIdentity(fingerprint="sk-proj-...Zq8Z", kind="project", value_digest=b"one")
    for started in (1000.0, 1060.0, 1120.0):
        store.record(
            "web",
            digest,
            ProbeResult("rest", Result.INVALID_API_KEY, http_status=401, started_at=started),
            lambda _previous: 900.0,  # the file's mtime
            read_at=started,
        )
    state_file.write()
    assert KEY not in (tmp_path / FILE_NAME).read_text()

    restored = _store("web")
    assert StateFile(str(tmp_path), restored).restore() == 1
    web = restored.get("web")
    assert web is not None and web.rest is not None
    assert (web.rest.result_since, web.rest.result_probes, web.key_changed_at) == (1000.0, 3, 900.0)
    # The same value read again by the new process (the file keeps no digest): not a change.
    restored.record(
        "web",
        KeyIdentity(fingerprint="sk-proj-...Zq8Z", kind="project", value_digest=b"one"),
        ProbeResult("rest", Result.INVALID_API_KEY, http_status=401, started_at=1180.0),
        lambda _previous: 1180.0,
        read_at=1180.0,
    )
    assert (web.rest.result_since, web.rest.result_probes, web.key_changed_at) == (1000.0, 4, 900.0)
    text = b"".join(render_key(web)).decode()
    assert 'openai_probe_result_since_timestamp_seconds{key="web",probe="rest"} 1000' in text
    # A different key afterwards is a change, at the time the source says.
    restored.record(
        "web",
        KeyIdentity(fingerprint="sk-proj-...AAAA", kind="project", value_digest=b"two"),
        ProbeResult("rest", Result.OK, http_status=200, started_at=1240.0),
        lambda _previous: 1230.0,
        read_at=1240.0,
    )
    assert (web.rest.result_since, web.rest.result_probes, web.key_changed_at) == (
        1240.0,
        1,
        1230.0,
    )


def test_a_file_from_before_the_streak_fields_counts_from_the_restored_probe(
    tmp_path: Path,
) -> None:
    record = {"result": "invalid_api_key", "consecutive_failures": 2, "started_at": 1000.0}
    document = {"version": FORMAT_VERSION, "keys": {"web": {"probes": {"rest": record}}}}
    (tmp_path / FILE_NAME).write_text(json.dumps(document))
    store = _store("web")
    assert StateFile(str(tmp_path), store).restore() == 1
    web = store.get("web")
    assert web is not None and web.rest is not None
    assert (web.rest.result_since, web.rest.result_probes, web.key_changed_at) == (1000.0, 1, None)


def test_an_azure_key_keeps_its_provider_across_a_restart(tmp_path: Path) -> None:
    store = _store("resource")
    state_file = StateFile(str(tmp_path), store)
    identity = KeyIdentity(fingerprint="0123abcd...cdef", kind="azure", provider="azure")
    store.record("resource", identity, ProbeResult("rest", Result.OK, started_at=1000.0))
    state_file.write()
    restored = _store("resource")
    assert StateFile(str(tmp_path), restored).restore() == 1
    state = restored.get("resource")
    assert state is not None and state.identity.provider == "azure"
    assert 'provider="azure"' in b"".join(render_key(state)).decode()
