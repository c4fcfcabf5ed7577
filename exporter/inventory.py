"""The organization's key inventory from the Admin API: one pass per interval, matched to the
monitored keys by the head and tail OpenAI shows, and what it says about a rejected key.

Exposition (rendered once per pass, joined to every scrape as is):

    openai_admin_probe_success 1
    openai_admin_last_success_timestamp_seconds 1.7e9
    openai_admin_probe_result{result="ok"} 1
    openai_admin_requests_total 3
    openai_key_inventory_listed{key="web"} 1
    openai_key_inventory_matches{key="web"} 1
    openai_key_created_timestamp_seconds{key="web"} 1.7e9
    openai_key_expires_timestamp_seconds{key="web"} 1.8e9
    openai_key_owner_info{key="web",owner_type="service_account",owner="deploy-bot"} 1
    openai_project_api_keys{project="proj_abc",monitored="true"} 1
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import aiohttp
import yarl
from aiohttp.helpers import get_env_proxy_for_url

from exporter.classify import Result
from exporter.config import AdminConfig, Config, KeyConfig
from exporter.keys import key_kind, lint_key, read_key
from exporter.metrics import Family, escape_label_value
from exporter.redaction import SECRETS, redact, scrub
from exporter.result import ProbeResult

log = logging.getLogger("exporter.inventory")

ADMIN_KEY_NAME = " admin key"  # a space: no monitored key can have this name
PAGE_LIMIT = 100  # the largest page the Admin API serves
MAX_PAGES = 1000  # per listing: 100,000 keys in one project; a `has_more` that never ends stops
MAX_PAGE_BYTES = 8 * 1024 * 1024  # a page of 100 keys is about 40 KB
MAX_RATE_LIMIT_WAITS = 3  # per request; then the pass fails as rate_limited
MAX_RETRY_AFTER_S = 120.0
_OWNER_NAME_CHARS = 64
_KEY_CHARACTER = re.compile(r"[A-Za-z0-9_-]")
_PASTED_KEY = re.compile(r"sk-[A-Za-z0-9_-]{8,}")


class AdminResult(enum.StrEnum):
    """What the last inventory pass's admin calls gave."""

    OK = "ok"
    KEY_MISSING = "key_missing"  # no admin key in its source
    NOT_ADMIN_KEY = "not_admin_key"  # the source holds a project or user key: never sent
    INVALID_ADMIN_KEY = "invalid_admin_key"  # 401: wrong, revoked or deleted admin key
    INSUFFICIENT_PERMISSIONS = "insufficient_permissions"  # 403 or `Missing scopes`
    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"
    SERVER_ERROR = "server_error"
    PROTOCOL_ERROR = "protocol_error"  # not the list shape the Admin API documents


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """One `organization.project.api_key`, reduced to what the exporter publishes."""

    project: str
    id: str
    head: str  # the visible start of redacted_value
    tail: str  # the visible end
    redacted_value: str
    created_at: float | None
    expires_at: float | None
    owner_type: str  # user, service_account or other
    owner_name: str


def parse_redacted(value: object) -> tuple[str, str] | None:
    """The visible head and tail of a `redacted_value`, whatever hides the middle.

    `sk-abc...def`, `sk-proj-****…MxYA` and `sk-WRQsP****…xQBt` all split at the first and last
    character that cannot be part of a key. None when nothing is hidden or a side is empty:
    such an entry is listed but matches no key.
    """
    if not isinstance(value, str):
        return None
    start = 0
    while start < len(value) and _KEY_CHARACTER.match(value[start]):
        start += 1
    end = len(value)
    while end > start and _KEY_CHARACTER.match(value[end - 1]):
        end -= 1
    if start == len(value) or start == 0 or end == len(value):
        return None
    return value[:start], value[end:]


