"""The status page (/) read in a real browser: Debian's chromium, headless, dumps the DOM the
running exporter served, and takes a screenshot kept under test-artifacts/."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from exporter.classify import Result
from exporter.config import load_config
from exporter.links import Links
from exporter.result import ProbeResult
from exporter.service import Exporter
from exporter.simulator import make_key
from exporter.state import KeyIdentity
from exporter.status_page import MAX_ROWS, status_page
from tests.conftest import require_tool
from tests.harness import (
    REPO,
    assert_no_secret,
    start_exporter_process,
    start_simulator_process,
    write_config,
    write_key,
)

EXTERNAL = "http://status.ops.test:10077"
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", REPO / "test-artifacts"))


class _Rows(HTMLParser):
    """Rows of the keys table as the browser built them: attributes and each cell's text/links."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, object]] = []
        self.scripts = 0
        self.summary = ""
        self.refresh = ""
        self._cell: str | None = None
        self._in_summary = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag == "meta" and found.get("http-equiv") == "refresh":
            self.refresh = found.get("content") or ""
        if tag == "p" and found.get("id") == "summary":
            self._in_summary = True
        if tag == "tr" and "data-key" in found:
            self.rows.append(
                {"name": found["data-key"], "probe": found["data-probe"], "class": found["class"]}
            )
        if tag == "td" and self.rows and found.get("class"):
            self._cell = found["class"]
            self.rows[-1][self._cell] = ""  # cells by class: key, state, cause, runbook...
            self.rows[-1][f"{self._cell}_links"] = []
        if tag == "a" and self._cell is not None:
            links = self.rows[-1][f"{self._cell}_links"]
            assert isinstance(links, list)
            links.append(found.get("href"))

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._cell = None
        if tag == "p":
            self._in_summary = False

    def handle_data(self, data: str) -> None:
        if self._in_summary:
            self.summary += data
        if self._cell is not None and self.rows:
            self.rows[-1][self._cell] = str(self.rows[-1][self._cell]) + data


