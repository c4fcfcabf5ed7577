"""The status page (/): what a person without Grafana looks at first."""

from __future__ import annotations

import html

from exporter import __version__
from exporter.links import Links
from exporter.service import Exporter


def status_page(exporter: Exporter, telemetry_path: str, links: Links) -> str:
    rows = []
    for state in exporter.store.states():
        cells = [html.escape(state.name), html.escape(state.identity.fingerprint or "(none)")]
        valid = {True: "valid", False: "INVALID", None: "unknown"}[state.valid]
        cells.append(valid)
        for probe in ("rest", "realtime"):
            probe_state = state.probe(probe)
            if probe_state is None:
                cells.append("not probed")
            elif probe_state.last is None:
                cells.append("pending")
            else:
                result = probe_state.last.result
                link = links.for_result(result)
                text = html.escape(result.value)
                cells.append(f'<a href="{html.escape(link)}">{text}</a>' if link else text)
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    path = html.escape(telemetry_path)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>OpenAI Key Exporter</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.2em 1em;text-align:left}}</style>
</head><body>
<h1>OpenAI Key Exporter</h1>
<p>Version {html.escape(__version__)}. Probes OpenAI API keys on a schedule; never spends a token.</p>
<ul>
<li><a href="{path}">Metrics</a></li>
<li><a href="/-/healthy">Health</a> and <a href="/-/ready">readiness</a></li>
<li><a href="{html.escape(links.runbook())}">Runbook</a></li>
</ul>
<h2>Keys</h2>
<table><tr><th>Key</th><th>Fingerprint</th><th>Validity</th><th>REST</th><th>Realtime</th></tr>
{"".join(rows)}
</table>
</body></html>
"""