@dataclass(frozen=True)
class InventoryIndex:
    """Entries by (head length, tail length), then by (head, tail): matching a key is one
    dictionary look-up per redaction form present (usually one), never a scan of the entries."""

    entries: tuple[KeyEntry, ...]
    by_form: dict[tuple[int, int], dict[tuple[str, str], list[KeyEntry]]]

    @classmethod
    def build(cls, entries: Iterable[KeyEntry]) -> InventoryIndex:
        kept = tuple(entries)
        by_form: dict[tuple[int, int], dict[tuple[str, str], list[KeyEntry]]] = {}
        for entry in kept:
            if entry.head and entry.tail:
                form = by_form.setdefault((len(entry.head), len(entry.tail)), {})
                form.setdefault((entry.head, entry.tail), []).append(entry)
        return cls(kept, by_form)

    def matches(self, key: str, project: str | None) -> list[KeyEntry]:
        """The entries whose visible head and tail this key has, within `project` when given."""
        found: list[KeyEntry] = []
        for (head_length, tail_length), entries in self.by_form.items():
            if len(key) <= head_length + tail_length:
                continue  # the redacted part hides at least one character
            for entry in entries.get((key[:head_length], key[-tail_length:]), ()):
                if project is None or entry.project == project:
                    found.append(entry)
        return found


@dataclass(frozen=True)
class KeyMatch:
    """What the inventory says about one monitored key."""

    entries: tuple[KeyEntry, ...]

    @property
    def listed(self) -> bool:
        return bool(self.entries)

    @property
    def entry(self) -> KeyEntry | None:
        """The one entry it matches; None when none or several (reported, not guessed)."""
        return self.entries[0] if len(self.entries) == 1 else None


class AdminCallFailed(Exception):
    def __init__(self, result: AdminResult, message: str) -> None:
        super().__init__(message)
        self.result = result


@dataclass
class InventoryState:
    """The last good inventory and the last pass's outcome; a failed pass keeps the former."""

    index: InventoryIndex | None = None
    taken_at: float | None = None  # when the last good pass ended
    matches: dict[str, KeyMatch] = field(default_factory=dict)
    result: AdminResult | None = None
    message: str = ""
    requests_total: int = 0


class AdminClient:
    """The two list endpoints, paged to the end; 429 waits what `retry-after` asks, bounded."""

    def __init__(self, session: aiohttp.ClientSession, config: AdminConfig, admin_key: str) -> None:
        self._session = session
        self._config = config
        self._headers = {"Authorization": f"Bearer {admin_key}"}
        self._admin_key = admin_key
        self.requests = 0
        # HTTP(S)_PROXY and NO_PROXY, read once per pass as the REST probe reads them; never
        # ~/.netrc (aiohttp's trust_env), whose credentials must not meet the admin key.
        self._proxy: yarl.URL | None = None
        self._proxy_auth: aiohttp.BasicAuth | None = None
        with contextlib.suppress(LookupError):  # no proxy for this URL
            self._proxy, self._proxy_auth = get_env_proxy_for_url(yarl.URL(config.base_url))

    async def project_ids(self) -> list[str]:
        if self._config.projects:
            return list(self._config.projects)  # named projects: no listing needed
        return [str(item["id"]) async for item in self._pages("organization/projects")]

    async def api_keys(self, project: str) -> list[KeyEntry]:
        path = f"organization/projects/{project}/api_keys"
        return [_entry(project, item) async for item in self._pages(path)]

    async def _pages(self, path: str) -> AsyncIterator[Mapping[str, Any]]:
        after: str | None = None
        for _ in range(MAX_PAGES):
            page = await self._get(path, after)
            for item in page["data"]:
                if isinstance(item, Mapping) and isinstance(item.get("id"), str):
                    yield item
            if page.get("has_more") is not True:
                return
            last_id = page.get("last_id")
            if not isinstance(last_id, str) or not last_id or last_id == after:
                raise AdminCallFailed(
                    AdminResult.PROTOCOL_ERROR, f"{path}: has_more without a new last_id"
                )
            after = last_id
        raise AdminCallFailed(AdminResult.PROTOCOL_ERROR, f"{path}: more than {MAX_PAGES} pages")

    async def _get(self, path: str, after: str | None) -> Mapping[str, Any]:
        params = {"limit": str(PAGE_LIMIT)}
        if after is not None:
            params["after"] = after
        url = f"{self._config.base_url}/{path}"
        for _ in range(MAX_RATE_LIMIT_WAITS + 1):
            status, headers, body = await self._request(url, params)
            if status != 429:
                return _page(path, status, body)
            wait = _retry_after(headers)
            if wait is None or wait > MAX_RETRY_AFTER_S:
                break  # no hint, or one longer than a pass should wait: the next pass tries
            await asyncio.sleep(wait)
        raise AdminCallFailed(AdminResult.RATE_LIMITED, f"{path}: rate limited (429)")

    async def _request(
        self, url: str, params: Mapping[str, str]
    ) -> tuple[int, Mapping[str, str], bytes]:
        self.requests += 1
        try:
            async with asyncio.timeout(self._config.timeout):
                async with self._session.get(
                    url,
                    params=params,
                    headers=self._headers,
                    proxy=self._proxy,
                    proxy_auth=self._proxy_auth,
                ) as answer:
                    body = await answer.content.read(MAX_PAGE_BYTES + 1)
                    return answer.status, answer.headers, body
        except TimeoutError:
            raise AdminCallFailed(
                AdminResult.TIMEOUT, f"no answer within {self._config.timeout:g}s"
            ) from None
        except aiohttp.ClientError as error:
            message = scrub(f"{type(error).__name__}: {error}", [self._admin_key])
            raise AdminCallFailed(AdminResult.CONNECTION_ERROR, message) from None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        seconds = float(headers.get("retry-after", ""))
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _page(path: str, status: int, body: bytes) -> Mapping[str, Any]:
    if len(body) > MAX_PAGE_BYTES:
        raise AdminCallFailed(AdminResult.PROTOCOL_ERROR, f"{path}: answer larger than 8 MiB")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        document = None
    if status != 200:
        raise AdminCallFailed(
            _error_class(status, document), _error_message(path, status, document)
        )
    if not isinstance(document, Mapping) or not isinstance(document.get("data"), list):
        raise AdminCallFailed(AdminResult.PROTOCOL_ERROR, f"{path}: not a list answer")
    return document


