"""The status page (/): what a person without Grafana looks at first.

One row per key and probe: a state in colour and in a word, the result, the likely cause in plain
words (a format finding first when OpenAI rejects the key), the format findings, since when, the
age of the last probe, its duration and the runbook section. Server-rendered HTML that refreshes
itself, needs no JavaScript, escapes everything it prints and shows no key material (only names,
redacted fingerprints and findings). With thousands of keys it lists the failing rows first and
stops at MAX_ROWS: /metrics has every series.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from exporter import __version__
from exporter.causes import plain_cause, ranked_findings, root_finding
from exporter.classify import RESULTS, Validity
from exporter.config import KeyConfig
from exporter.inventory import AdminResult, KeyInventory
from exporter.keys import KeySource
from exporter.links import Links
from exporter.models import days_left_text
from exporter.service import Exporter
from exporter.state import KeyState, ProbeState

MAX_ROWS = 500  # a page a browser renders at once; failing rows come first
REFRESH_SECONDS = 30

# state word -> (sort rank, colour); the word is what counts, the colour helps.
_STATES: dict[str, tuple[int, str]] = {
    "failing": (0, "#c62828"),  # OpenAI refuses the key or what it is asked
    "unsure": (1, "#b26a00"),  # the probe failed for reasons that say nothing about the key
    "pending": (2, "#616161"),  # not probed yet
    "ok": (3, "#2e7d32"),
}


@dataclass(frozen=True)
class Row:
    key: KeyState
    probe: str
    state: ProbeState
    word: str


def _word(state: ProbeState) -> str:
    last = state.last
    if last is None:
        return "pending"
    if last.healthy:
        return "ok"
    return "unsure" if RESULTS[last.result].validity is Validity.UNKNOWN else "failing"


def _rows(states: list[KeyState]) -> list[Row]:
    rows = [
        Row(key, probe, probe_state, _word(probe_state))
        for key in states
        for probe, probe_state in key.probes.items()
    ]
    # Failing first, the longest-failing first among them; then by name, stable across refreshes.
    rows.sort(
        key=lambda row: (
            _STATES[row.word][0],
            (row.state.result_since or 0.0) if row.word in ("failing", "unsure") else 0.0,
            row.key.name,
            row.probe,
        )
    )
    return rows


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f}s ago"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f}m ago"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f}h ago"
    return f"{seconds / 86400:.1f}d ago"


def _when(timestamp: float, now: float) -> str:
    moment = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f'<time datetime="{_e(moment)}">{_e(moment)}</time> ({_e(_ago(now - timestamp))})'


def _row_html(
    row: Row, source: KeySource | None, inventory: str | None, links: Links, now: float
) -> str:
    key, last, word = row.key, row.state.last, row.word
    colour = _STATES[word][1]
    issues = key.identity.issues
    findings = ", ".join(ranked_findings(issues)) or "none"
    identity = _e(key.identity.fingerprint or "no key read")
    changed = ""
    if key.key_changed_at is not None and key.identity.fingerprint:  # a value was read
        changed = (
            f'<br><small class="changed">value changed {_when(key.key_changed_at, now)}</small>'
        )
    models = "".join(  # the watched models as the key's own model list shows them
        f'<br><small class="model">{_e(status.model)}: {_e(days_left_text(status, now))}</small>'
        for status in key.models
    )
    listed = ""
    if inventory is not None:  # what the admin key's inventory says of this key, if one is set
        listed = f'<br><small class="inventory">inventory: {_e(inventory)}</small>'
    cells = [
        f'<td class="key"><b>{_e(key.name)}</b><br><small>{identity}</small>{changed}{models}'
        f"{listed}</td>",
        f'<td class="probe">{_e(row.probe)}</td>',
        f'<td class="state"><span class="badge" style="background:{colour}">{word.upper()}</span></td>',
    ]
    if last is None:
        cells += ['<td class="result">-</td>', '<td class="cause">not probed yet</td>']
        cells += [f'<td class="findings">{_e(findings)}</td>']
        cells += ['<td class="since">-</td>', '<td class="age">-</td>']
        cells += ['<td class="duration">-</td>', '<td class="runbook">-</td>']
        return f'<tr class="{word}" data-key="{_e(key.name)}" data-probe="{_e(row.probe)}">{"".join(cells)}</tr>'
    cause = plain_cause(last.result, issues, source)
    since = "-"
    if row.state.result_since is not None:
        probes = row.state.result_probes
        since = f"{_when(row.state.result_since, now)}, {probes} probe{'s' if probes != 1 else ''}"
    runbook = ""
    if root_finding(last.result, issues) is not None:  # the root cause's section first
        runbook = f'<a href="{_e(links.runbook("key-format-issue"))}">key-format-issue</a>, '
    anchor = RESULTS[last.result].runbook_anchor
    if anchor:
        runbook += f'<a href="{_e(links.for_result(last.result))}">{_e(anchor)}</a>'
    cells += [
        f'<td class="result"><code>{_e(last.result.value)}</code></td>',
        f'<td class="cause">{_e(cause)}</td>',
        f'<td class="findings">{_e(findings)}</td>',
        f'<td class="since">{since}</td>',
        f'<td class="age">{_e(_ago(now - last.started_at))}</td>',
        f'<td class="duration">{last.duration:.3f} s</td>',
        f'<td class="runbook">{runbook.removesuffix(", ") or "-"}</td>',
    ]
    return f'<tr class="{word}" data-key="{_e(key.name)}" data-probe="{_e(row.probe)}">{"".join(cells)}</tr>'


_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1b1b1b}
table{border-collapse:collapse;width:100%}
th,td{padding:.35rem .6rem;text-align:left;vertical-align:top;border-bottom:1px solid #e0e0e0}
th{background:#f5f5f5;position:sticky;top:0}
.badge{color:#fff;padding:.1rem .45rem;border-radius:3px;font-weight:bold;font-size:.85rem}
tr.failing td{background:#fdecea}tr.unsure td{background:#fff4e0}
.summary{font-size:1.2rem}small{color:#555}
td.state,td.result,td.age,td.duration{white-space:nowrap}td.key{min-width:13rem}td.since{min-width:10rem}
"""