def _chromium(url: str, screenshot: Path) -> str:
    browser = require_tool("chromium")
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    common += ["--user-data-dir=" + str(screenshot.parent / "chromium-profile")]
    dom = subprocess.run(
        [*common, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=False
    )
    assert dom.returncode == 0 and "<table" in dom.stdout, dom.stderr[-2000:]
    shot = subprocess.run(
        [*common, "--window-size=1600,900", f"--screenshot={screenshot}", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert shot.returncode == 0 and screenshot.stat().st_size > 10_000, shot.stderr[-2000:]
    return dom.stdout


def test_the_status_page_names_the_cause_in_a_real_browser(tmp_path: Path) -> None:
    simulator, base_url = start_simulator_process(tmp_path)
    keys = {
        "healthy": make_key("ok", seed="status-ok"),
        "revoked": make_key("invalid_api_key", seed="status-bad"),
        "quoted": make_key("ok", seed="status-quoted"),  # fine, but sent with its quotes
        "flaky": make_key("server_error", seed="status-5xx"),
    }
    # A directory name with markup: the page must print it, not obey it.
    app = tmp_path / 'app<i>&"x'
    app.mkdir()
    dotenv = app / ".env"
    dotenv.write_text(f'OPENAI_API_KEY="{keys["quoted"]}"\n')
    dotenv.chmod(0o600)
    entries: list[dict[str, object]] = [
        {"name": "quoted", "dotenv": str(dotenv), "dotenv_format": "literal"}
    ]
    for name in ("healthy", "revoked", "flaky"):
        entries.append({"name": name, "api_key_file": str(write_key(tmp_path, name, keys[name]))})
    config = write_config(tmp_path / "config.yml", base_url, entries, probes=("rest",))
    process, url = start_exporter_process(config, tmp_path, "--web.external-url", EXTERNAL)
    try:
        # Two failures in a row for the failing keys, so "since" and the probe count mean something.
        deadline = time.monotonic() + 30
        while True:
            metrics = httpx.get(f"{url}/metrics", timeout=5).text
            if 'openai_probe_consecutive_failures{key="revoked",probe="rest"} 2' in metrics:
                break
            assert time.monotonic() < deadline, metrics[-2000:]
            time.sleep(0.2)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        screenshot = ARTIFACTS / "status-page.png"
        dom = _chromium(f"{url}/", screenshot)
        shutil.copy(screenshot, tmp_path / "status-page.png")
        served = httpx.get(f"{url}/", timeout=5)
    finally:
        process.stop()
        simulator.stop()
    (ARTIFACTS / "status-page.html").write_text(dom)

    page = _Rows()
    page.feed(dom)
    assert page.scripts == 0 and "<script" not in served.text  # nothing to run
    assert served.headers["Cache-Control"] == "no-store"
    assert page.refresh.isdigit()
    assert page.summary == "4 keys, 2 failing, 1 unsure, 0 not probed yet", page.summary
    rows = {str(row["name"]): row for row in page.rows}
    assert set(rows) == set(keys) and all(row["probe"] == "rest" for row in page.rows)
    # Failing first, then unsure, then ok.
    order = [str(row["class"]) for row in page.rows]
    assert order == sorted(order, key=["failing", "unsure", "pending", "ok"].index)

    healthy = rows["healthy"]
    assert healthy["class"] == "ok" and str(healthy["state"]).strip() == "OK"
    assert healthy["cause"] == "OpenAI accepted the key" and healthy["runbook"] == "-"

    revoked = rows["revoked"]
    assert str(revoked["state"]).strip() == "FAILING" and revoked["result"] == "invalid_api_key"
    assert str(revoked["cause"]).startswith("OpenAI rejected the key")
    assert revoked["runbook_links"] == [f"{EXTERNAL}/runbook#key-invalid"]
    assert re.search(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(\d+s ago\), [2-9] probes", str(revoked["since"])
    )
    assert re.fullmatch(r"\d+s ago", str(revoked["age"])), revoked["age"]
    assert re.fullmatch(r"\d+\.\d{3} s", str(revoked["duration"]))

    # The root cause first: the quotes, named with the file they are in, then the rejection.
    quoted = rows["quoted"]
    assert quoted["class"] == "failing" and quoted["result"] == "invalid_api_key"
    assert quoted["cause"] == (
        f"The value in {dotenv} is wrapped in quotes: OpenAI receives them; "
        "OpenAI rejected the key (wrong, revoked or deleted)"
    )
    assert str(quoted["findings"]).startswith("surrounding_quotes")
    assert "dotenv_quoted_value" in str(quoted["findings"])
    assert quoted["runbook_links"] == [
        f"{EXTERNAL}/runbook#key-format-issue",
        f"{EXTERNAL}/runbook#key-invalid",
    ]
    assert str(quoted["key"]).startswith("quoted") and "value changed" in str(quoted["key"])
    assert 'app&lt;i&gt;&amp;"x' in served.text or "app&lt;i&gt;&amp;&quot;x" in served.text
    assert "<i>" not in served.text.split("<body>")[1]

    flaky = rows["flaky"]
    assert flaky["class"] == "unsure" and str(flaky["state"]).strip() == "UNSURE"
    assert flaky["runbook_links"] == [f"{EXTERNAL}/runbook#upstream-server-error"]

    assert_no_secret(dom + served.text, list(keys.values()), "status page")


def _exporter_with(count: int, failing_every: int) -> Exporter:
    exporter = Exporter(None)
    exporter.store.configure({f"key-{index:05d}": ("rest",) for index in range(count)})
    identity = KeyIdentity("sk-proj-...abcd", "project")
    for index in range(count):
        result = Result.INVALID_API_KEY if index % failing_every == 0 else Result.OK
        probe = ProbeResult("rest", result, duration=0.2, started_at=1_700_000_000 + index)
        exporter.store.record(f"key-{index:05d}", identity, probe)
    return exporter


def test_ten_thousand_keys_give_a_bounded_page_failing_first() -> None:
    exporter = _exporter_with(10_000, failing_every=97)
    started = time.perf_counter()
    page = status_page(exporter, "/metrics", Links(EXTERNAL), now=1_700_100_000)
    elapsed = time.perf_counter() - started
    rows = re.findall(r'<tr class="([a-z]+)" data-key="([^"]+)"', page)
    assert len(rows) == MAX_ROWS
    failing = [key for state, key in rows if state == "failing"]
    assert len(failing) == 104  # every failing key, before any healthy one
    assert [state for state, _ in rows[:104]] == ["failing"] * 104
    assert "10000 keys, 104 failing" in page
    assert f"Showing the first {MAX_ROWS} of 10000 rows" in page
    assert len(page) < 1_000_000 and elapsed < 2.0, (len(page), elapsed)


def test_an_exporter_without_configuration_shows_an_empty_table() -> None:
    page = status_page(Exporter(None), "/metrics", Links(EXTERNAL))
    assert "0 keys, 0 failing" in page and "<tbody></tbody>" in page


def test_sources_come_from_the_configuration(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("OPENAI_API_KEY=' sk-proj-x'\n")
    config_path = write_config(
        tmp_path / "c.yml",
        "http://127.0.0.1:9/v1",
        [{"name": "app", "dotenv": str(env), "dotenv_format": "literal"}],
        probes=("rest",),
    )
    exporter = Exporter(str(config_path))
    exporter.switch_to(load_config(str(config_path)))
    exporter.store.record(
        "app",
        KeyIdentity("sk-proj-...x", "project", ("surrounding_quotes",)),
        ProbeResult("rest", Result.INVALID_API_KEY),
    )
    page = status_page(exporter, "/metrics", Links(EXTERNAL))
    assert f"The value in {env} is wrapped in quotes: OpenAI receives them" in page


@pytest.mark.parametrize("word", ["failing", "unsure", "pending", "ok"])
def test_every_state_has_a_colour_and_a_word(word: str) -> None:
    from exporter.status_page import _STATES

    rank, colour = _STATES[word]
    assert re.fullmatch(r"#[0-9a-f]{6}", colour) and rank >= 0
