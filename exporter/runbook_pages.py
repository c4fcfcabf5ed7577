"""The runbook pages the exporter serves (/runbook, /runbook/fr), shipped in the package.

docs/runbook.md and docs/runbook.fr.md are the source; docs/generate.py renders them with a
Markdown library into exporter/docs/runbook*.html, which the package ships, so every installed
copy serves the runbook of its own version, offline. Read once, at start: a page missing from
the package stops the exporter at start (and fails the tests), never a request at 3 a.m.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from exporter.links import RUNBOOK_LANGUAGES


class RunbookMissing(Exception):
    """A runbook page is not in the package (a broken build)."""


@dataclass(frozen=True)
class RunbookPages:
    """Each language's page: bytes ready to send."""

    pages: dict[str, bytes]

    def page(self, language: str) -> bytes | None:
        return self.pages.get(language)


def page_file(language: str) -> str:
    """The page's file inside the package, beside its Markdown source's name."""
    return RUNBOOK_LANGUAGES[language].removesuffix(".md") + ".html"


def load_runbook_pages() -> RunbookPages:
    """Every language's page; raises RunbookMissing when one is not in the package."""
    pages: dict[str, bytes] = {}
    for language in RUNBOOK_LANGUAGES:
        name = page_file(language)
        try:
            pages[language] = (resources.files("exporter") / "docs" / name).read_bytes()
        except OSError as error:
            raise RunbookMissing(
                f"exporter/docs/{name} is not in the installed package "
                f"({error.strerror or error}): reinstall openai-key-exporter, or check "
                "tool.setuptools.package-data"
            ) from None
    return RunbookPages(pages)
