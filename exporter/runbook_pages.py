"""The runbook as HTML pages (/runbook, /runbook/fr), rendered from the Markdown in the package.

docs/runbook.md and docs/runbook.fr.md are the source; exporter/docs/ links to them, so every
installed copy serves the runbook of its own version, offline. Rendered once, at start: a
missing or unreadable file stops the exporter at start (and fails the tests), never a request.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from importlib import resources

from markdown_it import MarkdownIt
from markdown_it.token import Token

from exporter.links import RUNBOOK_LANGUAGES, RUNBOOK_PATH

_TITLES = {"en": "openai-key-exporter runbook", "fr": "Runbook d'openai-key-exporter"}
_OTHER_LANGUAGE = {"en": ("fr", "Version française"), "fr": ("en", "English version")}
# Readable without JavaScript or any fetched asset; anchors stay below a short sticky bar.
_STYLE = """
body{font-family:system-ui,sans-serif;line-height:1.5;max-width:52rem;margin:0 auto;padding:0 1rem 4rem;color:#1b1b1b}
nav{position:sticky;top:0;background:#fff;border-bottom:1px solid #ddd;padding:.5rem 0;display:flex;gap:1.5rem}
h2{margin-top:2.5rem;border-top:1px solid #eee;padding-top:1rem}
h2,h3,a[id]{scroll-margin-top:3.5rem}
code{background:#f3f3f3;padding:0 .2em;border-radius:3px}
pre{background:#f3f3f3;padding:.8rem;overflow-x:auto}
pre code{padding:0}
table{border-collapse:collapse}
td,th{border:1px solid #ddd;padding:.3rem .6rem;text-align:left;vertical-align:top}
:target+h2{background:#fff6d5}
"""


class RunbookMissing(Exception):
    """A runbook file is not in the package (a broken build)."""


@dataclass(frozen=True)
class RunbookPages:
    """Each language's page, rendered: bytes ready to send."""

    pages: dict[str, bytes]

    def page(self, language: str) -> bytes | None:
        return self.pages.get(language)


def _markdown() -> MarkdownIt:
    # CommonMark, as GitHub renders docs/, with raw HTML kept: the section anchors are
    # `<a id="...">` lines in the Markdown. The runbook is our own file, not user input.
    return MarkdownIt("commonmark", {"html": True}).enable("table")


def runbook_text(language: str) -> str:
    """The Markdown of one language, from the package."""
    name = RUNBOOK_LANGUAGES[language]
    try:
        return (resources.files("exporter") / "docs" / name).read_text(encoding="utf-8")
    except OSError as error:
        raise RunbookMissing(
            f"exporter/docs/{name} is not in the installed package ({error.strerror or error}): "
            "reinstall openai-key-exporter, or check tool.setuptools.package-data"
        ) from None


def _served_links(tokens: list[Token]) -> None:
    """Links between the two Markdown files become links between the served pages."""
    targets = {file: _page_path(language) for language, file in RUNBOOK_LANGUAGES.items()}
    stack = list(tokens)
    while stack:
        token = stack.pop()
        stack.extend(token.children or ())
        if token.type != "link_open":
            continue
        href = str(token.attrGet("href") or "")
        file, sep, anchor = href.partition("#")
        if file in targets:
            token.attrSet("href", targets[file] + sep + anchor)


def _page_path(language: str) -> str:
    return RUNBOOK_PATH if language == "en" else f"{RUNBOOK_PATH}/{language}"


def render_page(language: str) -> str:
    markdown = _markdown()
    tokens = markdown.parse(runbook_text(language))
    _served_links(tokens)
    body = markdown.renderer.render(tokens, markdown.options, {})
    other, other_label = _OTHER_LANGUAGE[language]
    return f"""<!DOCTYPE html>
<html lang="{language}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(_TITLES[language])}</title>
<style>{_STYLE}</style></head><body>
<nav><a href="/">Status</a><a href="{_page_path(other)}" hreflang="{other}">{other_label}</a></nav>
<main>
{body}</main>
</body></html>
"""


def load_runbook_pages() -> RunbookPages:
    """Every language's page; raises RunbookMissing when a file is not in the package."""
    return RunbookPages({language: render_page(language).encode() for language in _TITLES})
