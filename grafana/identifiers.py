"""The dashboards' identifiers, which links elsewhere (alert rules) point at: one place, no
Grafana SDK needed to read them."""

OVERVIEW_UID = "openai-key-overview"
DETAIL_UID = "openai-key-detail"