def status_page(
    exporter: Exporter, telemetry_path: str, links: Links, now: float | None = None
) -> str:
    now = time.time() if now is None else now
    states = exporter.store.states()
    sources = _sources(exporter)
    rows = _rows(states)
    failing_keys = {row.key.name for row in rows if row.word == "failing"}
    unsure_keys = {row.key.name for row in rows if row.word == "unsure"} - failing_keys
    pending_keys = {row.key.name for row in rows if row.word == "pending"}
    shown = rows[:MAX_ROWS]
    describe = exporter.inventory.describe
    body = "".join(
        _row_html(row, sources.get(row.key.name), describe(row.key.name, now), links, now)
        for row in shown
    )
    more = ""
    if len(rows) > len(shown):
        more = (
            f'<p class="more">Showing the first {len(shown)} of {len(rows)} rows, failing ones '
            f'first. Every key is in <a href="{_e(telemetry_path)}">the metrics</a>.</p>'
        )
    summary = (
        f"{len(states)} keys, {len(failing_keys)} failing, {len(unsure_keys)} unsure, "
        f"{len(pending_keys)} not probed yet"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{REFRESH_SECONDS}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>OpenAI Key Exporter: {_e(summary)}</title>
<style>{_STYLE}</style></head><body>
<h1>OpenAI Key Exporter</h1>
<p class="summary" id="summary">{_e(summary)}</p>
{_inventory_summary(exporter.inventory, now)}<p>Version {_e(__version__)}. Probes OpenAI API keys on a schedule with free calls; only the
opt-in inference and live probes are billed. This page refreshes every {REFRESH_SECONDS} s.
<a href="{_e(telemetry_path)}">Metrics</a> &middot; <a href="/-/healthy">Health</a> and
<a href="/-/ready">readiness</a> &middot; <a href="{_e(links.runbook())}">Runbook</a>
(<a href="{_e(links.runbook(language="fr"))}">en français</a>)</p>
<table id="keys"><thead><tr><th>Key</th><th>Probe</th><th>State</th><th>Result</th>
<th>Likely cause</th><th>Format findings</th><th>Since</th><th>Last probe</th><th>Duration</th>
<th>Runbook</th></tr></thead>
<tbody>{body}</tbody></table>
{more}
</body></html>
"""


def _inventory_summary(inventory: KeyInventory, now: float) -> str:
    """One line on the admin key's inventory: when the list the rows quote was taken, and
    whether the last pass failed; nothing without an admin key."""
    if inventory.admin is None:
        return ""
    state = inventory.state
    parts: list[str] = []
    if state.index is not None and state.taken_at is not None:
        projects = len({entry.project for entry in state.index.entries})
        parts.append(
            f"Key inventory (Admin API): {len(state.index.entries)} keys listed in {projects} "
            f"project{'s' if projects != 1 else ''}, taken {_when(state.taken_at, now)}."
        )
    else:
        parts.append("Key inventory (Admin API): no list taken yet.")
    if state.result is not None and state.result is not AdminResult.OK:
        problem = f"{state.result.value}: {state.message}" if state.message else state.result.value
        kept = " The rows quote the last list taken." if state.index is not None else ""
        parts.append(f"The last pass failed ({_e(problem)}).{kept}")
    return f'<p class="inventory" id="inventory">{" ".join(parts)}</p>\n'


def _sources(exporter: Exporter) -> dict[str, KeySource]:
    config = exporter.config
    keys: tuple[KeyConfig, ...] = config.keys if config is not None else ()
    return {key.name: key.source for key in keys}
