"""The Admin API's two list endpoints: projects, and each project's API keys, paged as OpenAI pages.

Shapes from openai-facts.md ("Admin API"): `{"object": "list", "data": [...], "first_id",
"last_id", "has_more"}`, `limit` 1-100 (default 20), `after`; a key entry carries `object`,
`id`, `name`, `redacted_value`, `created_at`, `last_used_at`, `owner` and, where set,
`expires_at`. A deleted key is simply absent.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from exporter.simulator import openai_shapes as shapes
from exporter.simulator.connection import bearer_token
from exporter.simulator.rest import json_error, json_response, openai_headers
from exporter.simulator.scenarios import SCENARIO_PATTERN

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def redacted_form(key: str, head: int = 8, tail: int = 4, mask: str = "...") -> str:
    """`sk-abc...def` in the documentation's example; the head, tail and mask vary in the wild."""
    return f"{key[:head]}{mask}{key[-tail:]}"


@dataclass
class AdminDirectory:
    """The organization the admin endpoints list; tests and the demo fill it."""

    projects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    rate_limit_next: int = 0  # the next N admin requests answer 429 with `retry-after`
    retry_after: str = "1"
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _created: int = 1_700_000_000

    def add_project(self, project: str) -> None:
        with self.lock:
            self.projects.setdefault(project, [])

    def add_key(
        self,
        project: str,
        key: str,
        *,
        name: str = "",
        redacted_value: str | None = None,
        expires_at: int | None = None,
        owner_type: str = "service_account",
        owner_name: str = "deploy-bot",
    ) -> str:
        """List `key` in `project`; returns the entry's id."""
        with self.lock:
            entries = self.projects.setdefault(project, [])
            self._created += 3600
            entry_id = f"key_{project[-6:]}{len(entries):06d}"
            entry: dict[str, Any] = {
                "object": "organization.project.api_key",
                "id": entry_id,
                "name": name or entry_id,
                "redacted_value": redacted_value or redacted_form(key),
                "created_at": self._created,
                "last_used_at": None,
                "owner": {
                    "type": owner_type,
                    owner_type: {
                        "object": f"organization.project.{owner_type}",
                        "id": f"{owner_type}_{len(entries)}",
                        "name": owner_name,
                        "created_at": self._created,
                    },
                },
            }
            if expires_at is not None:
                entry["expires_at"] = expires_at
            entries.append(entry)
            return entry_id

    def remove_key(self, project: str, entry_id: str) -> None:
        """A deleted or revoked key: it disappears from the list."""
        with self.lock:
            self.projects[project] = [e for e in self.projects[project] if e["id"] != entry_id]

    def take_request(self) -> bool:
        """Count a request; True when it must be answered 429."""
        with self.lock:
            self.requests += 1
            if self.rate_limit_next > 0:
                self.rate_limit_next -= 1
                return True
            return False


ADMIN: web.AppKey[AdminDirectory] = web.AppKey("admin_directory", AdminDirectory)


def _refusal(request: web.Request) -> web.Response | None:
    token = bearer_token(request)
    if token is None:
        return json_error(401, shapes.NO_KEY_MESSAGE, "invalid_request_error", None)
    scenario = SCENARIO_PATTERN.search(token)
    if scenario is not None and scenario.group(1) == "invalid_api_key":
        return json_error(
            401, shapes.incorrect_key_message(token), "invalid_request_error", "invalid_api_key"
        )
    if not token.startswith("sk-admin-"):
        # What a project key gets here is unconfirmed; the exporter never sends one (it reads
        # the prefix first) and classifies both a 401 and a 403 naming missing scopes.
        return json_error(
            401,
            shapes.missing_scopes_message("api.management.read"),
            "invalid_request_error",
            None,
        )
    if request.app[ADMIN].take_request():
        return json_error(
            429,
            "Rate limit reached for requests. Please try again later.",
            "requests",
            "rate_limit_exceeded",
            {"retry-after": request.app[ADMIN].retry_after},
        )
    return None


def _page(request: web.Request, items: list[dict[str, Any]]) -> web.Response:
    raw_limit = request.query.get("limit", str(DEFAULT_LIMIT))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
        return json_error(
            400,
            f"Invalid 'limit': integer between 1 and {MAX_LIMIT} expected.",
            "invalid_request_error",
            None,
        )
    start = 0
    after = request.query.get("after")
    if after is not None:
        ids = [item["id"] for item in items]
        start = ids.index(after) + 1 if after in ids else len(items)
    page = items[start : start + int(raw_limit)]
    body = {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": start + len(page) < len(items),
    }
    return json_response(body, openai_headers())


async def handle_projects(request: web.Request) -> web.StreamResponse:
    """`GET /v1/organization/projects`."""
    if (refusal := _refusal(request)) is not None:
        return refusal
    directory = request.app[ADMIN]
    with directory.lock:
        projects = [
            {
                "id": project,
                "object": "organization.project",
                "name": project,
                "created_at": 1_700_000_000,
                "archived_at": None,
                "status": "active",
            }
            for project in directory.projects
        ]
    return _page(request, projects)


async def handle_api_keys(request: web.Request) -> web.StreamResponse:
    """`GET /v1/organization/projects/{project_id}/api_keys`."""
    if (refusal := _refusal(request)) is not None:
        return refusal
    directory = request.app[ADMIN]
    project = request.match_info["project_id"]
    with directory.lock:
        entries = list(directory.projects.get(project, ()))
        known = project in directory.projects
    if not known:
        return json_error(404, f"No such project: {project}", "invalid_request_error", "not_found")
    return _page(request, entries)


async def post_admin_key(request: web.Request) -> web.StreamResponse:
    """Control API `POST /_sim/admin/keys`: list a key, as
    `{"project": "proj_a", "key": "sk-...", "expires_at": null, "owner_name": "bot"}`."""
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return web.json_response({"error": "body must be a JSON object"}, status=400)
    project, key = body.get("project"), body.get("key")
    expires_at, owner_name = body.get("expires_at"), body.get("owner_name", "deploy-bot")
    if not isinstance(project, str) or not project or not isinstance(key, str) or not key:
        return web.json_response({"error": "project and key must be non-empty strings"}, status=400)
    if expires_at is not None and (not isinstance(expires_at, int) or isinstance(expires_at, bool)):
        return web.json_response({"error": "expires_at must be null or an integer"}, status=400)
    if not isinstance(owner_name, str):
        return web.json_response({"error": "owner_name must be a string"}, status=400)
    entry_id = request.app[ADMIN].add_key(
        project, key, expires_at=expires_at, owner_name=owner_name
    )
    return web.json_response({"id": entry_id}, status=201)