def _error_class(status: int, document: object) -> AdminResult:
    error = document.get("error") if isinstance(document, Mapping) else None
    message = str(error.get("message", "")) if isinstance(error, Mapping) else ""
    # What OpenAI sends a project key or a reader without the management scope on these
    # endpoints is unconfirmed: a 401 or 403 naming missing scopes or permissions is read as
    # under-privileged, any other 401 as an invalid admin key.
    if "missing scopes" in message.lower() or "insufficient permissions" in message.lower():
        return AdminResult.INSUFFICIENT_PERMISSIONS
    if status == 401:
        return AdminResult.INVALID_ADMIN_KEY
    if status == 403:
        return AdminResult.INSUFFICIENT_PERMISSIONS
    if status >= 500:
        return AdminResult.SERVER_ERROR
    return AdminResult.PROTOCOL_ERROR


def _error_message(path: str, status: int, document: object) -> str:
    error = document.get("error") if isinstance(document, Mapping) else None
    code = error.get("code") if isinstance(error, Mapping) else None
    detail = f" ({code})" if isinstance(code, str) and len(code) <= 64 else ""
    return f"{path}: HTTP {status}{detail}"


def _timestamp(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return float(value)


def _entry(project: str, item: Mapping[str, Any]) -> KeyEntry:
    redacted_value = item.get("redacted_value")
    head, tail = parse_redacted(redacted_value) or ("", "")
    owner_type, owner_name = _owner(item.get("owner"))
    return KeyEntry(
        project=project,
        id=str(item["id"]),
        head=head,
        tail=tail,
        redacted_value=redacted_value if isinstance(redacted_value, str) else "",
        created_at=_timestamp(item.get("created_at")),
        expires_at=_timestamp(item.get("expires_at")),
        owner_type=owner_type,
        owner_name=owner_name,
    )


def _owner(owner: object) -> tuple[str, str]:
    """The owner's type (bounded: user, service_account or other) and a short name.

    The name is documented under `owner.user` or `owner.service_account`; a flat `owner.name`
    (unconfirmed) is read too. Never the e-mail address.
    """
    if not isinstance(owner, Mapping):
        return "other", ""
    kind = owner.get("type")
    owner_type = kind if kind in ("user", "service_account") else "other"
    nested = owner.get(kind) if isinstance(kind, str) else None
    name = nested.get("name") if isinstance(nested, Mapping) else owner.get("name")
    if not isinstance(name, str):
        return owner_type, ""
    name = _PASTED_KEY.sub(lambda match: redact(match.group()), name)
    return owner_type, "".join(ch for ch in name if ch.isprintable())[:_OWNER_NAME_CHARS]


async def take_inventory(client: AdminClient) -> InventoryIndex:
    entries: list[KeyEntry] = []
    for project in await client.project_ids():
        entries.extend(await client.api_keys(project))
    return InventoryIndex.build(entries)


def match_keys(index: InventoryIndex, keys: Iterable[KeyConfig]) -> dict[str, KeyMatch]:
    """Each monitored key's entries, read from its source as the probes read it."""
    matches: dict[str, KeyMatch] = {}
    for key in keys:
        if key.provider != "openai":
            continue  # an Azure resource's key is in no OpenAI organization's list
        value = read_key(key.source).key  # used only here, for its head and tail
        if not value or not value.strip():
            continue  # nothing read: no head and tail to look for, so nothing to say
        matches[key.name] = KeyMatch(tuple(index.matches(value.strip(), key.project)))
    return matches


class KeyInventory:
    """Runs the passes on their own schedule and keeps the last good inventory."""

    def __init__(self) -> None:
        self.state = InventoryState()
        self._config: Config | None = None
        self._task: asyncio.Task[None] | None = None
        self._exposition = b""
        self._running = False  # start() called: a new admin block starts its schedule
        self._other_providers: frozenset[str] = frozenset()

    @property
    def admin(self) -> AdminConfig | None:
        return self._config.admin if self._config is not None else None

    def apply(self, config: Config) -> None:
        """A new configuration: a changed admin block restarts the schedule, from a pass now."""
        previous = self.admin
        self._config = config
        # Keys of another provider (Azure) by name, so `describe` (a status page row) need not
        # walk every key to tell them from a key that could not be read.
        self._other_providers = frozenset(
            key.name for key in config.keys if key.provider != "openai"
        )
        if config.admin != previous:
            if config.admin is None:
                SECRETS.forget(ADMIN_KEY_NAME)  # no longer held: nothing to scrub
            self._stop()
            self.state = InventoryState(requests_total=self.state.requests_total)
            if config.admin is not None and self._running:
                self._start()
        elif self.state.index is not None:
            self.state.matches = match_keys(self.state.index, config.keys)
        self._render()

    def start(self) -> None:
        self._running = True
        if self.admin is not None:
            self._start()

    def _start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def _stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def stop(self) -> None:
        self._running = False
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while (admin := self.admin) is not None:
            try:
                await self.run_pass()
            except Exception as error:  # a bug must not end the schedule: the next pass runs
                log.error(
                    "key inventory pass crashed",
                    extra={"fields": {"error": scrub(f"{type(error).__name__}: {error}")}},
                )
            await asyncio.sleep(admin.interval)

    async def run_pass(self) -> AdminResult:
        """One pass: read the admin key, list, match; a failure keeps the last good inventory."""
        config, admin = self._config, self.admin
        if config is None or admin is None:
            return AdminResult.OK
        try:
            index, requests = await self._take(admin)
        except AdminCallFailed as failure:
            self.state.result, self.state.message = failure.result, str(failure)
            log.warning(
                "key inventory failed; keeping the last good one",
                extra={"fields": {"result": failure.result.value, "error": str(failure)}},
            )
        else:
            self.state.index, self.state.taken_at = index, time.time()
            self.state.matches = match_keys(index, config.keys)
            self.state.result, self.state.message = AdminResult.OK, ""
            log.info(
                "key inventory taken",
                extra={"fields": {"entries": len(index.entries), "requests": requests}},
            )
        self._render()
        return self.state.result

    async def _take(self, admin: AdminConfig) -> tuple[InventoryIndex, int]:
        reading = read_key(admin.source)
        SECRETS.remember(ADMIN_KEY_NAME, reading.key or "")  # scrubbed from every output
        if reading.key is None:
            raise AdminCallFailed(AdminResult.KEY_MISSING, reading.problem)
        lint = lint_key(reading.key)
        if not lint.sendable:
            raise AdminCallFailed(AdminResult.KEY_MISSING, lint.unsendable_reason)
        if key_kind(reading.key) not in ("admin", "unknown"):
            # A project key cannot list the organization; it is not sent where it cannot work.
            raise AdminCallFailed(
                AdminResult.NOT_ADMIN_KEY,
                f"{admin.source.describe()} holds a {lint.kind} key ({lint.fingerprint}),"
                " not an sk-admin- key",
            )
        async with aiohttp.ClientSession(trust_env=False) as session:
            client = AdminClient(session, admin, reading.key.strip())
            try:
                return await take_inventory(client), client.requests
            finally:
                self.state.requests_total += client.requests  # failed passes cost requests too

    def fresh(self, now: float | None = None) -> bool:
        """A pass succeeded within two intervals: a key absent from it is really absent."""
        admin, taken_at = self.admin, self.state.taken_at
        if admin is None or taken_at is None:
            return False
        now = time.time() if now is None else now
        return now - taken_at <= 2 * admin.interval + admin.timeout

    def explain_rejection(self, config: KeyConfig, key: str, result: ProbeResult) -> ProbeResult:
        """A key OpenAI rejected, read against the inventory: revoked when no entry matches a
        fresh inventory, mistyped when one still does; unchanged without a fresh inventory."""
        index = self.state.index
        if result.result is not Result.INVALID_API_KEY or index is None or not self.fresh():
            return result
        if config.provider != "openai":  # the organization's list says nothing of Azure keys
            return result
        entries = index.matches(key.strip(), config.project)
        if not entries:
            return replace(
                result,
                result=Result.KEY_REVOKED,
                message=f"OpenAI rejects {redact(key)} and the organization's key list no longer"
                " holds it: it was deleted or revoked, or belongs to another organization",
            )
        where = ", ".join(
            sorted({f"{entry.redacted_value} in {entry.project}" for entry in entries})
        )
        return replace(
            result,
            message=f"OpenAI rejects {redact(key)} yet lists a key with the same head and tail"
            f" ({where}): the value in its source differs from the key OpenAI holds"
            " (mistyped, truncated, or an old copy)",
        )

    def describe(self, name: str, now: float | None = None) -> str | None:
        """The inventory's facts on one key, for a person (the check command); None without
        an admin key."""
        if self.admin is None:
            return None
        match = self.state.matches.get(name)
        if self.state.index is not None and match is None:  # match_keys skipped it
            if name in self._other_providers:
                return "not checked: the organization's key list holds only OpenAI keys"
            return "not checked: no key could be read from its source"
        if self.state.index is None or match is None:
            result = self.state.result.value if self.state.result else "no pass yet"
            return f"not checked: the key inventory failed ({result}: {self.state.message})"
        if not match.entries:
            return "not listed in the organization's key list (deleted, revoked, or another organization's)"
        entry = match.entry
        if entry is None:
            where = ", ".join(f"{e.redacted_value} in {e.project}" for e in match.entries)
            return f"{len(match.entries)} listed entries show this key's head and tail ({where}): not guessed"
        now = time.time() if now is None else now
        facts = [f"listed in {entry.project} as {entry.redacted_value}"]
        if entry.created_at is not None:
            facts.append(f"created {_date(entry.created_at)}")
        if entry.expires_at is not None:
            days = (entry.expires_at - now) / 86400
            facts.append(f"expires {_date(entry.expires_at)} ({days:.1f} days left)")
        else:
            facts.append("no expiry")
        owner = f" {entry.owner_name}" if entry.owner_name else ""
        facts.append(f"owner {entry.owner_type}{owner}")
        return ", ".join(facts)

    def exposition(self) -> bytes:
        return self._exposition

    def _render(self) -> None:
        self._exposition = render_inventory(self.state, self._config) if self.admin else b""


_FAMILIES: tuple[Family, ...] = (
    Family(
        "openai_admin_probe_success",
        "gauge",
        "1 if the last key inventory pass of the Admin API succeeded.",
    ),
    Family(
        "openai_admin_last_success_timestamp_seconds",
        "gauge",
        "When the last key inventory pass succeeded, in Unix time.",
    ),
    Family(
        "openai_admin_probe_result",
        "gauge",
        "The last inventory pass's result class (ok, invalid_admin_key, ...), as a label.",
    ),
    Family(
        "openai_admin_requests_total",
        "counter",
        "Admin API requests the inventory passes made (free endpoints).",
    ),
    Family(
        "openai_key_inventory_listed",
        "gauge",
        "1 if the organization's key list holds an entry with the key's head and tail.",
    ),
    Family(
        "openai_key_inventory_matches",
        "gauge",
        "How many listed entries show the key's head and tail; above 1 nothing is guessed.",
    ),
    Family(
        "openai_key_created_timestamp_seconds",
        "gauge",
        "When OpenAI created the key, from its one matching inventory entry.",
    ),
    Family(
        "openai_key_expires_timestamp_seconds",
        "gauge",
        "When the key expires, from its one matching inventory entry; absent if it never does.",
    ),
    Family(
        "openai_key_owner_info",
        "gauge",
        "The owner of the key's one matching inventory entry: type and name.",
    ),
    Family(
        "openai_project_api_keys",
        "gauge",
        "API keys listed in each project, monitored by this exporter or not.",
    ),
)


def _date(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="minutes")


def render_inventory(state: InventoryState, config: Config | None) -> bytes:
    samples: dict[str, list[str]] = {family.name: [] for family in _FAMILIES}
    ok = state.result is AdminResult.OK
    samples["openai_admin_probe_success"].append(f"openai_admin_probe_success {int(ok)}")
    if state.taken_at is not None:
        samples["openai_admin_last_success_timestamp_seconds"].append(
            f"openai_admin_last_success_timestamp_seconds {state.taken_at:.3f}"
        )
    if state.result is not None:
        samples["openai_admin_probe_result"].append(
            f'openai_admin_probe_result{{result="{state.result.value}"}} 1'
        )
    samples["openai_admin_requests_total"].append(
        f"openai_admin_requests_total {state.requests_total}"
    )
    names = {key.name for key in config.keys} if config is not None else set()
    monitored: set[str] = set()
    for name, match in sorted(state.matches.items()):
        if name not in names:
            continue
        key = f'key="{escape_label_value(name)}"'
        monitored.update(entry.id for entry in match.entries)
        samples["openai_key_inventory_listed"].append(
            f"openai_key_inventory_listed{{{key}}} {int(match.listed)}"
        )
        samples["openai_key_inventory_matches"].append(
            f"openai_key_inventory_matches{{{key}}} {len(match.entries)}"
        )
        entry = match.entry
        if entry is None:
            continue
        if entry.created_at is not None:
            samples["openai_key_created_timestamp_seconds"].append(
                f"openai_key_created_timestamp_seconds{{{key}}} {entry.created_at:g}"
            )
        if entry.expires_at is not None:
            samples["openai_key_expires_timestamp_seconds"].append(
                f"openai_key_expires_timestamp_seconds{{{key}}} {entry.expires_at:g}"
            )
        samples["openai_key_owner_info"].append(
            f'openai_key_owner_info{{{key},owner_type="{entry.owner_type}",'
            f'owner="{escape_label_value(entry.owner_name)}"}} 1'
        )
    if state.index is not None:
        counts: dict[tuple[str, bool], int] = {}
        for entry in state.index.entries:
            slot = (entry.project, entry.id in monitored)
            counts[slot] = counts.get(slot, 0) + 1
        projects = sorted({project for project, _ in counts})
        for project in projects:
            for watched in (True, False):
                samples["openai_project_api_keys"].append(
                    f'openai_project_api_keys{{project="{escape_label_value(project)}",'
                    f'monitored="{str(watched).lower()}"}} {counts.get((project, watched), 0)}'
                )
    lines: list[bytes] = []
    for family in _FAMILIES:
        if samples[family.name]:
            lines.append(family.header)
            lines.extend(f"{sample}\n".encode() for sample in samples[family.name])
    return b"".join(lines)
