"""The runbook served by the exporter (/runbook, /runbook/fr) from the package, and every link
the exporter and its generated files emit pointing at `<--web.external-url>/runbook#<anchor>`."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import httpx
import pytest
import yaml

from exporter.links import PUBLISHED_RUNBOOK_URL, RUNBOOK_LANGUAGES, Links, parse_external_url
from exporter.runbook_pages import RunbookMissing, load_runbook_pages, page_file
from exporter.simulator import make_key
from tests.harness import (
    REPO,
    Process,
    exporter_command,
    start_exporter_process,
    start_simulator_process,
    write_config,
    write_key,
)
from tests.support.runbook import RUNBOOK_EN, RUNBOOK_FR, anchors, sections

SOURCES = {"en": RUNBOOK_EN, "fr": RUNBOOK_FR}
EXTERNAL = "https://keys.ops.test:8443/exporter"
GENERATOR = REPO / "docs" / "generate.py"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_generate", GENERATOR)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def render_page(language: str) -> str:
    """The page as docs/generate.py renders it from the Markdown now."""
    rendered: str = _generator().render_page(language)
    return rendered


def test_the_committed_pages_are_what_the_generator_writes() -> None:
    checked = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stderr
    for language in RUNBOOK_LANGUAGES:
        committed = (REPO / "exporter" / "docs" / page_file(language)).read_text()
        assert committed == render_page(language)


def test_the_exporter_never_loads_a_markdown_parser() -> None:
    """The pages are rendered at build time: markdown-it is a test dependency, not a runtime one."""
    probe = "import sys, exporter.cli, exporter.server; print('markdown_it' in sys.modules)"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "False"


def test_a_page_missing_from_the_package_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import exporter.runbook_pages as pages

    monkeypatch.setitem(pages.RUNBOOK_LANGUAGES, "xx", "runbook.xx.md")
    with pytest.raises(RunbookMissing, match=r"exporter/docs/runbook\.xx\.html is not in the"):
        load_runbook_pages()


@pytest.mark.parametrize("language", sorted(RUNBOOK_LANGUAGES))
def test_the_page_keeps_every_anchor_and_needs_no_javascript(language: str) -> None:
    page = render_page(language)
    ids = re.findall(r'id="([a-z0-9-]+)"', page)
    assert ids == anchors(SOURCES[language])
    assert "key-invalid" in ids
    assert "<script" not in page.lower()
    assert f'<html lang="{language}">' in page
    # Markdown was rendered, not shown raw: headings, code blocks, tables.
    assert "<h2>" in page and "<pre><code" in page and "<table>" in page
    assert "\n## " not in page
    # Links between the two files become links between the two pages.
    assert 'href="runbook.fr.md"' not in page and 'href="runbook.md"' not in page
    other = "/runbook/fr" if language == "en" else "/runbook"
    assert f'href="{other}"' in page


def test_every_language_is_rendered_at_start() -> None:
    pages = load_runbook_pages()
    assert set(pages.pages) == set(RUNBOOK_LANGUAGES)


def test_the_built_package_ships_both_runbooks(tmp_path: Path) -> None:
    """A wheel built from this tree holds both pages, rendered from docs/runbook*.md."""
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("openai_key_exporter-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        for language in RUNBOOK_LANGUAGES:
            name = page_file(language)
            shipped = archive.read(f"exporter/docs/{name}").decode()
            assert shipped == render_page(language), f"exporter/docs/{name} differs"


@pytest.mark.parametrize(
    "text",
    ["exporter.test:10077", "/runbook", "ftp://exporter.test", "http://", "https://x.test/?a=1"],
)
def test_a_bad_external_url_is_refused_at_start_naming_the_flag(text: str) -> None:
    started = subprocess.run(
        exporter_command("--web.external-url", text, "--config.check"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode == 2
    assert "--web.external-url" in started.stderr
    assert "http(s) URL" in started.stderr or "query or fragment" in started.stderr


def test_external_url_is_kept_without_its_trailing_slash() -> None:
    assert parse_external_url("https://keys.ops.test/exporter/") == "https://keys.ops.test/exporter"
    links = Links(parse_external_url("http://[::1]:10077"))
    assert links.runbook("key-invalid") == "http://[::1]:10077/runbook#key-invalid"
    assert links.runbook("key-invalid", "fr") == "http://[::1]:10077/runbook/fr#key-invalid"


def _revoked_key_setup(tmp_path: Path, seed: str) -> tuple[Process, Path]:
    """A simulator process and a config whose one key, `revoked`, the simulator rejects."""
    simulator, base_url = start_simulator_process(tmp_path)
    bad = write_key(tmp_path, "revoked", make_key("invalid_api_key", seed=seed))
    config = write_config(
        tmp_path / "config.yml",
        base_url,
        [{"name": "revoked", "api_key_file": str(bad)}],
        probes=("rest",),
    )
    return simulator, config


def test_the_running_exporter_serves_and_links_its_runbook(tmp_path: Path) -> None:
    simulator, config = _revoked_key_setup(tmp_path, seed="served")
    process, url = start_exporter_process(config, tmp_path, "--web.external-url", EXTERNAL)
    try:
        for path, language in (("/runbook", "en"), ("/runbook/fr", "fr")):
            response = httpx.get(f"{url}{path}", timeout=10)
            assert response.status_code == 200
            assert response.headers["content-type"] == "text/html; charset=utf-8"
            assert response.text == render_page(language)  # the Markdown of this version
        status = httpx.get(f"{url}/", timeout=10).text
        assert f'href="{EXTERNAL}/runbook#key-invalid"' in status
        assert f'href="{EXTERNAL}/runbook"' in status
    finally:
        process.stop()
        simulator.stop()
    log = process.output()
    assert f"runbook={EXTERNAL}/runbook#key-invalid" in log, log[-3000:]
    assert "github.com" not in log


def test_check_links_to_the_same_address(tmp_path: Path) -> None:
    simulator, config = _revoked_key_setup(tmp_path, seed="check-link")
    try:
        checked = subprocess.run(
            exporter_command("--config.file", str(config), "check", "--web.external-url", EXTERNAL),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        simulator.stop()
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert f"read: {EXTERNAL}/runbook#key-invalid" in checked.stdout, checked.stdout


def _shipped_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [REPO / name for name in listed if (REPO / name).is_file()]


def test_no_shipped_file_links_to_the_repository_address_nobody_runs() -> None:
    nowhere = "github.com/" + "openai-key-exporter"  # split: this file is shipped too
    for path in _shipped_files():
        if path.suffix not in {".py", ".md", ".yml", ".yaml", ".json", ".toml", ".sh"}:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        assert nowhere not in text, path.relative_to(REPO)


def test_generated_rules_and_dashboards_link_to_the_served_runbook() -> None:
    sections = set(anchors(RUNBOOK_EN))
    for name in ("openai-key-exporter.rules.yml", "openai-key-application.rules.yml"):
        rules = yaml.safe_load((REPO / "alerts" / name).read_text())
        for group in rules["groups"]:
            for rule in group["rules"]:
                base, _, anchor = rule["annotations"]["runbook_url"].partition("#")
                assert base == PUBLISHED_RUNBOOK_URL, rule["alert"]
                assert anchor in sections, rule["alert"]
    for dashboard in (REPO / "grafana" / "dashboards").glob("*.json"):
        assert f'"query": "{PUBLISHED_RUNBOOK_URL}"' in dashboard.read_text(), dashboard.name


def test_kubernetes_generator_takes_the_addresses(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "deploy" / "kubernetes"))
    try:
        import generate as kubernetes_generate  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    rendered = kubernetes_generate.render(
        "https://exporter.ops.test/runbook", "https://grafana.ops.test"
    )
    rule = rendered[kubernetes_generate.PROMETHEUS_RULE]
    assert "runbook_url: https://exporter.ops.test/runbook#key-invalid" in rule
    assert "https://grafana.ops.test/d/openai-key-detail" in rule
    assert "localhost:10077" not in rule
    dashboards = rendered[kubernetes_generate.DASHBOARD_CONFIGMAPS]
    assert "https://exporter.ops.test/runbook" in dashboards
    assert "localhost:10077" not in dashboards
    deployment = (REPO / "deploy" / "kubernetes" / "base" / "deployment.yaml").read_text()
    assert f"--web.external-url={PUBLISHED_RUNBOOK_URL.removesuffix('/runbook')}" in deployment
    compose = (REPO / "deploy" / "compose" / "compose.yaml").read_text()
    assert compose.count("--web.external-url=http://localhost:10077") == 2


def test_the_container_build_checks_the_runbook_loads() -> None:
    """The image is built from exporter/ alone (the pages are in it); the build fails if the
    runbook does not load."""
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^COPY exporter \./exporter$", dockerfile, re.M)
    assert "load_runbook_pages()" in dockerfile


@pytest.mark.parametrize("language", sorted(RUNBOOK_LANGUAGES))
def test_the_runbook_has_what_the_seed_runbook_taught(language: str) -> None:
    """The restart after fixing a key, the log lines that prove recovery, and logging the
    WebSocket close code and reason, in both languages."""
    section = sections(SOURCES[language])["application-restart"]
    for line in (
        "OpenAI Realtime API connected",
        "Session update sent",
        "Session updated confirmed",
    ):
        assert f"`{line}`" in section
    assert (
        "restart-with-logs.sh" in section and "openai_key_last_change_timestamp_seconds" in section
    )
    assert 'ws.on("close", (code, reason)' in section
    invalid = sections(SOURCES[language])["key-invalid"]
    assert "(#application-restart)" in invalid and "(#key-format-issue)" in invalid
