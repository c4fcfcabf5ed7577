"""Grafana dashboards for openai-key-exporter, written with grafana-foundation-sdk."""
