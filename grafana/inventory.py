"""The overview's key inventory row (only with an admin key): each key listed or not, its expiry
and owner, the keys of each project nobody watches, and whether the inventory itself works."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as dashboard_models

from grafana import panels
from grafana.panels import COLOR_BACKGROUND, instant_table_query, override, thresholds
from grafana.promql import selector

_SEL = ('job=~"$job"', 'key=~"$key"')
_JOB = ('job=~"$job"',)  # the inventory's own metrics have no key label
KEY_REVOKED_ANCHOR = "key-revoked"
KEY_EXPIRING_ANCHOR = "key-expiring"
INVENTORY_FAILING_ANCHOR = "inventory-failing"


def inventory_panels() -> list[panels.PanelBuilder]:
    return [keys_inventory_table(), project_keys_table(), inventory_status_table()]


def keys_inventory_table() -> panels.PanelBuilder:
    listed = f"max by (key) ({selector('openai_key_inventory_listed', *_SEL)})"
    matches = f"max by (key) ({selector('openai_key_inventory_matches', *_SEL)})"
    expires = f"max by (key) ({selector('openai_key_expires_timestamp_seconds', *_SEL)})"
    created = f"max by (key) ({selector('openai_key_created_timestamp_seconds', *_SEL)})"
    owner = f"max by (key, owner_type, owner) ({selector('openai_key_owner_info', *_SEL)})"
    return (
        panels.table_panel(
            "Key inventory",
            "With an admin key: whether the organization's key list still holds each key "
            "(matched by the head and tail OpenAI shows; Entries above 1 means several match and "
            "nothing is guessed), the days until its expiry (empty: none), its age and owner.",
            [
                instant_table_query(listed, "A"),
                instant_table_query(matches, "B"),
                instant_table_query(f"({expires} - time()) / 86400", "C"),
                instant_table_query(f"(time() - {created}) / 86400", "D"),
                instant_table_query(owner, "E"),
            ],
            width=12,
            height=8,
            runbook_anchors=(KEY_REVOKED_ANCHOR, KEY_EXPIRING_ANCHOR),
        )
        .with_transformation(
            panels.organize(
                order=[
                    "key",
                    "Value #A",
                    "Value #B",
                    "Value #C",
                    "Value #D",
                    "owner_type",
                    "owner",
                ],
                renames={
                    "key": "Key",
                    "Value #A": "Listed",
                    "Value #B": "Entries",
                    "Value #C": "Expires in (days)",
                    "Value #D": "Age (days)",
                    "owner_type": "Owner type",
                    "owner": "Owner",
                },
                hidden=["Time", "Value #E"],
            )
        )
        .overrides(
            [
                override("Key", links=[panels.detail_link("${__value.raw}")]),
                override(
                    "Listed",
                    mappings=panels.listed_mappings(),
                    custom__cellOptions=COLOR_BACKGROUND,
                ),
                override(
                    "Expires in (days)",
                    decimals=1,
                    thresholds=thresholds("red", (1, "orange"), (7, "green")).build(),
                    custom__cellOptions=COLOR_BACKGROUND,
                ),
                override("Age (days)", decimals=0),
            ]
        )
    )


def project_keys_table() -> panels.PanelBuilder:
    def keys(monitored: str) -> str:
        return selector("openai_project_api_keys", *_JOB, f'monitored="{monitored}"')

    return panels.table_panel(
        "Keys per project",
        "With an admin key: the API keys each project lists, watched by this exporter or by "
        "nobody here (openai_project_api_keys). A key nobody watches can fail unnoticed, or "
        "be one to delete.",
        [
            instant_table_query(f"max by (project) ({keys('true')})", "A"),
            instant_table_query(f"max by (project) ({keys('false')})", "B"),
        ],
        width=6,
        height=8,
    ).with_transformation(
        panels.organize(
            order=["project", "Value #A", "Value #B"],
            renames={"project": "Project", "Value #A": "Monitored", "Value #B": "Not monitored"},
            hidden=["Time"],
        )
    )


def _pass_mappings() -> list[dashboard_models.ValueMapping]:
    return [
        dashboard_models.ValueMap(
            options={
                "1": dashboard_models.ValueMappingResult(text="ok", color="green", index=0),
                "0": dashboard_models.ValueMappingResult(text="FAILING", color="orange", index=1),
            }
        )
    ]


def inventory_status_table() -> panels.PanelBuilder:
    success = selector("openai_admin_probe_success", *_JOB)
    last = selector("openai_admin_last_success_timestamp_seconds", *_JOB)
    result = selector("openai_admin_probe_result", *_JOB)
    requests = selector("openai_admin_requests_total", *_JOB)
    return (
        panels.table_panel(
            "Inventory",
            "Per exporter: whether the last inventory pass of the Admin API succeeded, its result "
            "class, how long ago one last did, and the (free) Admin API requests it has made.",
            [
                instant_table_query(f"max by (instance) ({success})", "A"),
                instant_table_query(f"max by (instance, result) ({result} == 1)", "B"),
                instant_table_query(f"time() - max by (instance) ({last})", "C"),
                instant_table_query(f"max by (instance) ({requests})", "D"),
            ],
            width=6,
            height=8,
            runbook_anchors=(INVENTORY_FAILING_ANCHOR,),
        )
        .with_transformation(
            panels.organize(
                order=["instance", "Value #A", "result", "Value #C", "Value #D"],
                renames={
                    "instance": "Exporter",
                    "Value #A": "Pass",
                    "result": "Result",
                    "Value #C": "Last success",
                    "Value #D": "Requests",
                },
                hidden=["Time", "Value #B"],
            )
        )
        .overrides(
            [
                override(
                    "Pass",
                    mappings=_pass_mappings(),
                    custom__cellOptions=COLOR_BACKGROUND,
                ),
                override("Last success", unit="s", decimals=0),
            ]
        )
    )
