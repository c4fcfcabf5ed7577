"""Who issued a key (OpenAI or an Azure OpenAI resource): how it is sent, what it looks like,
and the configuration mistakes that mix the two."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

PROVIDERS = ("openai", "azure")
DEFAULT_PROVIDER = "openai"
# Azure OpenAI resource keys: 32 hex characters (older resources) or 84 alphanumeric ones.
_AZURE_KEY = re.compile(r"[0-9a-fA-F]{32}|[A-Za-z0-9]{84}")
_OPENAI_HOST = re.compile(r"^https?://api\.openai\.com(?::\d+)?(?:/|$)", re.IGNORECASE)


class KeySettings(Protocol):
    """What of a key's configuration (config.KeyConfig) decides its headers and its warnings;
    a protocol, so that config.py can use this module without an import cycle."""

    @property
    def provider(self) -> str: ...
    @property
    def base_url(self) -> str: ...
    @property
    def organization(self) -> str | None: ...
    @property
    def project(self) -> str | None: ...


def key_header(provider: str, key: str) -> dict[str, str]:
    """The one place that decides how a key travels: every probe (REST, Realtime, Live,
    inference) sends what this returns. An Azure key goes in `api-key` and never in
    Authorization; an OpenAI key goes in `Authorization: Bearer`."""
    # The wire drops whitespace at the end of a header value; some clients refuse to send it.
    if provider == "azure":
        return {"api-key": key.rstrip(" \t")}
    return {"Authorization": f"Bearer {key}".rstrip(" \t")}


def auth_headers(config: KeySettings, key: str) -> dict[str, str]:
    """The key's header, and OpenAI's organization and project headers where set (Azure has
    none: a resource's key is its own scope)."""
    headers = key_header(config.provider, key)
    if config.provider == "azure":
        return headers
    if config.organization:
        headers["OpenAI-Organization"] = config.organization
    if config.project:
        headers["OpenAI-Project"] = config.project
    return headers


def is_azure_key_shape(key: str) -> bool:
    return _AZURE_KEY.fullmatch(key) is not None


def config_warnings(source: str, keys: Sequence[KeySettings]) -> tuple[str, ...]:
    """Settings that work but are almost certainly a mistake: logged at every (re)load and shown
    by `check`, never a refusal (a proxy in front of Azure may look like anything)."""
    warnings = []
    for index, key in enumerate(keys):
        if key.provider != "azure":
            continue
        if _OPENAI_HOST.match(key.base_url):
            warnings.append(
                f"{source}: keys[{index}].base_url: {key.base_url} is OpenAI's own API,"
                " but provider is azure (set base_url to"
                " https://<resource>.openai.azure.com/openai/v1, or set provider: openai)"
            )
    return tuple(warnings)


OPENAI_KEY_FOR_AZURE_FIX = (
    "provider: azure, but the key starts with sk- (an OpenAI key, which an Azure resource refuses):"
    " point the key source at the resource's Key 1 or Key 2, or set provider: openai"
)


def is_openai_key(key: str) -> bool:
    """Every key OpenAI issues starts sk- (after any stray space or quote around it)."""
    return key.strip().strip("\"'`").startswith("sk-")
