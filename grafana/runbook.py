"""Where the dashboards link to: the runbook's address and the section for each result or code."""

from __future__ import annotations

from exporter.classify import ERROR_CODES, RESULTS, Result
from exporter.links import PUBLISHED_RUNBOOK_URL

# The runbook the exporter serves, where the compose stack publishes it. The dashboards carry
# it as the hidden constant variable `runbook_url`; regenerate with `--runbook-url` set to the
# exporter's --web.external-url followed by /runbook.
RUNBOOK_URL = PUBLISHED_RUNBOOK_URL
RUNBOOK_VARIABLE = "runbook_url"

# Sections the dashboards link to directly, not through a result class.
GENERAL_ANCHOR = "probe-failing"  # any failing probe; also the class of codes we cannot place
OK_ANCHOR = "checklist"  # an ok result needs no fix: link to checking a key by hand
INVALID_ANCHOR = RESULTS[Result.INVALID_API_KEY].runbook_anchor
RATE_LIMITED_ANCHOR = RESULTS[Result.RATE_LIMITED].runbook_anchor
FORMAT_ANCHOR = "key-format-issue"
STALE_ANCHOR = "probes-stale"
LATENCY_ANCHOR = "latency-high"
REALTIME_ANCHOR = "realtime-refused"  # any session probe refused: Realtime or GPT-Live
MODEL_NOT_LISTED_ANCHOR = "model-not-listed"
MODEL_SHUTDOWN_ANCHOR = "model-shutdown"

# Error codes of openai_probe_errors_total that are neither a Result value nor an OpenAI code in
# classify.ERROR_CODES (see classify.KNOWN_ERROR_CODES), and the class each stands for.
_EXTRA_CODE_RESULTS: dict[str, Result] = {
    "missing_scopes": Result.INSUFFICIENT_PERMISSIONS,
    "forbidden": Result.INSUFFICIENT_PERMISSIONS,
    "missing_api_key": Result.KEY_MISSING,
    "server_error": Result.SERVER_ERROR,
    "session_expired": Result.OTHER,
}


def link(anchor: str) -> str:
    """A link to one runbook section, through the dashboard's `runbook_url` variable."""
    return f"${{{RUNBOOK_VARIABLE}}}#{anchor}"


def fragment(anchor: str) -> str:
    """What a query's runbook label holds: `#anchor`.

    Never empty, because label_replace drops a label set to "" and a data link reading a
    missing field is left uninterpolated.
    """
    return f"#{anchor}"


def field_link(label: str) -> str:
    """A data link to the runbook section named by the row's `label` (holding a fragment)."""
    return f"${{{RUNBOOK_VARIABLE}}}${{__data.fields.{label}}}"


def result_anchors() -> dict[str, str]:
    """Each result class (openai_probe_result's `result` label) and its runbook section."""
    return {result.value: info.runbook_anchor or OK_ANCHOR for result, info in RESULTS.items()}


def code_anchors() -> dict[str, str]:
    """Each error code (openai_probe_errors_total's `code` label) and its runbook section."""
    by_code: dict[str, Result] = {r.value: r for r in Result if r is not Result.OK}
    by_code.update(ERROR_CODES)
    by_code.update(_EXTRA_CODE_RESULTS)
    return {
        code: RESULTS[result].runbook_anchor or GENERAL_ANCHOR
        for code, result in sorted(by_code.items())
    }
