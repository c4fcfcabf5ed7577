"""Helpers for end-to-end tests that run real Prometheus and Alertmanager processes."""
