"""A key's settings built in code for tests that hand the key to a probe themselves."""

from __future__ import annotations

from typing import Any

from exporter.config import KeyConfig
from exporter.keys import KeySource, SourceKind

# A source the probe never reads: these tests pass the key itself.
UNUSED_SOURCE = KeySource(SourceKind.ENV, "UNUSED")


def key_config(name: str, **settings: Any) -> KeyConfig:
    """A KeyConfig named `name` with `settings` over the defaults; its source is never read."""
    settings.setdefault("source", UNUSED_SOURCE)
    return KeyConfig(name=name, **settings)
